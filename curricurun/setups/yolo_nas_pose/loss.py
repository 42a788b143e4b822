"""YOLO-NAS-Pose loss: focal classification, CIoU and DFL boxes, focal keypoint visibility, OKS keypoint regression.

Semantics of super-gradients' ``YoloNASPoseLoss`` with the recipe's settings (``..._pose_train_params.yaml:21-34``):
classification ``focal`` (no α) against the assigner's soft targets, CIoU weight 2.5, DFL weight 0.01 (0.5 for
M/L), keypoint visibility focal (α 0.25, γ 2) weight 1, keypoint regression ``1 − exp(−e)`` weight 34 (10 for
M/L), and every positive's box and pose terms weighted by its soft target (``rescale_pose_loss_with_assigned_score``)
and normalised by the sum of soft targets (at least 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from curricurun.recipe.fields import Float, Int, Params
from curricurun.setups.yolo_nas_pose.assigner import OKS_AREA_FACTOR, assign
from curricurun.setups.yolo_nas_pose.head import PoseHeadOutput, decode_boxes, decode_keypoints
from curricurun.setups.yolo_nas_pose.targets import PoseTargets


class PoseLossWeights(Params):
    """Loss weights and assigner settings (recipe ``setup.loss``); defaults are SG's N/S recipe values."""

    classification: Float = Field(default=1.0, ge=0)
    iou: Float = Field(default=2.5, ge=0)
    dfl: Float = Field(default=0.01, ge=0)
    pose_classification: Float = Field(default=1.0, ge=0)
    pose_regression: Float = Field(default=34.0, ge=0)
    assigner_topk: Int = Field(default=13, gt=0)
    assigner_alpha: Float = 1.0
    assigner_beta: Float = 6.0
    multiply_by_pose_oks: bool = True


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float | None, gamma: float = 2.0) -> torch.Tensor:
    """Element-wise ``|σ(x) − t|^γ · BCE(x, t)``, times ``α·t + (1 − α)(1 − t)`` when α is given.

    With soft targets t ∈ [0, 1] (the assigner's scores) this is the quality focal loss (Li et al. 2020).
    """
    weight = (logits.sigmoid() - targets).abs().pow(gamma)
    if alpha is not None:
        weight = weight * (alpha * targets + (1 - alpha) * (1 - targets))
    return weight * F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def ciou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Complete-IoU loss of XYXY rows (Zheng et al. 2020): ``1 − IoU + ρ²/c² + α·v``.

    ρ is the distance between centres, c the diagonal of the smallest enclosing box,
    v = 4/π² (atan(w_t/h_t) − atan(w_p/h_p))², α = v / (1 − IoU + v) without gradient.
    """
    top_left = torch.maximum(pred[..., :2], target[..., :2])
    bottom_right = torch.minimum(pred[..., 2:], target[..., 2:])
    overlap = (bottom_right - top_left).clamp(min=0).prod(-1)
    pred_wh, target_wh = pred[..., 2:] - pred[..., :2], target[..., 2:] - target[..., :2]
    union = pred_wh.prod(-1) + target_wh.prod(-1) - overlap + eps
    iou = overlap / union
    enclosing = torch.maximum(pred[..., 2:], target[..., 2:]) - torch.minimum(pred[..., :2], target[..., :2])
    centre_distance = (((pred[..., :2] + pred[..., 2:]) - (target[..., :2] + target[..., 2:])) ** 2).sum(-1) / 4
    distance_term = centre_distance / ((enclosing**2).sum(-1) + eps)
    v = (4 / math.pi**2) * (
        torch.atan(target_wh[..., 0] / target_wh[..., 1]) - torch.atan(pred_wh[..., 0] / pred_wh[..., 1])
    ) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v).clamp(min=eps)
    return 1 - iou + distance_term + alpha * v


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL (Li et al. 2020): for a continuous target y between bins ⌊y⌋ and ⌊y⌋+1, cross-entropy to both bins
    weighted by proximity; ``logits [P, 4, R+1]``, ``target [P, 4]`` → ``[P]`` (mean over the 4 sides)."""
    left = target.long()
    weight_left = (left + 1).float() - target
    log_probs = logits.log_softmax(-1)
    nll_left = -log_probs.gather(-1, left[..., None])[..., 0]
    nll_right = -log_probs.gather(-1, (left + 1)[..., None])[..., 0]
    return (nll_left * weight_left + nll_right * (1 - weight_left)).mean(-1)


