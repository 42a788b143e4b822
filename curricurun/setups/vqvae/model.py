"""The convolutional encoder and decoder of VAR's VQ-VAE (VAR ``models/basic_vae.py``, ``models/vqvae.py:16-53``).

VAR takes them from latent-diffusion's vq-f16 autoencoder (``models/basic_vae.py``, ``models/vqvae.py:16-53``):
GroupNorm(32, eps 1e-6) and SiLU in pre-activation residual blocks, a 2× down-sampling convolution between the
levels of ``ch_mult`` (so the latent side is ``image_size / 2**(len(ch_mult) - 1)``), single-head self-attention
in every block of the deepest level and in the middle, and a 3×3 output convolution to ``z_channels``. The decoder
mirrors it with one extra residual block per level and nearest-neighbour 2× up-sampling.

Module and parameter names follow the reference (``down.<level>.block.<i>.norm1`` ...), and the parameter count is
VAR's: 108,948,355 for ``vae_ch160v4096z32`` with the quantiser (tests/setups/test_vqvae_setup.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm as VAR uses it (``models/basic_vae.py:18-19``: 32 groups, eps 1e-6), not BatchNorm."""
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm → SiLU → conv3×3 → norm → SiLU → dropout → conv3×3, plus a 1×1 shortcut when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.nin_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H·W positions, with a residual connection (1×1 q/k/v and output)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(batch, 3, channels, height * width).transpose(2, 3).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # softmax(q·kᵀ/√C)·v, the reference's scale
        return x + self.proj_out(h.transpose(1, 2).reshape(batch, channels, height, width))


class Downsample2x(nn.Module):
    """Stride-2 3×3 convolution after padding one zero row/column at the bottom/right (halves an even side)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2x(nn.Module):
    """Nearest-neighbour 2× up-sampling followed by a 3×3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level(blocks: list[nn.Module], attentions: list[nn.Module], resample: nn.Module | None) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    level.attn = nn.ModuleList(attentions)
    if resample is not None:
        level.add_module("downsample" if isinstance(resample, Downsample2x) else "upsample", resample)
    return level


def _middle(channels: int, dropout: float, groups: int, attention: bool) -> nn.Module:
    middle = nn.Module()
    middle.block_1 = ResnetBlock(channels, channels, dropout, groups)
    middle.attn_1 = AttnBlock(channels, groups) if attention else nn.Identity()
    middle.block_2 = ResnetBlock(channels, channels, dropout, groups)
    return middle


class Encoder(nn.Module):
    """Image ``[B, in_channels, H, W]`` → latent ``[B, z_channels, H/2^(L-1), W/2^(L-1)]`` for L levels."""

    def __init__(
        self,
        *,
        in_channels: int,
        ch: int,
        ch_mult: tuple[int, ...],
        num_res_blocks: int,
        z_channels: int,
        dropout: float = 0.0,
        attention: bool = True,
        mid_attention: bool = True,
        groups: int = 32,
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, padding=1)
        self.down = nn.ModuleList()
        width = ch
        last = len(ch_mult) - 1
        for level, multiplier in enumerate(ch_mult):
            blocks, attentions = [], []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(width, ch * multiplier, dropout, groups))
                width = ch * multiplier
                if level == last and attention:
                    attentions.append(AttnBlock(width, groups))
            self.down.append(_level(blocks, attentions, Downsample2x(width) if level != last else None))
        self.mid = _middle(width, dropout, groups, mid_attention)
        self.norm_out = group_norm(width, groups)
        self.conv_out = nn.Conv2d(width, z_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for index, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[index](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent ``[B, z_channels, h, w]`` → image ``[B, out_channels, h·2^(L-1), w·2^(L-1)]`` (not clamped)."""

    def __init__(
        self,
        *,
        out_channels: int,
        ch: int,
        ch_mult: tuple[int, ...],
        num_res_blocks: int,
        z_channels: int,
        dropout: float = 0.0,
        attention: bool = True,
        mid_attention: bool = True,
        groups: int = 32,
    ):
        super().__init__()
        last = len(ch_mult) - 1
        width = ch * ch_mult[last]
        self.conv_in = nn.Conv2d(z_channels, width, kernel_size=3, padding=1)
        self.mid = _middle(width, dropout, groups, mid_attention)
        levels: list[nn.Module] = []
        for level in reversed(range(len(ch_mult))):
            blocks, attentions = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(width, ch * ch_mult[level], dropout, groups))
                width = ch * ch_mult[level]
                if level == last and attention:
                    attentions.append(AttnBlock(width, groups))
            levels.insert(0, _level(blocks, attentions, Upsample2x(width) if level != 0 else None))
        self.up = nn.ModuleList(levels)  # indexed by level, run from the deepest (last) to level 0
        self.norm_out = group_norm(width, groups)
        self.conv_out = nn.Conv2d(width, out_channels, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(self.up):
            for index, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[index](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
