"""Geometry of pose samples: horizontal flip with a flip map, longest-side resize, centre or bottom-right padding.

Semantics of super-gradients' ``KeypointsRandomHorizontalFlip``, ``KeypointsLongestMaxSize`` and
``KeypointsPadIfNeeded`` (SG's ``keypoints_pad_if_needed.py:19-99``). The training pipeline pads at the centre and the
validation pipeline at the bottom-right; SG's maintainer says there is no specific reason (#1807), but the two
are not interchangeable: bottom-right padding leaves every coordinate unchanged, so predictions map back to the
original image by one scale factor, and it is the only one SG can turn into ``predict()`` preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F

PAD_VALUE = 127.0  # SG ``image_pad_value``: mid-grey on the 0..255 scale, before standardisation


@dataclass(frozen=True)
class PoseSample:
    """One image with its instances, before standardisation.

    Attributes:
        image: float ``[C, H, W]`` on the 0..255 scale.
        keypoints: ``[N, J, 3]`` of ``(x, y, visibility)``; visibility 0 = not labelled, >0 = labelled.
            Keypoint coordinates are pixel indices (COCO's convention: pixel ``i`` is centred on ``i``).
        boxes: ``[N, 4]`` XYXY in continuous coordinates (COCO boxes: the image spans ``[0, W]``).
        areas: ``[N]`` instance areas in pixels² (COCO: the segmentation area), the scale of OKS.
        crowd: ``[N]`` bool, crowd regions (ignored by the metric and the loss).
    """

    image: torch.Tensor
    keypoints: torch.Tensor
    boxes: torch.Tensor
    areas: torch.Tensor
    crowd: torch.Tensor


def flip_horizontal(sample: PoseSample, flip_map: list[int]) -> PoseSample:
    """Mirror the image and swap left/right keypoints: keypoint ``i`` of the result is ``flip_map[i]`` mirrored.

    Keypoints are pixel indices, so ``x → W − 1 − x``; boxes are continuous, so ``[x1, x2] → [W − x2, W − x1]``
    (SG applies the same two rules).
    """
    width = sample.image.shape[-1]
    keypoints = sample.keypoints[:, flip_map].clone()
    keypoints[..., 0] = width - 1 - keypoints[..., 0]
    x1, y1, x2, y2 = sample.boxes.unbind(-1)
    boxes = torch.stack([width - x2, y1, width - x1, y2], dim=-1)
    return replace(sample, image=sample.image.flip(-1), keypoints=keypoints, boxes=boxes)


def resize_longest_side(sample: PoseSample, size: int) -> PoseSample:
    """Scale so the longer side becomes ``size`` (up or down, no guard, as SG), bilinear like cv2's INTER_LINEAR.

    The image gets ``round(side·scale)`` pixels per side; coordinates and boxes are multiplied by the exact
    ``scale`` and areas by ``scale²``.
    """
    height, width = sample.image.shape[-2:]
    scale = min(size / height, size / width)
    new_size = (int(height * scale + 0.5), int(width * scale + 0.5))
    image = F.interpolate(sample.image[None].float(), size=new_size, mode="bilinear", align_corners=False)[0]
    keypoints = sample.keypoints.clone()
    keypoints[..., :2] *= scale
    return replace(sample, image=image, keypoints=keypoints, boxes=sample.boxes * scale, areas=sample.areas * scale**2)


def pad_to(
    sample: PoseSample,
    height: int,
    width: int,
    mode: Literal["center", "bottom_right"],
    value: float = PAD_VALUE,
) -> PoseSample:
    """Pad to at least ``height × width`` with ``value``.

    ``center`` puts ``(H_out − H) // 2`` rows on top and ``(W_out − W) // 2`` columns on the left (the rest
    below/right) and shifts keypoints and boxes by that offset; ``bottom_right`` pads only below and right and
    moves nothing.
    """
    rows, cols = sample.image.shape[-2:]
    extra_rows, extra_cols = max(0, height - rows), max(0, width - cols)
    if mode == "center":
        top, left = extra_rows // 2, extra_cols // 2
    elif mode == "bottom_right":
        top, left = 0, 0
    else:
        raise ValueError(f"padding mode: expected 'center' or 'bottom_right', got {mode!r}")
    image = F.pad(sample.image, (left, extra_cols - left, top, extra_rows - top), value=value)
    keypoints = sample.keypoints.clone()
    keypoints[..., 0] += left
    keypoints[..., 1] += top
    boxes = sample.boxes + torch.tensor([left, top, left, top], dtype=sample.boxes.dtype)
    return replace(sample, image=image, keypoints=keypoints, boxes=boxes)
