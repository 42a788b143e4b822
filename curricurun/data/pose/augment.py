"""super-gradients' YOLO-NAS-Pose train and validation pipelines as pure functions of ``(sample, generator)``.

Every random draw comes from the ``torch.Generator`` the caller passes, in the order SG draws them, so a
sample's augmentation depends on its index and seed only (not on the worker or the rank). The transforms and
their order are SG's ``coco_pose_estimation_yolo_nas_mosaic_dataset_params.yaml`` (N/S) and ``..._mosaic_heavy_...``
(M/L) (SG 3.7.1 ``coco_pose_estimation_yolo_nas_mosaic*_dataset_params.yaml``); each function cites the SG file under
``src/super_gradients/training/transforms/keypoints/`` whose semantics it follows. Images are float ``[C, H, W]``
on 0..255 and are clamped there wherever SG's uint8 image would saturate; SG's uint8 rounding is not imitated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curricurun.data.pose.keypoints import (
    PAD_VALUE,
    PoseSample,
    flip_horizontal,
    pad_to,
    resize_longest_side,
)

Probability = Annotated[float, Field(ge=0, le=1)]
Interpolation = Literal["nearest", "bilinear", "bicubic"]

# SG's affine samples cv2 interpolation codes 0..4 uniformly (``interpolation_mode: [0, 1, 2, 3, 4]``). cv2's
# warpAffine treats INTER_AREA (3) as INTER_LINEAR (opencv imgwarp.cpp, remap); torch has no Lanczos, so
# INTER_LANCZOS4 (4) becomes bicubic, the closest kernel torch offers.
AFFINE_INTERPOLATIONS: tuple[Interpolation, ...] = ("nearest", "bilinear", "bicubic", "bilinear", "bicubic")


class PoseAugmentation(BaseModel):
    """Every knob of SG's pose train pipeline, in pipeline order; the defaults are SG's N/S preset.

    Each ``*_prob`` is the chance that the transform runs on a sample; the transforms before mosaic run on each
    of mosaic's four samples independently (SG keypoints_compose.py ``_apply_transforms``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    flip_prob: Probability = Field(default=0.5, description="horizontal flip with the keypoint flip map")
    brightness: tuple[float, float] = Field(default=(0.8, 1.2), description="gain range on the channel mean")
    contrast: tuple[float, float] = Field(default=(0.8, 1.2), description="gain range around the channel mean")
    brightness_contrast_prob: Probability = 0.5
    reverse_channels_prob: Probability = Field(default=0.0, description="RGB ↔ BGR swap (M/L preset only)")
    hsv_gains: tuple[float, float, float] = Field(
        default=(20.0, 20.0, 20.0), description="max shift of hue (cv2 units of 2°), saturation and value (0..255)"
    )
    hsv_prob: Probability = 0.5
    rotate90_prob: Probability = Field(default=0.0, description="rotation by k·90°, k uniform in 0..3 (M/L only)")
    affine_max_rotation: float = Field(default=5.0, ge=0, description="degrees, uniform in ±max")
    affine_scale: tuple[float, float] = Field(default=(0.75, 1.5), description="zoom range")
    affine_max_translate: float = Field(
        default=0.1, ge=0, description="shift of the pivot as a fraction of the side (SG moves the centre)"
    )
    affine_prob: Probability = 0.75
    mosaic_prob: Probability = Field(default=0.5, description="2×2 mosaic with 3 uniformly drawn samples")
    min_instance_area: float = Field(default=1.0, ge=0, description="drop instances with a smaller area (px²)")
    min_visible_keypoints: int = Field(default=1, ge=0, description="drop instances with fewer labelled keypoints")

    @model_validator(mode="after")
    def _valid_ranges(self) -> PoseAugmentation:
        for name in ("brightness", "contrast", "affine_scale"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name}: expected (low, high) with 0 <= low <= high, got ({low}, {high})")
        if self.affine_scale[0] == 0:
            raise ValueError("affine_scale: the low end must be > 0 (a zero zoom erases the image)")
        if min(self.hsv_gains) < 0:
            raise ValueError(f"hsv_gains: expected gains >= 0, got {self.hsv_gains}")
        return self


