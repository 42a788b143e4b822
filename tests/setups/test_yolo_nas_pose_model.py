"""YOLO-NAS-Pose model: SG's parameter counts, RepVGG fusion, output layout and decoding."""

from __future__ import annotations

import math

import pytest
import torch

from curricurun.setups.yolo_nas_pose.blocks import QARepVGGBlock, width_multiplier
from curricurun.setups.yolo_nas_pose.head import PoseHeadOutput, decode_boxes, decode_keypoints
from curricurun.setups.yolo_nas_pose.model import build_yolo_nas_pose

# super-gradients 3.7.1, models.get("yolo_nas_pose_<v>", num_classes=17): sum of p.numel() before and after
# prep_model_for_conversion (super-gradients 3.7.1, counted once).
SG_COUNTS = {
    "n": (9_901_483, 6_856_107),
    "s": (22_226_028, 15_356_380),
    "m": (58_208_046, 38_947_486),
    "l": (79_366_452, 54_407_844),
}


def _count(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@pytest.mark.parametrize("size", ["n", "s", "m", "l"])
def test_parameter_counts_equal_super_gradients_before_and_after_fusion(size):
    train_count, fused_count = SG_COUNTS[size]
    with torch.device("meta"):
        model = build_yolo_nas_pose(size)
        assert _count(model) == train_count
        model.fuse()
        assert _count(model) == fused_count


def test_qarepvgg_counts_its_frozen_placeholder_like_super_gradients():
    # Stem block 3 → 32, stride 2: conv3x3 32·3·9 = 864, its BN 2·32 = 64, conv1x1 32·3 + 32 = 128,
    # post BN 64, placeholder 3×3 conv with bias 864 + 32 = 896 → 2016 in all, 1120 trainable;
    # fused: the placeholder (now trained) 896 + post BN 64 = 960.
    block = QARepVGGBlock(3, 32, stride=2, residual=False)
    assert (_count(block), _count(block, trainable_only=True)) == (2016, 1120)
    block.fuse()
    assert (_count(block), _count(block, trainable_only=True)) == (960, 960)


def test_width_multiplier_truncates_then_rounds_up_to_eight():
    # 128·0.33 = 42.24 → 42 → 48; 256·0.33 = 84.48 → 84 → 88; 512·0.33 = 168.96 → 168; 512·0.75 = 384.
    assert [width_multiplier(c, 0.33) for c in (128, 256, 512)] == [48, 88, 168]
    assert width_multiplier(512, 0.75) == 384


def _randomise_batch_norm(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters, so that fusion has something to fold."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(channels, generator=generator) * 0.5 + 0.75)
            module.weight.data.copy_(torch.rand(channels, generator=generator) * 0.5 + 0.75)
            module.bias.data.copy_(torch.randn(channels, generator=generator) * 0.1)


def test_residual_block_fusion_leaves_outputs_unchanged_in_eval_mode():
    generator = torch.Generator().manual_seed(0)
    block = QARepVGGBlock(8, 8, residual=True)
    _randomise_batch_norm(block, generator)
    block.eval()
    x = torch.randn(2, 8, 7, 5, generator=generator)
    before = block(x)
    block.fuse()
    assert torch.allclose(block(x), before, atol=1e-5)


def test_whole_model_fusion_leaves_every_output_within_1e_4():
    torch.manual_seed(0)
    model = build_yolo_nas_pose("n")
    _randomise_batch_norm(model, torch.Generator().manual_seed(1))
    model.eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        before = model(images)
        after = model.fuse()(images)
    for name, a, b in zip(PoseHeadOutput._fields, before, after, strict=True):
        assert (a - b).abs().max().item() < 1e-4, name


def test_outputs_cover_three_strides_with_17_keypoints():
    model = build_yolo_nas_pose("n").eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 96, 128))
    # anchors: (96/8)·(128/8) + (96/16)·(128/16) + (96/32)·(128/32) = 192 + 48 + 12 = 252
    assert out.cls_logits.shape == (2, 252)
    assert out.box_logits.shape == (2, 252, 4, 17)
    assert out.pose_offsets.shape == (2, 252, 17, 2)
    assert out.pose_logits.shape == (2, 252, 17)
    assert out.strides.tolist() == [8.0] * 192 + [16.0] * 48 + [32.0] * 12
    # first cells of each level: centres (4, 4), (8, 8), (16, 16); second cell of level 1 is (12, 4)
    assert out.anchor_points[[0, 1, 192, 240]].tolist() == [[4, 4], [12, 4], [8, 8], [16, 16]]


def test_person_logit_starts_at_the_one_percent_prior():
    model = build_yolo_nas_pose("n")
    # −log((1 − 0.01)/0.01) = −log 99 = −4.5951
    assert model.heads.levels[0].cls_pred.bias[0].item() == pytest.approx(-math.log(99))


def test_sides_not_divisible_by_32_are_rejected():
    with pytest.raises(ValueError, match="divisible by 32"):
        build_yolo_nas_pose("n")(torch.zeros(1, 3, 48, 64))


def test_boxes_decode_as_anchor_minus_and_plus_expected_distance_times_stride():
    # One anchor at (20, 12), stride 8; logits peaked at bins 1, 2, 3, 0 (ltrb) → distances 8, 16, 24, 0 px.
    box_logits = torch.full((1, 1, 4, 17), -1e4)
    for side, bin_ in enumerate([1, 2, 3, 0]):
        box_logits[0, 0, side, bin_] = 0.0
    output = PoseHeadOutput(
        torch.zeros(1, 1),
        box_logits,
        torch.tensor([[[[0.0, 0.0], [1.5, -0.5]]]]),
        torch.zeros(1, 1, 2),
        torch.tensor([[20.0, 12.0]]),
        torch.tensor([8.0]),
    )
    # x1 = 20 − 8, y1 = 12 − 16, x2 = 20 + 24, y2 = 12 + 0
    assert decode_boxes(output).tolist() == [[[12.0, -4.0, 44.0, 12.0]]]
    # keypoint = offset·8 + anchor − 4: (0, 0) → (16, 8), the cell's corner; (1.5, −0.5) → (28, 4)
    assert decode_keypoints(output).tolist() == [[[[16.0, 8.0], [28.0, 4.0]]]]
