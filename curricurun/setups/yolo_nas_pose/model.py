"""YOLO-NAS-Pose N/S/M/L: YOLO-NAS backbone and PAN neck of QARepVGG blocks, NDFL pose head at strides 8/16/32.

Every width, depth and flag below is copied from super-gradients 3.7.1
``recipes/arch_params/yolo_nas_pose_{n,s,m,l}_arch_params.yaml`` (super-gradients 3.7.1). With 17
keypoints the parameter counts equal SG's exactly (SG 3.7.1 counted once,
tests/setups/test_yolo_nas_pose_model.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from curricurun.setups.yolo_nas_pose.blocks import SPP, DownStage, QARepVGGBlock, Stage, UpStage
from curricurun.setups.yolo_nas_pose.head import PoseHeadOutput, PoseHeads, PoseLevelHead

REG_MAX = 16
STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class NeckStage:
    """``out_channels``, ``num_blocks``, ``hidden_channels`` of one neck stage."""

    out_channels: int
    num_blocks: int
    hidden_channels: int


@dataclass(frozen=True)
class Variant:
    """Architecture parameters of one YOLO-NAS-Pose size.

    Backbone stages are ``(out_channels, num_blocks, hidden_channels, concat_intermediates)``; the head levels
    share ``bbox_inter = (128, 256, 512)``, ``pose_inter = (128, 512, 512)``, ``pose blocks = (2, 2, 3)``
    and differ only in ``head_width``. ``bn_momentum`` is PyTorch's convention (SG passes it through).
    """

    stem: int
    stages: tuple[tuple[int, int, int, bool], ...]
    neck: tuple[NeckStage, NeckStage, NeckStage, NeckStage]
    head_width: float
    bn_momentum: float
    bn_eps: float = 1e-6


VARIANTS: dict[str, Variant] = {
    "n": Variant(
        stem=32,
        stages=((64, 2, 32, False), (128, 3, 48, False), (256, 4, 64, False), (512, 2, 128, False)),
        neck=(NeckStage(128, 2, 48), NeckStage(64, 2, 32), NeckStage(128, 2, 48), NeckStage(256, 2, 48)),
        head_width=0.33,
        bn_momentum=0.03,
    ),
    "s": Variant(
        stem=48,
        stages=((96, 2, 32, False), (192, 3, 64, False), (384, 5, 96, False), (768, 2, 192, False)),
        neck=(NeckStage(192, 2, 64), NeckStage(96, 2, 48), NeckStage(192, 2, 64), NeckStage(384, 2, 64)),
        head_width=0.5,
        bn_momentum=0.1,
    ),
    "m": Variant(
        stem=48,
        stages=((96, 2, 64, True), (192, 3, 128, True), (384, 5, 256, True), (768, 2, 384, False)),
        neck=(NeckStage(192, 2, 192), NeckStage(96, 3, 64), NeckStage(192, 2, 192), NeckStage(384, 3, 256)),
        head_width=0.75,
        bn_momentum=0.1,
    ),
    "l": Variant(
        stem=48,
        stages=((96, 2, 96, True), (192, 3, 128, True), (384, 5, 256, True), (768, 2, 512, True)),
        neck=(NeckStage(192, 4, 128), NeckStage(96, 4, 128), NeckStage(192, 4, 128), NeckStage(384, 4, 256)),
        head_width=1.0,
        bn_momentum=0.03,
    ),
}

HEAD_BBOX_INTER = (128, 256, 512)
HEAD_POSE_INTER = (128, 512, 512)
HEAD_POSE_BLOCKS = (2, 2, 3)


class Backbone(nn.Module):
    """Stem (stride 2) → 4 stages (stride 2 each) → SPP; returns stages 1-3 and the SPP output (c2..c5)."""

    def __init__(self, variant: Variant, in_channels: int):
        super().__init__()
        self.stem = QARepVGGBlock(in_channels, variant.stem, stride=2, residual=False)
        previous = variant.stem
        stages = []
        for out_channels, num_blocks, hidden, concat in variant.stages:
            stages.append(Stage(previous, out_channels, num_blocks, hidden, concat))
            previous = out_channels
        self.stages = nn.ModuleList(stages)
        self.context_module = SPP(previous, previous)
        self.out_channels = [stage[0] for stage in variant.stages[:3]] + [previous]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return [*outputs[:3], self.context_module(x)]


class Neck(nn.Module):
    """PAN with C2 skips: two top-down ``UpStage``s, then two bottom-up ``DownStage``s; returns p3, p4, p5."""

    def __init__(self, variant: Variant, in_channels: list[int]):
        super().__init__()
        c2, c3, c4, c5 = in_channels
        up1, up2, down1, down2 = variant.neck
        self.neck1 = UpStage(c5, c4, c3, up1.out_channels, up1.num_blocks, up1.hidden_channels)
        self.neck2 = UpStage(up1.out_channels, c3, c2, up2.out_channels, up2.num_blocks, up2.hidden_channels)
        self.neck3 = DownStage(
            up2.out_channels, up2.out_channels, down1.out_channels, down1.num_blocks, down1.hidden_channels
        )
        self.neck4 = DownStage(
            down1.out_channels, up1.out_channels, down2.out_channels, down2.num_blocks, down2.hidden_channels
        )
        self.out_channels = [up2.out_channels, down1.out_channels, down2.out_channels]

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        c2, c3, c4, c5 = features
        inter1, x = self.neck1(c5, c4, c3)
        inter2, p3 = self.neck2(x, c3, c2)
        p4 = self.neck3(p3, inter2)
        p5 = self.neck4(p4, inter1)
        return [p3, p4, p5]


class YoloNasPose(nn.Module):
    """Backbone → neck → heads. Input sides must be multiples of 32; returns a :class:`PoseHeadOutput`."""

    def __init__(self, variant: Variant, num_keypoints: int = 17, in_channels: int = 3):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.backbone = Backbone(variant, in_channels)
        self.neck = Neck(variant, self.backbone.out_channels)
        levels = [
            PoseLevelHead(channels, bbox, pose, blocks, variant.head_width, num_keypoints, REG_MAX)
            for channels, bbox, pose, blocks in zip(
                self.neck.out_channels, HEAD_BBOX_INTER, HEAD_POSE_INTER, HEAD_POSE_BLOCKS, strict=True
            )
        ]
        self.heads = PoseHeads(levels, STRIDES)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps, module.momentum = variant.bn_eps, variant.bn_momentum

    def forward(self, images: torch.Tensor) -> PoseHeadOutput:
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"YOLO-NAS-Pose needs image sides divisible by 32, got {tuple(images.shape[-2:])}")
        return self.heads(self.neck(self.backbone(images)))

    def fuse(self) -> YoloNasPose:
        """Re-parametrise every QARepVGG block for inference (outputs unchanged in eval mode); returns self."""
        for module in self.modules():
            if isinstance(module, QARepVGGBlock):
                module.fuse()
        return self


def build_yolo_nas_pose(size: str, num_keypoints: int = 17, in_channels: int = 3) -> YoloNasPose:
    """The ``size`` ∈ {n, s, m, l} variant (a user error for anything else is raised by the setup's params)."""
    return YoloNasPose(VARIANTS[size], num_keypoints, in_channels)