def keypoint_regression_loss(
    pred_xy: torch.Tensor, gt_keypoints: torch.Tensor, areas: torch.Tensor, sigmas: torch.Tensor
) -> torch.Tensor:
    """``1 − exp(−d²/(2σ)²/area/2)`` averaged over labelled keypoints: one minus the OKS, per instance ``[P]``."""
    squared = ((pred_xy - gt_keypoints[..., :2]) ** 2).sum(-1)
    per_keypoint = 1 - torch.exp(-squared / (2 * sigmas) ** 2 / (areas[:, None] + 1e-9) / 2)
    labelled = (gt_keypoints[..., 2] > 0).float()
    return (per_keypoint * labelled).sum(-1) / (labelled.sum(-1) + 1e-9)


def pose_loss(
    output: PoseHeadOutput, targets: PoseTargets, sigmas: torch.Tensor, weights: PoseLossWeights
) -> dict[str, torch.Tensor]:
    """The five weighted components and their sum ``loss`` (scalars; the sum is what to back-propagate)."""
    output = PoseHeadOutput(*(tensor.float() for tensor in output))
    reg_max = output.box_logits.shape[-1] - 1
    pred_boxes = decode_boxes(output)
    pred_keypoints = decode_keypoints(output)
    assignment = assign(
        output.cls_logits.detach().sigmoid(),
        pred_boxes.detach(),
        pred_keypoints.detach(),
        output.anchor_points,
        targets,
        sigmas,
        weights.assigner_topk,
        weights.assigner_alpha,
        weights.assigner_beta,
        weights.multiply_by_pose_oks,
    )
    normaliser = assignment.scores.sum().clamp(min=1.0)
    loss_cls = focal_loss(output.cls_logits, assignment.scores, alpha=None).sum() / normaliser

    positive = assignment.positive
    weight = assignment.scores[positive]
    strides = output.strides.expand_as(positive)[positive][:, None]
    anchors = output.anchor_points.expand(*positive.shape, 2)[positive]
    gt_boxes = assignment.boxes[positive]
    # CIoU is scale-free; computed in stride units as SG does. DFL targets: ltrb distances in stride units.
    loss_iou = (ciou_loss(pred_boxes[positive] / strides, gt_boxes / strides) * weight).sum() / normaliser
    ltrb = torch.cat([anchors - gt_boxes[:, :2], gt_boxes[:, 2:] - anchors], dim=-1) / strides
    dfl = distribution_focal_loss(output.box_logits[positive], ltrb.clamp(0, reg_max - 0.01))
    loss_dfl = (dfl * weight).sum() / normaliser

    gt_keypoints = assignment.keypoints[positive]
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]) * OKS_AREA_FACTOR
    regression = keypoint_regression_loss(pred_keypoints[positive], gt_keypoints, areas, sigmas)
    visible = (gt_keypoints[..., 2] > 0).float()
    visibility = focal_loss(output.pose_logits[positive], visible, alpha=0.25).mean(-1)
    components = {
        "loss_cls": loss_cls * weights.classification,
        "loss_iou": loss_iou * weights.iou,
        "loss_dfl": loss_dfl * weights.dfl,
        "loss_pose_cls": (visibility * weight).sum() / normaliser * weights.pose_classification,
        "loss_pose_reg": (regression * weight).sum() / normaliser * weights.pose_regression,
    }
    components["loss"] = sum(components.values())
    return components
