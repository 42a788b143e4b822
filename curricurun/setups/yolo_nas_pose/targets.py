"""Ground truth of a batch, padded to the largest instance count: what the assigner and the loss consume."""

from __future__ import annotations

from typing import NamedTuple

import torch

from curricurun.data.pose.keypoints import PoseSample


class PoseTargets(NamedTuple):
    """Instances of B images padded to M per image; ``valid`` marks the real ones.

    ``boxes [B, M, 4]`` XYXY pixels, ``keypoints [B, M, J, 3]`` (x, y, visibility), ``crowd [B, M]`` bool,
    ``valid [B, M]`` bool. Coordinates are in the network's input pixels (after resize and padding).
    """

    boxes: torch.Tensor
    keypoints: torch.Tensor
    crowd: torch.Tensor
    valid: torch.Tensor

    def to(self, device: torch.device | str) -> PoseTargets:
        return PoseTargets(*(tensor.to(device) for tensor in self))


def stack_targets(samples: list[PoseSample], num_keypoints: int) -> PoseTargets:
    """Pad every sample's instances to the batch maximum (at least 1, so shapes are never empty)."""
    count = max([1, *(len(sample.boxes) for sample in samples)])
    batch = len(samples)
    boxes = torch.zeros(batch, count, 4)
    keypoints = torch.zeros(batch, count, num_keypoints, 3)
    crowd = torch.zeros(batch, count, dtype=torch.bool)
    valid = torch.zeros(batch, count, dtype=torch.bool)
    for i, sample in enumerate(samples):
        n = len(sample.boxes)
        boxes[i, :n] = sample.boxes
        keypoints[i, :n] = sample.keypoints
        crowd[i, :n] = sample.crowd
        valid[i, :n] = True
    return PoseTargets(boxes, keypoints, crowd, valid)
