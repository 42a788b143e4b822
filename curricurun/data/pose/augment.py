"""super-gradients' YOLO-NAS-Pose train and validation pipelines as pure functions of ``(sample, generator)``.

Every random draw comes from the ``torch.Generator`` the caller passes, in the order SG draws them, so a
sample's augmentation depends on its index and seed only (not on the worker or the rank). The transforms and
their order are SG's ``coco_pose_estimation_yolo_nas_mosaic_dataset_params.yaml`` (N/S) and ``..._mosaic_heavy_...``
(M/L) (SG 3.7.1 ``coco_pose_estimation_yolo_nas_mosaic*_dataset_params.yaml``); each function cites the SG file under
``src/super_gradients/training/transforms/keypoints/`` whose semantics it follows. Images are float ``[C, H, W]``
on 0..255 and are clamped there wherever SG's uint8 image would saturate; SG's uint8 rounding is not imitated.

This module holds the presets and the order of the pipeline; the transforms themselves are in
:mod:`curricurun.data.pose.geometry` and :mod:`curricurun.data.pose.photometric` (importable from here too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
from pydantic import Field, model_validator

from curricurun.data.pose.geometry import (
    Interpolation,
    affine_matrix,
    affine_transform,
    mosaic,
    rotate90,
    sanitize,
)
from curricurun.data.pose.keypoints import PoseSample, flip_horizontal, pad_to, resize_longest_side
from curricurun.data.pose.photometric import (
    adjust_brightness_contrast,
    augment_hsv,
    draw_hsv_shift,
    reverse_channels,
    shift_hsv,
)
from curricurun.recipe.fields import Float, Int, NotBoolFloat, Params

__all__ = [
    "AFFINE_INTERPOLATIONS",
    "NO_AUGMENTATION",
    "PRESETS",
    "SG_MOSAIC",
    "SG_MOSAIC_HEAVY",
    "PoseAugmentation",
    "adjust_brightness_contrast",
    "affine_matrix",
    "affine_transform",
    "augment_hsv",
    "draw_hsv_shift",
    "eval_sample",
    "mosaic",
    "remove_small_objects",
    "reverse_channels",
    "rotate90",
    "sanitize",
    "shift_hsv",
    "train_sample",
]

Probability = Annotated[float, Field(ge=0, le=1), NotBoolFloat]

# SG's affine samples cv2 interpolation codes 0..4 uniformly (``interpolation_mode: [0, 1, 2, 3, 4]``). cv2's
# warpAffine treats INTER_AREA (3) as INTER_LINEAR (opencv imgwarp.cpp, remap); torch has no Lanczos, so
# INTER_LANCZOS4 (4) becomes bicubic, the closest kernel torch offers.
AFFINE_INTERPOLATIONS: tuple[Interpolation, ...] = ("nearest", "bilinear", "bicubic", "bilinear", "bicubic")


class PoseAugmentation(Params):
    """Every knob of SG's pose train pipeline, in pipeline order; the defaults are SG's N/S preset.

    Each ``*_prob`` is the chance that the transform runs on a sample; the transforms before mosaic run on each
    of mosaic's four samples independently (SG keypoints_compose.py ``_apply_transforms``).
    """

    flip_prob: Probability = Field(default=0.5, description="horizontal flip with the keypoint flip map")
    brightness: tuple[Float, Float] = Field(default=(0.8, 1.2), description="gain range on the channel mean")
    contrast: tuple[Float, Float] = Field(default=(0.8, 1.2), description="gain range around the channel mean")
    brightness_contrast_prob: Probability = 0.5
    reverse_channels_prob: Probability = Field(default=0.0, description="RGB ↔ BGR swap (M/L preset only)")
    hsv_gains: tuple[Float, Float, Float] = Field(
        default=(20.0, 20.0, 20.0), description="max shift of hue (cv2 units of 2°), saturation and value (0..255)"
    )
    hsv_prob: Probability = 0.5
    rotate90_prob: Probability = Field(default=0.0, description="rotation by k·90°, k uniform in 0..3 (M/L only)")
    affine_max_rotation: Float = Field(default=5.0, ge=0, description="degrees, uniform in ±max")
    affine_scale: tuple[Float, Float] = Field(default=(0.75, 1.5), description="zoom range")
    affine_max_translate: Float = Field(
        default=0.1, ge=0, description="shift of the pivot as a fraction of the side (SG moves the centre)"
    )
    affine_prob: Probability = 0.75
    mosaic_prob: Probability = Field(default=0.5, description="2×2 mosaic with 3 uniformly drawn samples")
    min_instance_area: Float = Field(default=1.0, ge=0, description="drop instances with a smaller area (px²)")
    min_visible_keypoints: Int = Field(default=1, ge=0, description="drop instances with fewer labelled keypoints")

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
