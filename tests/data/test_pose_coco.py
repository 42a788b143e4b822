"""COCO-format keypoint splits: SG's instance, crowd and empty-image semantics, both layouts, Hub zips, errors."""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from PIL import Image

from curricurun.data.pose.coco import KeypointData, load_keypoint_split
from curricurun.errors import UserError

SPLIT = "val2017"
COCO_LAYOUT = ("annotations/person_keypoints_val2017.json", "images/val2017")

# Image 7 is 4 wide, 3 high, pixel (channel c, row y, column x) = 100c + 10y + x, so every value is distinct.
PIXELS_7 = np.fromfunction(lambda y, x, c: 100 * c + 10 * y + x, (3, 4, 3), dtype=np.int64).astype(np.uint8)
GREY_3 = np.array([[0, 50], [100, 250]], dtype=np.uint8)  # image 3, 2×2, mode "L", no annotations
PIXELS_9 = np.full((2, 3, 3), [1, 2, 3], dtype=np.uint8)  # image 9, 3 wide, 2 high


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _coco() -> dict:
    """Three images; annotations deliberately out of image order, one crowd region, one keypoint-less person,
    one annotation of an image that is not listed."""
    return {
        "images": [
            {"id": 7, "file_name": "a.png", "width": 4, "height": 3},
            {"id": 3, "file_name": "b.png", "width": 2, "height": 2},
            {"id": 9, "file_name": "c.png", "width": 3, "height": 2},
        ],
        "annotations": [
            {"id": 30, "image_id": 9, "keypoints": [0] * 9, "num_keypoints": 0, "bbox": [0.5, 0, 1, 2], "iscrowd": 0},
            {"id": 20, "image_id": 7, "keypoints": [0] * 9, "num_keypoints": 0, "bbox": [-1, 1, 6, 3], "area": 10,
             "iscrowd": 1},
            {"id": 10, "image_id": 7, "keypoints": [1, 1, 2, 2, 2, 1, 0, 0, 0], "num_keypoints": 2,
             "bbox": [1, 0.5, 2, 2], "area": 3.5, "iscrowd": 0},
            {"id": 40, "image_id": 99, "keypoints": [0] * 9, "num_keypoints": 0, "bbox": [0, 0, 1, 1], "iscrowd": 0},
        ],
        "categories": [
            {"id": 1, "name": "thing", "keypoints": ["tip", "left", "right"], "skeleton": [[1, 2], [1, 3]]}
        ],
    }  # fmt: skip


def _image_files() -> dict[str, bytes]:
    return {"a.png": _png(PIXELS_7), "b.png": _png(GREY_3), "c.png": _png(PIXELS_9)}


def _write(root: Path, layout: tuple[str, str] = COCO_LAYOUT, coco: dict | None = None) -> Path:
    annotation_name, images_name = layout
    (root / annotation_name).parent.mkdir(parents=True, exist_ok=True)
    (root / annotation_name).write_text(json.dumps(_coco() if coco is None else coco))
    (root / images_name).mkdir(parents=True, exist_ok=True)
    for name, data in _image_files().items():
        (root / images_name / name).write_bytes(data)
    return root


def _load(root: Path, **options) -> KeypointData:
    return load_keypoint_split("local", str(root), SPLIT, options.pop("num_keypoints", 3), **options)


def _assert_image_7(data: KeypointData, crowd: list[bool]) -> None:
    sample = data.sample(0)
    assert torch.equal(sample.image, torch.from_numpy(PIXELS_7.transpose(2, 0, 1).astype(np.float32)))
    # Instances in file order: the crowd region (20) before the person (10).
    assert sample.keypoints.tolist() == [[[0, 0, 0]] * 3, [[1, 1, 2], [2, 2, 1], [0, 0, 0]]]
    # Crowd [-1, 1, 6, 3] → XYXY [-1, 1, 5, 4] → clipped to the 4×3 image [0, 1, 4, 3];
    # person [1, 0.5, 2, 2] → [1, 0.5, 3, 2.5], inside.
    assert sample.boxes.tolist() == [[0, 1, 4, 3], [1, 0.5, 3, 2.5]]
    assert sample.areas.tolist() == [10, 3.5]
    assert sample.crowd.tolist() == crowd
    assert sample.keypoints.dtype == sample.boxes.dtype == sample.areas.dtype == torch.float32


