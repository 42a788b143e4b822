"""super-gradients' geometric keypoint transforms: 90° rotation, random affine, mosaic of four samples.

Pure functions of ``(sample, parameters)``; boxes and keypoints move with the image.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import torch
import torch.nn.functional as F

from curricurun.data.pose.keypoints import PAD_VALUE, PoseSample

Interpolation = Literal["nearest", "bilinear", "bicubic"]


def _hide_outside(keypoints: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Visibility 0 for keypoints outside ``[0, W) × [0, H)``; their coordinates stay (SG does the same)."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    outside = (x < 0) | (y < 0) | (x >= width) | (y >= height)
    keypoints = keypoints.clone()
    keypoints[..., 2] = torch.where(outside, torch.zeros_like(keypoints[..., 2]), keypoints[..., 2])
    return keypoints


def box_areas(boxes: torch.Tensor) -> torch.Tensor:
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
    areas = sample.areas * box_areas(boxes) / (box_areas(sample.boxes) + 1e-6)
    return replace(sample, keypoints=_hide_outside(sample.keypoints, height, width), boxes=boxes, areas=areas)


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
