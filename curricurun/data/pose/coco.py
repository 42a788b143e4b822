"""Load one split of a COCO-format keypoint dataset as :class:`PoseSample`s, with super-gradients' semantics.

Layouts under a root folder, detected in this order (the first annotation file found, then the first image
folder found)::

    annotations/person_keypoints_<split>.json   COCO's own name (SG's data_dir layout and the official zips)
    annotations/<split>.json                    custom keypoint sets
    images/<split>/                             SG's layout (``images/val2017/000000000139.jpg``)
    <split>/                                    the official zips unpacked (``val2017/000000000139.jpg``)

``file_name`` in the JSON is relative to the image folder; an image without one is ``<id:012>.jpg``, as SG
assumes (``coco_utils.py: parse_coco_into_keypoints_annotations``). ``source="hub"`` downloads only what the
split needs from a Hub dataset repo holding the same layout, or the official zips: ``annotations_trainval<year>.zip``
(holding ``annotations/``) and ``<split>.zip`` (holding ``<split>/``). Zips are unpacked once into the snapshot
folder itself, so it then reads exactly like a local unzipped copy; a ``.<zip name>.extracted`` marker skips them
on later runs (the unpacked copy doubles the disk space: the zips stay, they are the Hub cache's files).

What SG's ``COCOPoseEstimationDataset`` does, and this module with it (super-gradients 3.7.1; SG's
``pose_estimation_datasets/coco_pose_estimation_dataset.py`` and ``coco_utils.py``):

- Samples are the JSON's ``images`` in file order; each image's instances are its annotations in file order.
- No annotation is dropped: instances with ``num_keypoints`` 0 (every keypoint unlabelled) and crowd regions
  stay. The training transforms drop instances with no visible keypoint later (``KeypointsRemoveSmallObjects``
  with ``min_visible_keypoints 1``), which is what removes COCO's crowd regions (they carry no keypoints).
- ``include_empty``: SG's ``include_empty_samples``; False keeps the images with at least one annotation of any
  kind (a crowd region or a keypoint-less instance counts).
- ``crowd``: SG's ``crowd_annotations_action``. ``"no_action"`` (validation) keeps ``iscrowd`` as the crowd flag,
  so the metric ignores those regions; ``"mask_as_normal"`` (training) sets every flag to False, so crowd regions
  become ordinary instances (despite the name nothing is masked: YOLO-NAS-Pose's collate drops SG's crowd mask).
- Boxes: COCO's ``[x, y, w, h]`` become ``[x, y, x + w, y + h]``, clipped to ``[0, W] × [0, H]`` of the decoded
  image (SG: "some annotations extend 1-2px outside of image boundaries").
- Areas: the annotation's ``area`` (COCO's segmentation area, the OKS scale), else ``0.53 · w · h`` (SG's
  fallback). SG decides from the first annotation only; here each annotation decides for itself.
- Images: SG reads with ``cv2.imread(path, IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION)``: 3 channels, EXIF
  orientation ignored (a plain ``cv2.imread`` would apply it to JPEGs), and an error if the size differs from
  the JSON's ``width``/``height``. Here PIL ``open`` + ``convert("RGB")`` does the same (PIL never applies
  EXIF orientation by itself). SG keeps cv2's BGR order and its ``predict()`` flips RGB input to BGR; this
  loader returns RGB.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from curricurun.data.pose.coco_hub import download_split, hub_archives
from curricurun.data.pose.keypoints import PoseSample
from curricurun.errors import UserError

SOURCES = ("hub", "local")
CROWD_ACTIONS = ("mask_as_normal", "no_action")
AREA_FROM_BOX = 0.53  # SG coco_utils.py: its heuristic instance area from the box area, where "area" is absent


class KeypointData:
    """One split of a COCO-format keypoint dataset.

    Build it with :func:`load_keypoint_split`. The JSON is parsed once into flat arrays (annotations grouped
    by image, ``_starts[i]:_starts[i + 1]`` being image ``i``'s), and images are decoded in :meth:`sample`,
    so the object pickles to DataLoader workers as a few arrays and a list of file names.

    Attributes:
        num_keypoints: J, keypoints per instance.
        channels: 3 (images are converted to RGB).
        num_classes: 1 (one keypoint category, as SG requires).
        description: what was loaded, for messages.
        keypoint_names: the category's ``keypoints`` names.
        skeleton: the category's ``skeleton`` as 0-based pairs (COCO's JSON counts from 1).
    """

    channels = 3
    num_classes = 1

    def __init__(
        self,
        *,
        images_dir: Path,
        image_ids: np.ndarray,
        file_names: list[str],
        sizes: np.ndarray,
        starts: np.ndarray,
        keypoints: np.ndarray,
        boxes: np.ndarray,
        areas: np.ndarray,
        crowd: np.ndarray,
        keypoint_names: list[str],
        skeleton: list[tuple[int, int]],
        description: str,
    ):
        self._images_dir = str(images_dir)
        self._image_ids = image_ids
        self._file_names = file_names
        self._sizes = sizes
        self._starts = starts
        self._keypoints = keypoints
        self._boxes = boxes
        self._areas = areas
        self._crowd = crowd
        self.num_keypoints = keypoints.shape[1]
        self.keypoint_names = keypoint_names
        self.skeleton = skeleton
        self.description = description

    def __len__(self) -> int:
        return len(self._file_names)

    def image_id(self, index: int) -> int:
        return int(self._image_ids[index])

    def file_name(self, index: int) -> str:
        return self._file_names[index]

    def sample(self, index: int) -> PoseSample:
        """Decode image ``index`` (float ``[3, H, W]``, RGB, 0..255) with its instances; boxes clipped to it."""
        path = os.path.join(self._images_dir, self._file_names[index])
        try:
            with Image.open(path) as picture:
                pixels = np.asarray(picture.convert("RGB"))
        except OSError as error:
            raise UserError(f"data.path: cannot read image {path}: {error}") from None
        height, width = pixels.shape[:2]
        expected_height, expected_width = (int(side) for side in self._sizes[index])
        if (expected_height, expected_width) != (0, 0) and (expected_height, expected_width) != (height, width):
            raise UserError(
                f"data.path: image {path} is {width}x{height} "
                f"but its annotations say {expected_width}x{expected_height}"
            )
        start, stop = int(self._starts[index]), int(self._starts[index + 1])
        boxes = self._boxes[start:stop].copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        return PoseSample(
            image=torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)),
            keypoints=torch.from_numpy(self._keypoints[start:stop].copy()),
            boxes=torch.from_numpy(boxes),
            areas=torch.from_numpy(self._areas[start:stop].copy()),
            crowd=torch.from_numpy(self._crowd[start:stop].copy()),
        )


def load_keypoint_split(
    source: str,
    path: str,
    split: str,
    num_keypoints: int,
    *,
    crowd: Literal["mask_as_normal", "no_action"] = "no_action",
    include_empty: bool = True,
    revision: str | None = None,
    max_samples: int | None = None,
) -> KeypointData:
    """Load ``split`` of the COCO-format keypoint dataset at ``path`` (a folder, or a Hub dataset repo id).

    ``num_keypoints`` is the recipe's keypoint count, checked against the dataset's category. ``max_samples``
    keeps the first images (after ``include_empty`` filtering), a deterministic prefix for quick runs.

    Raises:
        UserError: one line naming the recipe field or file at fault.
    """
    if source not in SOURCES:
        raise UserError(
            f"data.source: unknown source '{source}' for keypoint data; choose one of: {', '.join(SOURCES)}"
        )
    if crowd not in CROWD_ACTIONS:
        raise ValueError(f"crowd: expected one of {CROWD_ACTIONS}, got {crowd!r}")
    if source == "hub":
        root = download_split(path, split, revision)
        shown = f"hub dataset '{path}' (its {' and '.join(hub_archives(split))} unpacked where present)"
        description = f"hub COCO keypoints '{path}' split '{split}'"
    else:
        if revision is not None:
            raise UserError("data.revision: only applies to data.source 'hub', not 'local'")
        root = Path(path).expanduser()
        if not root.is_dir():
            raise UserError(f"data.path: folder not found: {root}")
        shown, description = str(root), f"local COCO keypoints '{root}' split '{split}'"
    annotation_file, images_dir = _find_layout(root, split, shown)
    return _read_split(annotation_file, images_dir, num_keypoints, crowd, include_empty, max_samples, description)


def _find_layout(root: Path, split: str, shown: str) -> tuple[Path, Path]:
    """The annotation file and the image folder of ``split`` under ``root``, in the module docstring's order."""
    annotation_names = [f"annotations/person_keypoints_{split}.json", f"annotations/{split}.json"]
    annotation_file = next((root / name for name in annotation_names if (root / name).is_file()), None)
    if annotation_file is None:
        raise UserError(
            f"data.path: no annotation file for split '{split}' in {shown}; tried {', '.join(annotation_names)}"
        )
    image_dirs = [f"images/{split}", split]
    images_dir = next((root / name for name in image_dirs if (root / name).is_dir()), None)
    if images_dir is None:
        raise UserError(f"data.path: no image folder for split '{split}' in {shown}; tried {'/, '.join(image_dirs)}/")
    return annotation_file, images_dir