@pytest.mark.parametrize(
    "layout",
    [COCO_LAYOUT, ("annotations/person_keypoints_val2017.json", "val2017"), ("annotations/val2017.json", "val2017")],
    ids=["sg-images-folder", "official-zip-folder", "custom-annotation-name"],
)
def test_every_layout_loads_the_json_images_in_file_order_with_exact_arrays(tmp_path, layout):
    data = _load(_write(tmp_path, layout))
    assert len(data) == 3
    assert [data.image_id(i) for i in range(3)] == [7, 3, 9]
    assert [data.file_name(i) for i in range(3)] == ["a.png", "b.png", "c.png"]
    _assert_image_7(data, crowd=[True, False])


def test_an_image_without_annotations_is_an_empty_sample_and_grey_becomes_three_channels(tmp_path):
    sample = _load(_write(tmp_path)).sample(1)
    assert torch.equal(sample.image, torch.from_numpy(GREY_3).float().expand(3, 2, 2))
    assert sample.keypoints.shape == (0, 3, 3) and sample.boxes.shape == (0, 4)
    assert sample.areas.shape == (0,) and sample.crowd.shape == (0,) and sample.crowd.dtype == torch.bool


def test_an_instance_with_no_keypoints_is_kept_and_a_missing_area_is_053_of_its_box(tmp_path):
    sample = _load(_write(tmp_path)).sample(2)
    assert sample.keypoints.tolist() == [[[0, 0, 0]] * 3]
    assert sample.boxes.tolist() == [[0.5, 0, 1.5, 2]]
    assert sample.areas.tolist() == [np.float32(0.53 * 1 * 2)]  # no "area": 0.53 · w · h = 1.06
    assert torch.equal(sample.image, torch.tensor([1.0, 2.0, 3.0])[:, None, None].expand(3, 2, 3))


def test_mask_as_normal_turns_crowd_regions_into_ordinary_instances(tmp_path):
    _assert_image_7(_load(_write(tmp_path), crowd="mask_as_normal"), crowd=[False, False])


def test_without_empty_samples_only_images_with_no_annotation_at_all_are_dropped(tmp_path):
    data = _load(_write(tmp_path), include_empty=False)
    # Image 9 stays: its one annotation has no labelled keypoint, but SG counts any annotation.
    assert [data.image_id(i) for i in range(len(data))] == [7, 9]
    assert data.sample(1).boxes.tolist() == [[0.5, 0, 1.5, 2]]


def test_max_samples_keeps_a_prefix_with_its_own_instances(tmp_path):
    data = _load(_write(tmp_path), max_samples=2)
    assert [data.image_id(i) for i in range(len(data))] == [7, 3]
    assert data.sample(1).keypoints.shape[0] == 0
    _assert_image_7(data, crowd=[True, False])


def test_metadata_comes_from_the_category_with_a_zero_based_skeleton(tmp_path):
    data = _load(_write(tmp_path))
    assert (data.num_keypoints, data.channels, data.num_classes) == (3, 3, 1)
    assert data.keypoint_names == ["tip", "left", "right"]
    assert data.skeleton == [(0, 1), (0, 2)]  # JSON [[1, 2], [1, 3]] counts from 1
    assert data.description == f"local COCO keypoints '{tmp_path}' split 'val2017'"


def test_the_images_folder_wins_over_the_split_folder(tmp_path):
    _write(tmp_path)
    (tmp_path / SPLIT).mkdir()  # an empty official-layout folder would make every image missing
    assert len(_load(tmp_path)) == 3


def test_the_object_pickles_without_decoded_images(tmp_path):
    data = _load(_write(tmp_path))
    data.sample(0)
    payload = pickle.dumps(data)
    assert len(payload) < 4000  # a handful of small arrays and three file names
    _assert_image_7(pickle.loads(payload), crowd=[True, False])


