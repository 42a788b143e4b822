"""The NDFL pose head: per level, a box branch (classification + distribution regression) and a pose branch.

Layout from super-gradients 3.7.1 ``yolo_nas_pose_dfl_head.py`` / ``yolo_nas_pose_ndfl_heads.py`` with the
recipe's settings (SG 3.7.1 ``yolo_nas_pose_n_arch_params.yaml:89-132``,
``yolo_nas_pose_ndfl_heads.py:126-206``): one detection class, ``pose_conf_in_class_head`` (the
classification conv also predicts one visibility logit per keypoint), no shared stem, no grouped first conv,
plain conv-BN-ReLU pose blocks, ``reg_max`` 16, grid-cell offset 0.5 compensated when decoding keypoints.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from curricurun.setups.yolo_nas_pose.blocks import ConvBNReLU, width_multiplier

PRIOR_PROBABILITY = 0.01  # SG ``prior_prob``: the person logit starts at −log(99) so focal loss is not swamped


class PoseHeadOutput(NamedTuple):
    """Raw predictions for all anchors of all levels (A = Σ H_l·W_l), in the order stride 8, 16, 32.

    ``anchor_points`` are grid-cell centres in input pixels, ``(i + 0.5)·stride``; ``strides`` the level stride
    of every anchor. Box and keypoint decoding: :func:`decode_boxes`, :func:`decode_keypoints`.
    """

    cls_logits: torch.Tensor  # [B, A] person logit
    box_logits: torch.Tensor  # [B, A, 4, reg_max + 1] distribution over ltrb distances (stride units)
    pose_offsets: torch.Tensor  # [B, A, J, 2] keypoint offsets from the cell corner, in stride units
    pose_logits: torch.Tensor  # [B, A, J] keypoint visibility logits
    anchor_points: torch.Tensor  # [A, 2]
    strides: torch.Tensor  # [A]


class PoseLevelHead(nn.Module):
    """One pyramid level: stems, two 3×3 convs each for classification and box regression, N for pose."""

    def __init__(
        self,
        in_channels: int,
        bbox_inter_channels: int,
        pose_inter_channels: int,
        pose_regression_blocks: int,
        width_mult: float,
        num_keypoints: int,
        reg_max: int,
    ):
        super().__init__()
        bbox_channels = width_multiplier(bbox_inter_channels, width_mult)
        pose_channels = width_multiplier(pose_inter_channels, width_mult)
        self.num_keypoints, self.reg_max = num_keypoints, reg_max
        self.pose_stem = ConvBNReLU(in_channels, pose_channels, 1)
        self.bbox_stem = ConvBNReLU(in_channels, bbox_channels, 1)
        self.cls_convs = ConvBNReLU(bbox_channels, bbox_channels, 3)
        self.reg_convs = ConvBNReLU(bbox_channels, bbox_channels, 3)
        self.pose_convs = nn.Sequential(
            *(ConvBNReLU(pose_channels, pose_channels, 3) for _ in range(pose_regression_blocks))
        )
        self.reg_pred = nn.Conv2d(bbox_channels, 4 * (reg_max + 1), 1)
        self.cls_pred = nn.Conv2d(bbox_channels, 1 + num_keypoints, 1)
        self.pose_pred = nn.Conv2d(pose_channels, 2 * num_keypoints, 1)
        nn.init.constant_(self.cls_pred.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flattened ``(cls [B,HW], box [B,HW,4,R+1], pose offsets [B,HW,J,2], pose logits [B,HW,J])``."""
        batch, _, height, width = x.shape
        bbox_features = self.bbox_stem(x)
        cls = self.cls_pred(self.cls_convs(bbox_features)).flatten(2).transpose(1, 2)  # [B, HW, 1 + J]
        box = self.reg_pred(self.reg_convs(bbox_features)).reshape(batch, 4, self.reg_max + 1, height * width)
        pose = self.pose_pred(self.pose_convs(self.pose_stem(x))).reshape(batch, self.num_keypoints, 2, -1)
        return cls[..., 0], box.permute(0, 3, 1, 2), pose.permute(0, 3, 1, 2), cls[..., 1:]


class PoseHeads(nn.Module):
    """The three level heads (strides 8, 16, 32), concatenated over anchors."""

    def __init__(self, levels: list[PoseLevelHead], strides: tuple[int, ...] = (8, 16, 32)):
        super().__init__()
        self.levels = nn.ModuleList(levels)
        self.strides = strides

    def forward(self, features: list[torch.Tensor]) -> PoseHeadOutput:
        outputs = [level(feature) for level, feature in zip(self.levels, features, strict=True)]
        cls, box, offsets, logits = (torch.cat(parts, dim=1) for parts in zip(*outputs, strict=True))
        points, strides = anchor_grid(features, self.strides)
        return PoseHeadOutput(cls, box, offsets, logits, points, strides)


def anchor_grid(features: list[torch.Tensor], strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid-cell centres ``((col + 0.5)·s, (row + 0.5)·s)`` row-major per level, and each anchor's stride."""
    points, anchor_strides = [], []
    for feature, stride in zip(features, strides, strict=True):
        height, width = feature.shape[-2:]
        ys, xs = torch.meshgrid(
            torch.arange(height, device=feature.device, dtype=torch.float32) + 0.5,
            torch.arange(width, device=feature.device, dtype=torch.float32) + 0.5,
            indexing="ij",
        )
        points.append(torch.stack([xs, ys], dim=-1).reshape(-1, 2) * stride)
        anchor_strides.append(torch.full((height * width,), float(stride), device=feature.device))
    return torch.cat(points), torch.cat(anchor_strides)


def expected_distances(box_logits: torch.Tensor) -> torch.Tensor:
    """DFL decoding: the expectation of the softmax over bins 0..reg_max, ``[..., 4, R+1] → [..., 4]``."""
    bins = torch.arange(box_logits.shape[-1], device=box_logits.device, dtype=torch.float32)
    return (box_logits.float().softmax(dim=-1) * bins).sum(dim=-1)


def decode_boxes(output: PoseHeadOutput) -> torch.Tensor:
    """XYXY boxes in pixels: ``anchor ∓ distance·stride`` (SG ``batch_distance2bbox(...)·stride``)."""
    distances = expected_distances(output.box_logits) * output.strides[:, None]
    left_top, right_bottom = distances[..., :2], distances[..., 2:]
    return torch.cat([output.anchor_points - left_top, output.anchor_points + right_bottom], dim=-1)


def decode_keypoints(output: PoseHeadOutput) -> torch.Tensor:
    """Keypoints ``[B, A, J, 2]`` in pixels: ``(offset + anchor_cell − 0.5)·stride`` = ``offset·s + anchor − s/2``.

    SG ``compensate_grid_cell_offset: True``: offsets are measured from the cell's top-left corner.
    """
    stride = output.strides[:, None, None]
    return output.pose_offsets.float() * stride + output.anchor_points[:, None, :] - 0.5 * stride
