"""Building blocks of YOLO-NAS: QARepVGG, conv-BN-ReLU, the CSP layer and its stages.

Layouts follow super-gradients 3.7.1 (``yolo_nas_pose_*_arch_params.yaml``): ``modules/qarepvgg_block.py`` and
``models/detection_models/yolo_nas/yolo_stages.py``. Attribute names inside the blocks follow SG's to make a
side-by-side comparison easy; the code is re-derived from the block diagrams.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def width_multiplier(channels: int, factor: float, divisor: int = 8) -> int:
    """SG's channel rounding: ``ceil(int(channels·factor) / divisor)·divisor`` (``modules/utils.py``).

    Truncation comes first, so 128·0.33 = 42.24 → 42 → 48, and 256·0.33 = 84.48 → 84 → 88.
    """
    return math.ceil(int(channels * factor) / divisor) * divisor


class ConvBNReLU(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU, padding ``kernel // 2`` (SG's ``Conv`` and ``ConvBNReLU``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class QARepVGGBlock(nn.Module):
    """Quantisation-aware RepVGG (S4 variant of Chu et al. 2022, arXiv 2212.01593), as used by YOLO-NAS.

    Training form: ``ReLU(post_bn(BN(conv3x3(x)) + conv1x1(x) + bias + [x]))`` — the 1×1 branch has a bias and
    no BN, and one BN follows the sum, which keeps the fused kernel's weight distribution quantisation
    friendly. :meth:`fuse` folds the three branches into the single 3×3 conv ``rbr_reparam`` and keeps
    ``post_bn`` (SG's partial fusion, what ``prep_model_for_conversion`` does by default).

    ``rbr_reparam`` exists before fusion too, frozen: SG registers it from the start ("placeholder to
    correctly register parameters"), so SG's train-time parameter count and state-dict keys include it. It is
    frozen here so that the optimizer, weight decay and DDP's gradient reduction never see an unused tensor.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, residual: bool = True):
        super().__init__()
        if residual and (in_channels != out_channels or stride != 1):
            raise ValueError("a residual QARepVGG block needs in_channels == out_channels and stride 1")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.residual = residual
        self.branch_3x3 = nn.Sequential()
        self.branch_3x3.add_module("conv", nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False))
        self.branch_3x3.add_module("bn", nn.BatchNorm2d(out_channels))
        self.branch_1x1 = nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=True)
        self.post_bn = nn.BatchNorm2d(out_channels)
        self.rbr_reparam = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=True)
        self.rbr_reparam.requires_grad_(False)
        self.act = nn.ReLU(inplace=True)
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self.act(self.post_bn(self.rbr_reparam(x)))
        branches = self.branch_3x3(x) + self.branch_1x1(x)
        if self.residual:
            branches = branches + x
        return self.act(self.post_bn(branches))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the branches into ``rbr_reparam`` (exact in eval mode, where BN uses its running statistics).

        BN(conv(x)) = conv(x)·γ/σ + (β − γμ/σ) with σ = sqrt(var + eps); the 1×1 kernel is zero-padded to
        3×3; the identity is a 3×3 kernel with 1 at the centre of channel i → i.
        """
        if self.fused:
            return
        bn = self.branch_3x3.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        kernel = self.branch_3x3.conv.weight * scale[:, None, None, None]
        bias = bn.bias - bn.running_mean * scale
        kernel = kernel + F.pad(self.branch_1x1.weight, [1, 1, 1, 1])
        bias = bias + self.branch_1x1.bias
        if self.residual:
            identity = torch.zeros_like(kernel)
            channels = torch.arange(self.in_channels, device=kernel.device)
            identity[channels, channels, 1, 1] = 1.0
            kernel = kernel + identity
        self.rbr_reparam.weight.copy_(kernel)
        self.rbr_reparam.bias.copy_(bias)
        self.rbr_reparam.requires_grad_(True)
        del self.branch_3x3, self.branch_1x1
        self.fused = True


class Bottleneck(nn.Module):
    """Two blocks with a residual scaled by a learnable ``alpha`` (``y = alpha·x + block2(block1(x))``)."""

    def __init__(self, channels: int, block: Callable[[int, int], nn.Module]):
        super().__init__()
        self.cv1 = block(channels, channels)
        self.cv2 = block(channels, channels)
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x + self.cv2(self.cv1(x))


class CSPLayer(nn.Module):
    """Cross-stage partial layer: two 1×1 projections, a bottleneck chain on one, concat, 1×1 out.

    With ``concat_intermediates`` (M and L backbones) every bottleneck output, and the chain's input, is
    concatenated, so the last 1×1 conv sees ``hidden·(2 + num_blocks)`` channels instead of ``2·hidden``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        hidden_channels: int,
        block: Callable[[int, int], nn.Module],
        concat_intermediates: bool = False,
    ):
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, hidden_channels, 1)
        self.conv2 = ConvBNReLU(in_channels, hidden_channels, 1)
        self.concat_intermediates = concat_intermediates
        concat_channels = hidden_channels * (2 + (num_blocks if concat_intermediates else 0))
        self.conv3 = ConvBNReLU(concat_channels, out_channels, 1)
        self.bottlenecks = nn.ModuleList(Bottleneck(hidden_channels, block) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chain = self.conv1(x)
        parts = [chain]
        for bottleneck in self.bottlenecks:
            chain = bottleneck(chain)
            parts.append(chain)
        kept = parts if self.concat_intermediates else [chain]
        return self.conv3(torch.cat([*kept, self.conv2(x)], dim=1))


def repvgg_block(in_channels: int, out_channels: int) -> nn.Module:
    """Residual QARepVGG block: the bottleneck block of backbone stages and up-sampling neck stages."""
    return QARepVGGBlock(in_channels, out_channels)


def conv3x3_block(in_channels: int, out_channels: int) -> nn.Module:
    """Plain 3×3 conv-BN-ReLU: the bottleneck block of down-sampling neck stages."""
    return ConvBNReLU(in_channels, out_channels, 3)


class Stage(nn.Module):
    """Backbone stage: a stride-2 QARepVGG down-sampling block, then a CSP layer of residual QARepVGG blocks."""

    def __init__(
        self, in_channels: int, out_channels: int, num_blocks: int, hidden_channels: int, concat_intermediates: bool
    ):
        super().__init__()
        self.downsample = QARepVGGBlock(in_channels, out_channels, stride=2, residual=False)
        self.blocks = CSPLayer(
            out_channels, out_channels, num_blocks, hidden_channels, repvgg_block, concat_intermediates
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SPP(nn.Module):
    """Spatial pyramid pooling: 1×1 to half the channels, max-pools (5, 9, 13) stacked, 1×1 out."""

    def __init__(self, in_channels: int, out_channels: int, kernels: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = ConvBNReLU(in_channels, hidden, 1)
        self.cv2 = ConvBNReLU(hidden * (len(kernels) + 1), out_channels, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x, *(pool(x) for pool in self.m)], dim=1))


class UpStage(nn.Module):
    """Top-down neck stage with two skips (SG's ``YoloNASUpStage``, 3 inputs, ``reduce_channels: True``).

    The deeper input is reduced (1×1) and up-sampled ×2 by a transposed conv; the same-scale skip is reduced;
    the shallower skip is reduced and down-sampled (3×3, stride 2); the three are concatenated, reduced, and
    refined by a CSP layer. Returns ``(reduced deep input, output)``: the down-sampling stages reuse the first.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        shallow_skip_channels: int,
        out_channels: int,
        num_blocks: int,
        hidden_channels: int,
    ):
        super().__init__()
        self.reduce_skip1 = ConvBNReLU(skip_channels, out_channels, 1)
        self.reduce_skip2 = ConvBNReLU(shallow_skip_channels, out_channels, 1)
        self.conv = ConvBNReLU(in_channels, out_channels, 1)
        self.upsample = nn.ConvTranspose2d(out_channels, out_channels, kernel_size=2, stride=2)
        self.downsample = ConvBNReLU(out_channels, out_channels, 3, stride=2)
        self.reduce_after_concat = ConvBNReLU(3 * out_channels, out_channels, 1)
        self.blocks = CSPLayer(out_channels, out_channels, num_blocks, hidden_channels, repvgg_block)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor, shallow_skip: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inter = self.conv(x)
        merged = torch.cat(
            [self.upsample(inter), self.reduce_skip1(skip), self.downsample(self.reduce_skip2(shallow_skip))], dim=1
        )
        return inter, self.blocks(self.reduce_after_concat(merged))


class DownStage(nn.Module):
    """Bottom-up neck stage: 3×3 stride-2 conv to half the output width, concat the skip, CSP of 3×3 convs."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, num_blocks: int, hidden_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels // 2, 3, stride=2)
        concat_channels = out_channels // 2 + skip_channels
        self.blocks = CSPLayer(concat_channels, out_channels, num_blocks, hidden_channels, conv3x3_block)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.blocks(torch.cat([self.conv(x), skip], dim=1))