def test_exif_orientation_is_not_applied(tmp_path):
    _write(tmp_path)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": an upright reader would return a 2-wide, 4-high image
    Image.fromarray(PIXELS_7).save(tmp_path / "images/val2017/a.jpg", exif=exif)
    coco = _coco()
    coco["images"][0]["file_name"] = "a.jpg"
    (tmp_path / COCO_LAYOUT[0]).write_text(json.dumps(coco))
    assert _load(tmp_path).sample(0).image.shape == (3, 3, 4)


def _error(callable_, *args, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        callable_(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _rewrite(root: Path, change) -> Path:
    coco = _coco()
    change(coco)
    (root / COCO_LAYOUT[0]).write_text(json.dumps(coco))
    return root


def test_a_missing_folder_or_annotation_file_names_what_was_tried(tmp_path):
    assert _error(_load, tmp_path / "absent") == f"data.path: folder not found: {tmp_path / 'absent'}"
    (tmp_path / "images/val2017").mkdir(parents=True)
    assert _error(_load, tmp_path) == (
        f"data.path: no annotation file for split 'val2017' in {tmp_path}; "
        "tried annotations/person_keypoints_val2017.json, annotations/val2017.json"
    )


def test_a_missing_image_folder_names_both_candidates(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / COCO_LAYOUT[0]).write_text(json.dumps(_coco()))
    assert _error(_load, tmp_path) == (
        f"data.path: no image folder for split 'val2017' in {tmp_path}; tried images/val2017/, val2017/"
    )


def test_json_that_is_not_coco_is_refused(tmp_path):
    _write(tmp_path)
    annotation_file = tmp_path / COCO_LAYOUT[0]
    annotation_file.write_text(json.dumps({"images": []}))
    assert _error(_load, tmp_path) == (
        f"data.path: {annotation_file} is not a COCO annotation file; it has no annotations, categories"
    )
    annotation_file.write_text("{not json")
    assert _error(_load, tmp_path).startswith(f"data.path: {annotation_file} is not valid JSON: ")


def test_a_keypoint_count_other_than_the_recipes_is_refused(tmp_path):
    message = _error(_load, _write(tmp_path), num_keypoints=17)
    assert message.startswith(
        "setup.keypoints: the dataset has 3 keypoints per instance, the recipe's keypoint set has 17 "
        "(category 'thing' in "
    )


def test_more_than_one_category_is_refused(tmp_path):
    root = _rewrite(_write(tmp_path), lambda coco: coco["categories"].append({"id": 2, "keypoints": []}))
    assert _error(_load, root) == (
        f"data.path: {root / COCO_LAYOUT[0]} has 2 categories; a keypoint dataset must have exactly one"
    )


def test_a_keypoint_array_of_the_wrong_length_names_the_annotation(tmp_path):
    root = _rewrite(_write(tmp_path), lambda coco: coco["annotations"][2].update(keypoints=[1] * 8))
    assert _error(_load, root) == (
        f"data.path: annotation 10 in {root / COCO_LAYOUT[0]} has 8 values; 3 keypoints need 9 (x, y, visibility)"
    )


def test_a_one_based_skeleton_is_required(tmp_path):
    root = _rewrite(_write(tmp_path), lambda coco: coco["categories"][0].update(skeleton=[[0, 1]]))
    assert "skeleton pair [0, 1]" in _error(_load, root)


def test_a_missing_image_file_is_found_at_load_time(tmp_path):
    _write(tmp_path)
    (tmp_path / "images/val2017/c.png").unlink()
    assert _error(_load, tmp_path) == (
        f"data.path: image file not found: {tmp_path / 'images/val2017/c.png'} (image id 9 in "
        f"{tmp_path / COCO_LAYOUT[0]}); 1 of 3 images are missing"
    )


def test_an_image_whose_size_differs_from_the_json_is_refused_when_decoded(tmp_path):
    data = _load(_rewrite(_write(tmp_path), lambda coco: coco["images"][0].update(width=5)))
    assert _error(data.sample, 0) == (
        f"data.path: image {tmp_path / 'images/val2017/a.png'} is 4x3 but its annotations say 5x3"
    )


def test_unknown_sources_and_local_revisions_are_refused(tmp_path):
    assert _error(load_keypoint_split, "idx", str(tmp_path), SPLIT, 3).startswith("data.source: unknown source 'idx'")
    assert _error(load_keypoint_split, "local", str(tmp_path), SPLIT, 3, revision="main") == (
        "data.revision: only applies to data.source 'hub', not 'local'"
    )


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)


def _official_zips(snapshot: Path) -> None:
    snapshot.mkdir()
    _zip(snapshot / "annotations_trainval2017.zip", {COCO_LAYOUT[0]: json.dumps(_coco()).encode()})
    _zip(snapshot / "val2017.zip", {f"val2017/{name}": data for name, data in _image_files().items()})


def _fake_hub(monkeypatch, snapshot: Path) -> list[dict]:
    calls: list[dict] = []

    def snapshot_download(**kwargs) -> str:
        calls.append(kwargs)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_hub_zips_are_downloaded_for_the_split_only_and_unpacked_once(tmp_path, monkeypatch):
    snapshot = tmp_path / "snapshot"
    _official_zips(snapshot)
    calls = _fake_hub(monkeypatch, snapshot)
    data = load_keypoint_split("hub", "org/coco-pose", SPLIT, 3, revision="abc")
    assert calls == [
        {
            "repo_id": "org/coco-pose",
            "repo_type": "dataset",
            "revision": "abc",
            "allow_patterns": [
                "annotations/person_keypoints_val2017.json",
                "annotations/val2017.json",
                "images/val2017/*",
                "val2017/*",
                "val2017.zip",
                "annotations_trainval2017.zip",
            ],
        }
    ]
    assert data.description == "hub COCO keypoints 'org/coco-pose' split 'val2017'"
    _assert_image_7(data, crowd=[True, False])
    assert sorted(path.name for path in snapshot.iterdir()) == [
        ".annotations_trainval2017.zip.extracted",
        ".val2017.zip.extracted",
        "annotations",
        "annotations_trainval2017.zip",
        "val2017",
        "val2017.zip",
    ]
    # A second run must not open the zips again: make them unreadable.
    for archive in snapshot.glob("*.zip"):
        archive.write_bytes(b"not a zip")
    _assert_image_7(load_keypoint_split("hub", "org/coco-pose", SPLIT, 3), crowd=[True, False])


def test_an_interrupted_unpacking_leaves_nothing_half_done_and_a_retry_finishes(tmp_path, monkeypatch):
    snapshot = tmp_path / "snapshot"
    _official_zips(snapshot)
    good = (snapshot / "val2017.zip").read_bytes()
    # Flip one byte inside the stored c.png, the last member: a.png and b.png unpack, then the CRC check fails.
    c_png = _image_files()["c.png"]
    at = good.index(c_png) + len(c_png) // 2
    (snapshot / "val2017.zip").write_bytes(good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :])
    _fake_hub(monkeypatch, snapshot)
    message = _error(load_keypoint_split, "hub", "org/coco-pose", SPLIT, 3)
    assert re.fullmatch(r"data\.path: could not unpack val2017\.zip of hub dataset 'org/coco-pose': .*CRC.*", message)
    assert not (snapshot / "val2017").exists() and not (snapshot / ".val2017.zip.extracted").exists()
    assert [path.name for path in snapshot.iterdir() if path.name.startswith(".val2017.zip.")] == []
    (snapshot / "val2017.zip").write_bytes(good)
    assert len(load_keypoint_split("hub", "org/coco-pose", SPLIT, 3)) == 3


def test_hub_failures_become_one_line_naming_data_path(monkeypatch):
    def offline(**kwargs):
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache.\nSecond line.")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _error(load_keypoint_split, "hub", "org/coco-pose", SPLIT, 17) == (
        "data.path: could not download hub dataset 'org/coco-pose' (split 'val2017'): Cannot find the requested "
        "files in the disk cache.; check the id, or your network (HF_HUB_OFFLINE is set)"
    )

    def bad_id(**kwargs):
        raise HFValidationError("Repo id must be in the form 'repo_name' or 'namespace/repo_name'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", bad_id)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert _error(load_keypoint_split, "hub", "a/b/c", SPLIT, 17) == (
        "data.path: could not download hub dataset 'a/b/c' (split 'val2017'): Repo id must be in the form "
        "'repo_name' or 'namespace/repo_name'; check the id, or your network"
    )