def _read_split(
    annotation_file: Path,
    images_dir: Path,
    num_keypoints: int,
    crowd_action: str,
    include_empty: bool,
    max_samples: int | None,
    description: str,
) -> KeypointData:
    coco = _read_json(annotation_file)
    category = _keypoint_category(coco, annotation_file, num_keypoints)
    images = coco["images"]
    try:
        image_ids = np.array([image["id"] for image in images], dtype=np.int64)
        file_names = [str(image.get("file_name", f"{image['id']:012}.jpg")) for image in images]
        sizes = np.array([(image.get("height", 0), image.get("width", 0)) for image in images], dtype=np.int64)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"data.path: {annotation_file} has images without an integer 'id'") from None
    sizes = sizes.reshape(-1, 2)
    index_of_id = {int(image_id): i for i, image_id in enumerate(image_ids)}
    owners, keypoints, boxes, areas, crowd = _read_annotations(
        coco["annotations"], index_of_id, annotation_file, num_keypoints
    )
    if crowd_action == "mask_as_normal":
        crowd[:] = False

    order = np.argsort(owners, kind="stable")  # group by image, keeping file order within an image
    owners, keypoints, boxes, areas, crowd = owners[order], keypoints[order], boxes[order], areas[order], crowd[order]
    counts = np.bincount(owners, minlength=len(images))
    kept = np.arange(len(images)) if include_empty else np.flatnonzero(counts)
    kept = kept[:max_samples]
    selected = np.isin(owners, kept)
    file_names = [file_names[i] for i in kept]
    _check_images_exist(images_dir, file_names, image_ids[kept], annotation_file)
    return KeypointData(
        images_dir=images_dir,
        image_ids=image_ids[kept],
        file_names=file_names,
        sizes=sizes[kept],
        starts=np.concatenate([[0], np.cumsum(counts[kept])]).astype(np.int64),
        keypoints=keypoints[selected],
        boxes=boxes[selected],
        areas=areas[selected],
        crowd=crowd[selected],
        keypoint_names=[str(name) for name in category["keypoints"]],
        skeleton=_skeleton(category, annotation_file, num_keypoints),
        description=description,
    )