SG_MOSAIC = PoseAugmentation()
SG_MOSAIC_HEAVY = PoseAugmentation(
    brightness=(0.7, 1.3),
    contrast=(0.7, 1.3),
    brightness_contrast_prob=0.75,
    reverse_channels_prob=0.5,
    hsv_gains=(25.0, 25.0, 25.0),
    hsv_prob=0.75,
    rotate90_prob=0.5,
    affine_max_rotation=7.0,
    affine_scale=(0.6, 1.75),
)
NO_AUGMENTATION = PoseAugmentation(
    flip_prob=0.0,
    brightness_contrast_prob=0.0,
    hsv_prob=0.0,
    affine_prob=0.0,
    mosaic_prob=0.0,
    min_instance_area=0.0,
    min_visible_keypoints=0,
)
PRESETS: dict[str, PoseAugmentation] = {
    "sg_mosaic": SG_MOSAIC,
    "sg_mosaic_heavy": SG_MOSAIC_HEAVY,
    "none": NO_AUGMENTATION,
}


def _hide_outside(keypoints: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Visibility 0 for keypoints outside ``[0, W) × [0, H)``; their coordinates stay (SG does the same)."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    outside = (x < 0) | (y < 0) | (x >= width) | (y >= height)
    keypoints = keypoints.clone()
    keypoints[..., 2] = torch.where(outside, torch.zeros_like(keypoints[..., 2]), keypoints[..., 2])
    return keypoints


def _box_areas(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def sanitize(sample: PoseSample) -> PoseSample:
    """SG's ``PoseEstimationSample.sanitize_sample`` (samples/pose_estimation_sample.py).

    Keypoints (pixel indices) outside ``[0, W) × [0, H)`` lose their visibility; boxes (continuous) are clamped
    to ``[0, W] × [0, H]`` (``change_bbox_bounds_for_image_size_inplace``; older SG releases clamped to W − 1);
    areas shrink by the clamped box area over the original one (``+ 1e-6`` in the denominator, as SG). SG runs
    it on the loaded sample at the start of every pipeline, train and validation (keypoints_compose.py
    ``apply_to_sample``), and after every affine warp. It drops nothing.
    """
    height, width = sample.image.shape[-2:]
    boxes = sample.boxes.clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    areas = sample.areas * _box_areas(boxes) / (_box_areas(sample.boxes) + 1e-6)
    return replace(sample, keypoints=_hide_outside(sample.keypoints, height, width), boxes=boxes, areas=areas)


def adjust_brightness_contrast(sample: PoseSample, brightness: float, contrast: float) -> PoseSample:
    """``(x − m)·contrast + m·brightness`` with ``m`` the per-channel mean, clamped to 0..255.

    SG keypoints_brightness_contrast.py: its docstring says ``+ m + brightness`` but the code multiplies the
    mean, as here. Keypoints and boxes are untouched.
    """
    mean = sample.image.mean(dim=(-2, -1), keepdim=True)
    image = ((sample.image - mean) * contrast + mean * brightness).clamp(0, 255)
    return replace(sample, image=image)


def reverse_channels(sample: PoseSample) -> PoseSample:
    """RGB ↔ BGR (SG keypoints_reverse_image_channels.py); teaches the model to ignore the channel order."""
    return replace(sample, image=sample.image.flip(0))


def shift_hsv(sample: PoseSample, hue: float, saturation: float, value: float) -> PoseSample:
    """Add ``hue`` to H (cv2's 8-bit scale: 180 units = 360°, wrapping) and ``saturation`` / ``value`` to S / V
    (0..255, clamped), the update of SG's ``augment_hsv`` (training/transforms/transforms.py).

    SG runs it on its BGR image with BGR↔HSV conversions; on our RGB image the RGB conversions give the same
    colours. The conversion is cv2's (V = max, S = 255·(max − min)/max, H from the dominant channel) without
    its rounding to integers.
    """
    image = sample.image
    if image.shape[0] != 3:
        raise ValueError(f"HSV augmentation needs 3 channels, got {image.shape[0]}")
    red, green, blue = image.unbind(0)
    maximum, minimum = image.amax(0), image.amin(0)
    delta = maximum - minimum
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    degrees = torch.where(
        maximum == red,
        60 * (green - blue) / safe_delta,
        torch.where(maximum == green, 120 + 60 * (blue - red) / safe_delta, 240 + 60 * (red - green) / safe_delta),
    )
    degrees = torch.where(delta > 0, degrees, torch.zeros_like(degrees))
    sat = 255 * delta / torch.where(maximum > 0, maximum, torch.ones_like(maximum))
    new_hue = (degrees / 2 + hue) % 180
    new_sat = (sat + saturation).clamp(0, 255)
    new_value = (maximum + value).clamp(0, 255)
    # HSV → RGB: channel n (5: R, 3: G, 1: B) is V − chroma·clamp(min(k, 4 − k), 0, 1), k = (n + H/60°) mod 6.
    chroma = new_value * new_sat / 255
    sixths = new_hue / 30
    channels = []
    for n in (5, 3, 1):
        k = (n + sixths) % 6
        channels.append(new_value - chroma * torch.minimum(k, 4 - k).clamp(0, 1))
    return replace(sample, image=torch.stack(channels).clamp(0, 255))


def draw_hsv_shift(gains: tuple[float, float, float], generator: torch.Generator) -> tuple[int, int, int]:
    """SG's draw: ``uniform(−1, 1)·gain`` per channel, each kept with probability ½, truncated to an integer."""
    uniform = torch.rand(3, generator=generator, dtype=torch.float64) * 2 - 1
    kept = torch.randint(0, 2, (3,), generator=generator)
    shift = uniform * torch.tensor(gains, dtype=torch.float64) * kept
    hue, saturation, value = (int(x) for x in shift.tolist())  # int() truncates toward 0, like astype(int16)
    return hue, saturation, value


def augment_hsv(sample: PoseSample, gains: tuple[float, float, float], generator: torch.Generator) -> PoseSample:
    """A random HSV shift (SG keypoints_hsv.py): :func:`draw_hsv_shift` then :func:`shift_hsv`."""
    return shift_hsv(sample, *draw_hsv_shift(gains, generator))


def rotate90(sample: PoseSample, k: int) -> PoseSample:
    """Rotate by ``k``·90° counter-clockwise like ``np.rot90(image, k)`` (SG keypoints_random_rotate90.py).

    Keypoints (pixel indices) map as k=1: ``(y, W−1−x)``, k=2: ``(W−1−x, H−1−y)``, k=3: ``(H−1−y, x)``;
    boxes (continuous) as k=1: ``(y1, W−x2, y2, W−x1)``, k=2: ``(W−x2, H−y2, W−x1, H−y1)``,
    k=3: ``(H−y2, x1, H−y1, x2)`` (SG's ``DetectionRandomRotate90.xyxy_bbox_rot90``). No flip map: a rotation
    keeps left and right. Areas and visibilities are unchanged (nothing leaves the image).
    """
    if k not in (0, 1, 2, 3):
        raise ValueError(f"rotate90: k must be 0, 1, 2 or 3, got {k}")
    rows, cols = sample.image.shape[-2:]
    x, y, visibility = sample.keypoints.unbind(-1)
    x1, y1, x2, y2 = sample.boxes.unbind(-1)
    if k == 0:
        return sample
    if k == 1:
        points, box = (y, cols - 1 - x), (y1, cols - x2, y2, cols - x1)
    elif k == 2:
        points, box = (cols - 1 - x, rows - 1 - y), (cols - x2, rows - y2, cols - x1, rows - y1)
    else:
        points, box = (rows - 1 - y, x), (rows - y2, x1, rows - y1, x2)
    return replace(
        sample,
        image=torch.rot90(sample.image, k, dims=(-2, -1)),
        keypoints=torch.stack([*points, visibility], dim=-1),
        boxes=torch.stack(box, dim=-1),
    )


def affine_matrix(height: int, width: int, angle: float, scale: float, translate: tuple[float, float]) -> torch.Tensor:
    """cv2's ``getRotationMatrix2D(centre, angle, scale)`` about ``centre = (W/2 + dx·W, H/2 + dy·H)``, ``[2, 3]``.

    SG keypoints_random_affine.py ``_get_affine_matrix``: ``translate`` moves the pivot, so with ``angle = 0``
    and ``scale = 1`` it has no effect at all. Positive angles turn the picture counter-clockwise on screen.
    """
    radians = math.radians(angle)
    a, b = scale * math.cos(radians), scale * math.sin(radians)
    cx, cy = width / 2 + translate[0] * width, height / 2 + translate[1] * height
    return torch.tensor(
        [[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy]],
        dtype=torch.float64,
    )


def _apply_matrix(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` points through a ``[2, 3]`` affine matrix, in the points' dtype."""
    moved = points.double() @ matrix[:, :2].T + matrix[:, 2]
    return moved.to(points.dtype)


def _warp(image: torch.Tensor, matrix: torch.Tensor, interpolation: Interpolation, value: float) -> torch.Tensor:
    """cv2 ``warpAffine`` with a constant border: output pixel ``p`` samples the input at ``M⁻¹ p``.

    Pixel ``i`` is centred on coordinate ``i`` (cv2's and COCO's convention), which ``grid_sample`` with
    ``align_corners=False`` calls ``(2i + 1)/W − 1``; ``to_grid`` is that change of coordinates, so the sampling
    matrix in grid units is ``to_grid · M⁻¹ · to_grid⁻¹``. Sampling ``image − value`` with zero padding and
    adding ``value`` back gives cv2's BORDER_CONSTANT blend at the edges.
    """
    height, width = image.shape[-2:]
    to_grid = torch.tensor(
        [[2 / width, 0.0, 1 / width - 1], [0.0, 2 / height, 1 / height - 1], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    inverse = torch.linalg.inv(torch.cat([matrix, matrix.new_tensor([[0.0, 0.0, 1.0]])]))
    theta = (to_grid @ inverse @ torch.linalg.inv(to_grid))[:2]
    grid = F.affine_grid(theta[None].float(), [1, image.shape[0], height, width], align_corners=False)
    warped = F.grid_sample(
        (image - value)[None].float(), grid, mode=interpolation, padding_mode="zeros", align_corners=False
    )[0]
    return (warped + value).clamp(0, 255)


def affine_transform(
    sample: PoseSample,
    angle: float,
    scale: float,
    translate: tuple[float, float] = (0.0, 0.0),
    interpolation: Interpolation = "bilinear",
    value: float = PAD_VALUE,
) -> PoseSample:
    """Rotate, zoom and shift the pivot (SG keypoints_random_affine.py ``apply_to_sample``); the size stays.

    The image is warped with the matrix of :func:`affine_matrix`, padding with ``value`` (SG: 127). Keypoints go
    through the same matrix and lose their visibility outside the image; boxes become the bounding box of their
    four warped corners; areas are multiplied by ``|det M| = scale²``; then :func:`sanitize` clamps the boxes
    and shrinks the areas of clamped boxes, as SG's ``sanitize_sample`` at the end of the transform.
    """
    height, width = sample.image.shape[-2:]
    matrix = affine_matrix(height, width, angle, scale, translate)
    keypoints = sample.keypoints.clone()
    keypoints[..., :2] = _apply_matrix(matrix, keypoints[..., :2])
    x1, y1, x2, y2 = sample.boxes.unbind(-1)
    corners = torch.stack([torch.stack(corner, dim=-1) for corner in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], 1)
    moved = _apply_matrix(matrix, corners)
    warped = replace(
        sample,
        image=_warp(sample.image, matrix, interpolation, value),
        keypoints=_hide_outside(keypoints, height, width),
        boxes=torch.cat([moved.amin(dim=1), moved.amax(dim=1)], dim=-1),
        areas=sample.areas * abs(float(torch.linalg.det(matrix[:, :2]))),
    )
    return sanitize(warped)


def _translate(sample: PoseSample, dx: int, dy: int) -> PoseSample:
    """Move keypoints (visible or not, as SG) and boxes by ``(dx, dy)``."""
    keypoints = sample.keypoints.clone()
    keypoints[..., 0] += dx
    keypoints[..., 1] += dy
    boxes = sample.boxes + torch.tensor([dx, dy, dx, dy], dtype=sample.boxes.dtype)
    return replace(sample, keypoints=keypoints, boxes=boxes)


def _pad(sample: PoseSample, top: int, bottom: int, left: int, right: int, value: float) -> PoseSample:
    """Border of ``value`` around the image; the instances move by ``(left, top)``."""
    image = F.pad(sample.image, (left, right, top, bottom), value=value)
    return _translate(replace(sample, image=image), left, top)


def _join(first: PoseSample, second: PoseSample, dim: int) -> PoseSample:
    """Concatenate two images along ``dim`` (−1: side by side, −2: one above the other) and their instances."""
    offset = first.image.shape[dim]
    second = _translate(second, offset, 0) if dim == -1 else _translate(second, 0, offset)
    return PoseSample(
        image=torch.cat([first.image, second.image], dim=dim),
        keypoints=torch.cat([first.keypoints, second.keypoints]),
        boxes=torch.cat([first.boxes, second.boxes]),
        areas=torch.cat([first.areas, second.areas]),
        crowd=torch.cat([first.crowd, second.crowd]),
    )


def mosaic(samples: list[PoseSample], value: float = PAD_VALUE) -> PoseSample:
    """SG keypoints_mosaic.py: a 2×2 grid ``[top-left, top-right, bottom-left, bottom-right]``, nothing resized.

    Each row is the two images side by side at the height of the taller one: the top row pads shorter images
    ABOVE (they sit on the centre line), the bottom row pads BELOW. The narrower row is then padded equally left
    and right (extra column on the right). The canvas is ``max(H_tl, H_tr) + max(H_bl, H_br)`` by
    ``max(W_tl + W_tr, W_bl + W_br)``, padded with ``value`` (SG: 127); there is no random centre and no crop,
    the later longest-side resize shrinks the whole grid. Areas and crowd flags travel unchanged.
    """
    if len(samples) != 4:
        raise ValueError(f"mosaic needs 4 samples, got {len(samples)}")
    rows = []
    for (left, right), pad_above in (((samples[0], samples[1]), True), ((samples[2], samples[3]), False)):
        height = max(left.image.shape[-2], right.image.shape[-2])
        padded = []
        for part in (left, right):
            extra = height - part.image.shape[-2]
            padded.append(_pad(part, extra if pad_above else 0, 0 if pad_above else extra, 0, 0, value))
        rows.append(_join(*padded, dim=-1))
    width = max(row.image.shape[-1] for row in rows)
    centred = []
    for row in rows:
        extra = width - row.image.shape[-1]
        centred.append(_pad(row, 0, 0, extra // 2, extra - extra // 2, value))
    return _join(*centred, dim=-2)


def remove_small_objects(sample: PoseSample, min_area: float, min_visible: int) -> PoseSample:
    """Drop instances with ``area < min_area`` or fewer than ``min_visible`` keypoints of visibility > 0.

    SG keypoints_remove_small_objects.py with ``filter_by_visible_joints`` and ``filter_by_pose_area``; the area
    is the instance's (segmentation) area as resized and warped so far, not its box's.
    """
    visible = (sample.keypoints[..., 2] > 0).sum(dim=-1)
    keep = (visible >= min_visible) & (sample.areas >= min_area)
    return PoseSample(sample.image, sample.keypoints[keep], sample.boxes[keep], sample.areas[keep], sample.crowd[keep])


def _chance(generator: torch.Generator, probability: float) -> bool:
    return torch.rand((), generator=generator, dtype=torch.float64).item() < probability


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


def _before_mosaic(
    sample: PoseSample, generator: torch.Generator, augmentation: PoseAugmentation, flip_map: list[int]
) -> PoseSample:
    """The transforms SG lists before ``KeypointsMosaic``, each drawing its coin then its parameters."""
    if _chance(generator, augmentation.flip_prob):
        sample = flip_horizontal(sample, flip_map)
    if _chance(generator, augmentation.brightness_contrast_prob):
        contrast = _uniform(generator, *augmentation.contrast)  # SG draws contrast first
        sample = adjust_brightness_contrast(sample, _uniform(generator, *augmentation.brightness), contrast)
    if _chance(generator, augmentation.reverse_channels_prob):
        sample = reverse_channels(sample)
    if _chance(generator, augmentation.hsv_prob):
        sample = augment_hsv(sample, augmentation.hsv_gains, generator)
    if _chance(generator, augmentation.rotate90_prob):
        sample = rotate90(sample, int(torch.randint(0, 4, (), generator=generator)))
    if _chance(generator, augmentation.affine_prob):
        rotation, shift = augmentation.affine_max_rotation, augmentation.affine_max_translate
        angle = _uniform(generator, -rotation, rotation)
        scale = _uniform(generator, *augmentation.affine_scale)
        translate = (_uniform(generator, -shift, shift), _uniform(generator, -shift, shift))
        mode = AFFINE_INTERPOLATIONS[int(torch.randint(0, len(AFFINE_INTERPOLATIONS), (), generator=generator))]
        sample = affine_transform(sample, angle, scale, translate, mode)
    return sample


def train_sample(
    load: Callable[[int], PoseSample],
    index: int,
    dataset_size: int,
    generator: torch.Generator,
    augmentation: PoseAugmentation,
    flip_map: list[int],
    size: int,
) -> PoseSample:
    """SG's train pipeline for sample ``index``: a function of ``index`` and the generator's seed only.

    :func:`sanitize` the loaded sample (SG keypoints_compose.py), run the pre-mosaic transforms; with probability
    ``mosaic_prob`` draw 3 more indices uniformly from ``[0, dataset_size)`` (repeats allowed, like SG's
    ``load_random_sample``), send each, unsanitized as in SG, through the same pre-mosaic transforms with fresh
    draws, and tile the four; then longest side ``size``, CENTRE padding to ``size × size`` with 127 and
    :func:`remove_small_objects`. The image stays on 0..255 (the setup divides by 255 like SG's
    ``KeypointsImageStandardize``).
    """
    if dataset_size < 1:
        raise ValueError(f"train_sample: dataset_size must be >= 1, got {dataset_size}")
    sample = _before_mosaic(sanitize(load(index)), generator, augmentation, flip_map)
    if _chance(generator, augmentation.mosaic_prob):
        others = torch.randint(0, dataset_size, (3,), generator=generator).tolist()  # all drawn before any loads
        extras = [_before_mosaic(load(other), generator, augmentation, flip_map) for other in others]
        sample = mosaic([sample, *extras])
    sample = pad_to(resize_longest_side(sample, size), size, size, "center")
    return remove_small_objects(sample, augmentation.min_instance_area, augmentation.min_visible_keypoints)


def eval_sample(sample: PoseSample, size: int) -> PoseSample:
    """SG's validation pipeline: :func:`sanitize` (its compose does it for every pipeline), longest side ``size``,
    BOTTOM-RIGHT padding to ``size × size`` (coordinates unchanged after the resize), nothing dropped."""
    return pad_to(resize_longest_side(sanitize(sample), size), size, size, "bottom_right")
