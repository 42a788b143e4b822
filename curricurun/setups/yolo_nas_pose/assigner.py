"""Task-aligned assignment of anchors to people, with box IoU multiplied by pose OKS (YOLO-NAS-Pose).

Semantics of super-gradients' ``YoloNASPoseTaskAlignedAssigner`` (TOOD's assigner, Feng et al. 2021, §3.2.1)
with the recipe's settings (SG 3.7.1 ``yolo_nas_pose_loss.py:287-304``): top-k 13, α 1, β 6, ``multiply_by_pose_oks``.

For every person g and anchor a whose centre lies inside g's box:

* similarity s(g, a) = IoU(box_g, box_a) · OKS(g, pose_a), OKS with area = 0.53 · box area (the COCO
  heuristic of SG's ``batch_pose_oks``) averaged over g's labelled keypoints (0 when none is labelled);
* alignment t(g, a) = score_a^α · s(g, a)^β.

Each person takes its top-k anchors by t among those inside its box; an anchor taken by several people goes to
the one with the highest s. The soft target of a positive anchor is t / max t(g, ·) · max s(g, ·) over g's
positives, so each person's best anchor gets the person's best similarity. Anchors assigned to crowd regions
get target 0 and no box or pose loss.

Deliberate difference from SG: similarities are computed only for anchors inside the person's box (SG computes
OKS for every anchor-person pair, B·M·A·J values, ~0.8 GB at batch 48 and 640 px), and an anchor taken by
several people goes to the best of those people (SG takes the best over all people, which can be one whose box
does not contain the anchor).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from curricurun.setups.yolo_nas_pose.targets import PoseTargets

EPS = 1e-9
OKS_AREA_FACTOR = 0.53  # pose area ≈ 0.53 · box area (SG ``batch_pose_oks`` and the loss)


class Assignment(NamedTuple):
    """Per anchor: ``positive [B, A]`` (assigned to a non-crowd person), ``scores [B, A]`` soft targets, and the
    assigned person's ``boxes [B, A, 4]`` and ``keypoints [B, A, J, 3]`` (meaningful where positive)."""

    positive: torch.Tensor
    scores: torch.Tensor
    boxes: torch.Tensor
    keypoints: torch.Tensor


def pairwise_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU ``[B, M, A]`` of XYXY ``[B, M, 4]`` against ``[B, A, 4]``; widths clipped at 0, union + 1e-9."""
    top_left = torch.maximum(boxes1[:, :, None, :2], boxes2[:, None, :, :2])
    bottom_right = torch.minimum(boxes1[:, :, None, 2:], boxes2[:, None, :, 2:])
    overlap = (bottom_right - top_left).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(-1)
    return overlap / (area1[:, :, None] + area2[:, None, :] - overlap + EPS)


def pose_oks(
    pred_xy: torch.Tensor, gt_keypoints: torch.Tensor, areas: torch.Tensor, sigmas: torch.Tensor
) -> torch.Tensor:
    """OKS of matching rows: ``pred_xy [P, J, 2]``, ``gt_keypoints [P, J, 3]``, ``areas [P]`` → ``[P]``.

    ``exp(−d² / (2σ)² / (area + 1e-9) / 2)`` averaged over labelled (visibility > 0) keypoints.
    """
    squared = ((pred_xy - gt_keypoints[..., :2]) ** 2).sum(-1)
    similarity = torch.exp(-squared / (2 * sigmas) ** 2 / (areas[:, None] + EPS) / 2)
    labelled = (gt_keypoints[..., 2] > 0).float()
    return (similarity * labelled).sum(-1) / (labelled.sum(-1) + EPS)


@torch.no_grad()
def assign(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    keypoints: torch.Tensor,
    anchor_points: torch.Tensor,
    targets: PoseTargets,
    sigmas: torch.Tensor,
    topk: int = 13,
    alpha: float = 1.0,
    beta: float = 6.0,
    multiply_by_pose_oks: bool = True,
) -> Assignment:
    """Assign predictions (person probability ``[B, A]``, boxes ``[B, A, 4]`` and keypoints ``[B, A, J, 2]`` in
    pixels, all detached) to ``targets``; ``anchor_points [A, 2]`` are the anchor centres in pixels."""
    batch, anchors = scores.shape
    inside = _anchors_inside(anchor_points, targets.boxes) & targets.valid[:, :, None]  # [B, M, A]
    similarity = pairwise_box_iou(targets.boxes, boxes) * inside
    if multiply_by_pose_oks:
        b, m, a = inside.nonzero(as_tuple=True)
        box = targets.boxes[b, m]
        areas = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) * OKS_AREA_FACTOR
        similarity[b, m, a] *= pose_oks(keypoints[b, a], targets.keypoints[b, m], areas, sigmas)
    alignment = scores[:, None, :] ** alpha * similarity**beta  # zero outside the boxes

    chosen = torch.zeros_like(inside)
    chosen.scatter_(-1, alignment.topk(min(topk, anchors), dim=-1).indices, True)
    positive = chosen & inside
    contested = positive.sum(1) > 1  # [B, A]
    if contested.any():
        best = torch.where(positive, similarity, -1.0).argmax(1)  # [B, A]
        best_only = torch.nn.functional.one_hot(best, positive.shape[1]).transpose(1, 2).bool()
        positive = torch.where(contested[:, None, :], best_only & positive, positive)

    alignment = alignment * positive
    best_alignment = alignment.amax(-1, keepdim=True)
    best_similarity = (similarity * positive).amax(-1, keepdim=True)
    soft = (alignment / (best_alignment + EPS) * best_similarity).amax(1)  # [B, A]

    person = positive.float().argmax(1)  # [B, A]; 0 where the anchor is background
    assigned = positive.any(1)
    crowd = torch.gather(targets.crowd, 1, person) & assigned
    batch_index = torch.arange(batch, device=scores.device)[:, None]
    return Assignment(
        positive=assigned & ~crowd,
        scores=soft * ~crowd,
        boxes=targets.boxes[batch_index, person],
        keypoints=targets.keypoints[batch_index, person],
    )


def _anchors_inside(anchor_points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``[B, M, A]``: the anchor centre is strictly inside the box (every side distance above 1e-9)."""
    x, y = anchor_points[:, 0], anchor_points[:, 1]
    distances = torch.stack(
        [
            x - boxes[..., 0, None],
            y - boxes[..., 1, None],
            boxes[..., 2, None] - x,
            boxes[..., 3, None] - y,
        ],
        dim=-1,
    )
    return distances.amin(-1) > EPS