def _read_json(annotation_file: Path) -> dict[str, Any]:
    try:
        with open(annotation_file, encoding="utf-8") as stream:
            coco = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"data.path: {annotation_file} is not valid JSON: {error}") from None
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(coco, dict) or key not in coco]
    if missing:
        raise UserError(f"data.path: {annotation_file} is not a COCO annotation file; it has no {', '.join(missing)}")
    return coco


def _keypoint_category(coco: dict[str, Any], annotation_file: Path, num_keypoints: int) -> dict[str, Any]:
    """The one category, whose ``keypoints`` must number ``num_keypoints`` (SG: "exactly one category")."""
    categories = coco["categories"]
    if len(categories) != 1:
        raise UserError(
            f"data.path: {annotation_file} has {len(categories)} categories; a keypoint dataset must have exactly one"
        )
    category = categories[0]
    names = category.get("keypoints") if isinstance(category, dict) else None
    if not isinstance(names, list):
        raise UserError(f"data.path: the category in {annotation_file} has no 'keypoints' list")
    if len(names) != num_keypoints:
        raise UserError(
            f"setup.keypoints: the dataset has {len(names)} keypoints per instance, the recipe's keypoint set has "
            f"{num_keypoints} (category '{category.get('name')}' in {annotation_file})"
        )
    return category


