"""YOLO-NAS-Pose loss and assigner on tiny inputs worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from curricurun.setups.yolo_nas_pose.assigner import assign, pose_oks
from curricurun.setups.yolo_nas_pose.head import PoseHeadOutput
from curricurun.setups.yolo_nas_pose.loss import (
    PoseLossWeights,
    ciou_loss,
    distribution_focal_loss,
    focal_loss,
    keypoint_regression_loss,
    pose_loss,
)
from curricurun.setups.yolo_nas_pose.model import build_yolo_nas_pose
from curricurun.setups.yolo_nas_pose.targets import PoseTargets

LOG2 = math.log(2)


def test_focal_loss_by_hand():
    # logit 0 → σ = 0.5 and BCE = log 2 for any target. Target 1: |0.5 − 1|² · log 2 = 0.25 log 2;
    # with α = 0.25 also × 0.25; soft target 0.3: |0.5 − 0.3|² · log 2 = 0.04 log 2.
    logits = torch.zeros(3)
    targets = torch.tensor([1.0, 1.0, 0.3])
    assert focal_loss(logits[:1], targets[:1], alpha=None).item() == pytest.approx(0.25 * LOG2)
    assert focal_loss(logits[:1], targets[:1], alpha=0.25).item() == pytest.approx(0.0625 * LOG2)
    assert focal_loss(logits[2:], targets[2:], alpha=None).item() == pytest.approx(0.04 * LOG2)


def test_ciou_loss_by_hand():
    # [0,0,2,2] vs [1,0,3,2]: overlap 2, union 6 → IoU 1/3; enclosing 3×2 → c² = 13; centres 1 apart → 1/13;
    # same aspect ratio → v = 0. Loss = 2/3 + 1/13.
    pred, target = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]])
    assert ciou_loss(pred, target).item() == pytest.approx(2 / 3 + 1 / 13)
    assert ciou_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)


def test_distribution_focal_loss_by_hand():
    # reg_max 2, logits [0, log 2, 0] → probabilities [1/4, 1/2, 1/4]. Target 0.25 lies between bins 0 and 1
    # with weights 0.75 and 0.25: 0.75·(−log 1/4) + 0.25·(−log 1/2); the same on all four sides.
    logits = torch.tensor([0.0, LOG2, 0.0]).expand(1, 4, 3)
    expected = 0.75 * math.log(4) + 0.25 * math.log(2)
    assert distribution_focal_loss(logits, torch.full((1, 4), 0.25)).item() == pytest.approx(expected)


def test_keypoint_regression_is_one_minus_oks_over_labelled_keypoints():
    # σ 0.1 → (2σ)² = 0.04; area 100; d² = 4 → e = 4/0.04/100/2 = 0.5 → 1 − exp(−0.5); keypoint 2 unlabelled.
    gt = torch.tensor([[[10.0, 10.0, 2.0], [0.0, 0.0, 0.0]]])
    pred = torch.tensor([[[12.0, 10.0], [90.0, 90.0]]])
    sigmas = torch.tensor([0.1, 0.1])
    loss = keypoint_regression_loss(pred, gt, torch.tensor([100.0]), sigmas)
    assert loss.item() == pytest.approx(1 - math.exp(-0.5))
    assert pose_oks(pred, gt, torch.tensor([100.0]), sigmas).item() == pytest.approx(math.exp(-0.5))


def _one_person(box: list[float], crowd: bool = False) -> PoseTargets:
    return PoseTargets(
        torch.tensor([[box]]),
        torch.tensor([[[[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 2.0]]]]),
        torch.tensor([[crowd]]),
        torch.tensor([[True]]),
    )


def _assign_five_anchors(beta: float, topk: int = 2, crowd: bool = False):
    # Person box [0, 0, 16, 16], one keypoint at its centre (8, 8), predicted exactly by every anchor → OKS 1.
    # Anchors (4,4) (12,4) (4,12) (12,12) inside, (20,20) outside. Scores 0.9 0.8 0.2 0.1 0.99.
    # Predicted boxes: the person's box, except anchor 1's [0,0,16,8] (IoU 0.5).
    anchors = torch.tensor([[4.0, 4], [12, 4], [4, 12], [12, 12], [20, 20]])
    boxes = torch.tensor([[0.0, 0, 16, 16]]).repeat(5, 1)
    boxes[1] = torch.tensor([0.0, 0, 16, 8])
    keypoints = torch.full((1, 5, 1, 2), 8.0)
    scores = torch.tensor([[0.9, 0.8, 0.2, 0.1, 0.99]])
    return assign(
        scores, boxes[None], keypoints, anchors, _one_person([0, 0, 16, 16], crowd), torch.tensor([0.5]), topk, 1, beta
    )


def test_assigner_picks_top_k_aligned_anchors_inside_the_box_with_normalised_soft_targets():
    # β = 6: alignment = score · s⁶ = 0.9, 0.8/64 = 0.0125, 0.2, 0.1 (the outside anchor does not compete);
    # top 2: anchors 0 and 2. Soft targets t / max t · max s = 0.9/0.9·1 = 1 and 0.2/0.9 = 0.2222.
    result = _assign_five_anchors(beta=6.0)
    assert result.positive.tolist() == [[True, False, True, False, False]]
    assert result.scores[0].tolist() == pytest.approx([1.0, 0.0, 0.2 / 0.9, 0.0, 0.0])
    assert result.boxes[0, 0].tolist() == [0.0, 0.0, 16.0, 16.0]
    # β = 1: alignment 0.9, 0.8·0.5 = 0.4, 0.2, 0.1 → anchors 0 and 1, targets 1 and 0.4/0.9.
    result = _assign_five_anchors(beta=1.0)
    assert result.positive.tolist() == [[True, True, False, False, False]]
    assert result.scores[0].tolist() == pytest.approx([1.0, 0.4 / 0.9, 0.0, 0.0, 0.0])


def test_assigner_gives_crowd_anchors_zero_targets_and_no_positives():
    result = _assign_five_anchors(beta=6.0, crowd=True)
    assert not result.positive.any()
    assert result.scores.abs().sum().item() == 0.0


def test_assigner_multiplies_iou_by_pose_oks():
    # One anchor at (4, 4) with the exact box [0,0,8,8] but its keypoint 2 px off: σ 0.25 → (2σ)² = 0.25,
    # area 64·0.53 = 33.92, e = 4/0.25/33.92/2 → similarity = OKS = exp(−e), which is also the soft target.
    targets = _one_person([0, 0, 8, 8])
    expected = math.exp(-4 / 0.25 / 33.92 / 2)
    args = (torch.tensor([[0.5]]), torch.tensor([[[0.0, 0, 8, 8]]]), torch.tensor([[[[4.0, 6.0]]]]))
    with_oks = assign(*args, torch.tensor([[4.0, 4.0]]), targets, torch.tensor([0.25]))
    without = assign(*args, torch.tensor([[4.0, 4.0]]), targets, torch.tensor([0.25]), multiply_by_pose_oks=False)
    assert with_oks.scores.item() == pytest.approx(expected)
    assert without.scores.item() == pytest.approx(1.0)


def test_an_anchor_inside_two_people_goes_to_the_more_similar_one():
    # Anchor (6, 6) predicts box [0,0,12,12]: person A [0,0,12,12] (IoU 1), person B [2,2,14,14]
    # (IoU 100/188). Both take it (only anchor); it goes to A.
    targets = PoseTargets(
        torch.tensor([[[2.0, 2, 14, 14], [0.0, 0, 12, 12]]]),
        torch.tensor([[[[8.0, 8.0, 2.0]], [[6.0, 6.0, 2.0]]]]),
        torch.tensor([[False, False]]),
        torch.tensor([[True, True]]),
    )
    keypoints = torch.tensor([[[[6.0, 6.0]]]])
    args = (torch.tensor([[0.5]]), torch.tensor([[[0.0, 0, 12, 12]]]), keypoints, torch.tensor([[6.0, 6.0]]))
    result = assign(*args, targets, torch.tensor([10.0]), multiply_by_pose_oks=False)
    assert result.boxes[0, 0].tolist() == [0.0, 0.0, 12.0, 12.0]
    assert result.scores.item() == pytest.approx(1.0)


def test_total_loss_of_one_anchor_by_hand():
    # One anchor at (4, 4), stride 8; person box [0,0,8,8], keypoint (4, 4), σ 0.25; person logit log 3 (σ = 0.75).
    # Box logits: bins 0 and 1 equal, the rest −1e4 → expected distance 0.5 bins = 4 px → box [0,0,8,8], IoU 1.
    # Keypoint offset (0.5, 0.75) → (0.5·8 + 4 − 4, 0.75·8 + 4 − 4) = (4, 6): d² = 4, area 64·0.53 = 33.92,
    # e = 4/0.25/33.92/2 → OKS = exp(−e) ≈ 0.7899 = similarity = soft target s (alignment 0.75·s⁶ ≫ 1e-9);
    # normaliser max(s, 1) = 1.
    box_logits = torch.full((1, 1, 4, 17), -1e4)
    box_logits[..., :2] = 0.0
    output = PoseHeadOutput(
        torch.full((1, 1), math.log(3)),
        box_logits,
        torch.tensor([[[[0.5, 0.75]]]]),
        torch.zeros(1, 1, 1),
        torch.tensor([[4.0, 4.0]]),
        torch.tensor([8.0]),
    )
    oks = math.exp(-4 / 0.25 / 33.92 / 2)
    losses = pose_loss(output, _one_person([0, 0, 8, 8]), torch.tensor([0.25]), PoseLossWeights())
    # cls: |0.75 − s|² · BCE(log 3, s), BCE = −s·log 0.75 − (1 − s)·log 0.25
    bce = -oks * math.log(0.75) - (1 - oks) * math.log(0.25)
    assert losses["loss_cls"].item() == pytest.approx((0.75 - oks) ** 2 * bce, rel=1e-5)
    assert losses["loss_iou"].item() == pytest.approx(0.0, abs=1e-7)  # identical boxes
    # dfl: ltrb targets 0.5 → half on bin 0, half on bin 1, each with probability 1/2: log 2; × s × 0.01
    assert losses["loss_dfl"].item() == pytest.approx(LOG2 * oks * 0.01, rel=1e-5)
    # pose visibility: focal α 0.25 of logit 0 vs 1 = 0.25·0.25·log 2, × s; regression (1 − OKS) × s × 34
    assert losses["loss_pose_cls"].item() == pytest.approx(0.0625 * LOG2 * oks, rel=1e-5)
    assert losses["loss_pose_reg"].item() == pytest.approx((1 - oks) * oks * 34, rel=1e-5)
    parts = sum(value for key, value in losses.items() if key != "loss")
    assert losses["loss"].item() == pytest.approx(parts.item())


def test_beta_six_with_a_poor_box_leaves_a_near_zero_target():
    # SG's normalisation t / (max t + 1e-9): with IoU 1/256 the alignment 0.5·(1/256)⁶ ≈ 1.8e-15 is swamped by
    # the 1e-9, so a badly placed first prediction gets a target ≈ 0 (the effect asked about in SG #1800).
    output = PoseHeadOutput(
        torch.zeros(1, 1), torch.zeros(1, 1, 4, 17), torch.full((1, 1, 1, 2), 0.5), torch.zeros(1, 1, 1),
        torch.tensor([[4.0, 4.0]]), torch.tensor([8.0]),
    )  # fmt: skip
    losses = pose_loss(output, _one_person([0, 0, 8, 8]), torch.tensor([0.25]), PoseLossWeights())
    assert losses["loss_cls"].item() == pytest.approx(0.25 * LOG2, rel=1e-5)  # as if the target were 0


def test_images_without_people_only_push_scores_down():
    output = PoseHeadOutput(
        torch.zeros(1, 2), torch.zeros(1, 2, 4, 17), torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1),
        torch.tensor([[4.0, 4.0], [12.0, 4.0]]), torch.tensor([8.0, 8.0]),
    )  # fmt: skip
    empty = PoseTargets(torch.zeros(1, 1, 4), torch.zeros(1, 1, 1, 3), torch.zeros(1, 1, dtype=torch.bool),
                        torch.zeros(1, 1, dtype=torch.bool))  # fmt: skip
    losses = pose_loss(output, empty, torch.tensor([0.1]), PoseLossWeights())
    # two anchors, target 0, logit 0: 2 · 0.25 · log 2 over a normaliser of 1
    assert losses["loss_cls"].item() == pytest.approx(0.5 * LOG2)
    assert all(losses[key].item() == 0.0 for key in ("loss_iou", "loss_dfl", "loss_pose_cls", "loss_pose_reg"))


def test_loss_back_propagates_through_the_model():
    torch.manual_seed(0)
    model = build_yolo_nas_pose("n", num_keypoints=2)
    targets = PoseTargets(
        torch.tensor([[[8.0, 10.0, 50.0, 60.0]]]),
        torch.tensor([[[[20.0, 20.0, 2.0], [30.0, 50.0, 1.0]]]]),
        torch.tensor([[False]]),
        torch.tensor([[True]]),
    )
    losses = pose_loss(model(torch.randn(1, 3, 64, 64)), targets, torch.tensor([0.1, 0.1]), PoseLossWeights())
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert losses["loss_pose_reg"].item() > 0 and losses["loss_iou"].item() > 0