def _read_annotations(
    annotations: list[dict[str, Any]], index_of_id: dict[int, int], annotation_file: Path, num_keypoints: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Owner image index, keypoints ``[A, J, 3]``, XYXY boxes, areas and crowd flags of the annotations whose
    image is listed (SG ignores the others too)."""
    owners, keypoints, boxes, areas, crowd = [], [], [], [], []
    for annotation in annotations:
        owner = index_of_id.get(annotation.get("image_id"))
        if owner is None:
            continue
        name = f"annotation {annotation.get('id')} in {annotation_file}"
        points, box = annotation.get("keypoints"), annotation.get("bbox")
        if not isinstance(points, list) or len(points) != 3 * num_keypoints:
            found = f"{len(points)} values" if isinstance(points, list) else "no 'keypoints' list"
            raise UserError(
                f"data.path: {name} has {found}; {num_keypoints} keypoints need {3 * num_keypoints} (x, y, visibility)"
            )
        if not isinstance(box, list) or len(box) != 4:
            raise UserError(f"data.path: {name} has no 'bbox' [x, y, width, height]")
        owners.append(owner)
        keypoints.append(points)
        boxes.append(box)
        areas.append(annotation.get("area", np.nan))
        crowd.append(bool(annotation.get("iscrowd", 0)))
    try:
        boxes_xywh = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        keypoint_array = np.array(keypoints, dtype=np.float32).reshape(-1, num_keypoints, 3)
        area_array = np.array(areas, dtype=np.float32)
    except (TypeError, ValueError):
        raise UserError(f"data.path: {annotation_file} has non-numeric keypoints, bbox or area values") from None
    no_area = np.isnan(area_array)
    area_array[no_area] = AREA_FROM_BOX * boxes_xywh[no_area, 2] * boxes_xywh[no_area, 3]
    boxes_xyxy = np.concatenate([boxes_xywh[:, :2], boxes_xywh[:, :2] + boxes_xywh[:, 2:]], axis=1)
    return np.array(owners, dtype=np.int64), keypoint_array, boxes_xyxy, area_array, np.array(crowd, dtype=bool)


def _skeleton(category: dict[str, Any], annotation_file: Path, num_keypoints: int) -> list[tuple[int, int]]:
    """COCO's 1-based limb pairs as 0-based pairs."""
    pairs = []
    for pair in category.get("skeleton") or []:
        if len(pair) != 2 or not all(isinstance(i, int) and 1 <= i <= num_keypoints for i in pair):
            raise UserError(
                f"data.path: skeleton pair {pair} in {annotation_file} is not two keypoint numbers "
                f"in 1..{num_keypoints}"
                " (COCO skeletons count from 1)"
            )
        pairs.append((pair[0] - 1, pair[1] - 1))
    return pairs


def _check_images_exist(images_dir: Path, file_names: list[str], image_ids: np.ndarray, annotation_file: Path) -> None:
    """Fail at load time, not in a DataLoader worker hours later; one listing of the folder instead of one
    ``stat`` per image (118k for COCO train)."""
    present = set(os.listdir(images_dir))
    missing = [
        i
        for i, name in enumerate(file_names)
        if not (name in present if "/" not in name and os.sep not in name else (images_dir / name).is_file())
    ]
    if missing:
        first = missing[0]
        raise UserError(
            f"data.path: image file not found: {images_dir / file_names[first]} (image id {image_ids[first]} in "
            f"{annotation_file}); {len(missing)} of {len(file_names)} images are missing"
        )
