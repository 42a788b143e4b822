"""The class-conditional DiT that Pyramid-Flow trains: adaLN-zero blocks, stage segments packed or unpacked.

A forward call takes one latent tensor per *group* of equally sized samples (one group per pyramid stage in
training; a single group while sampling) and returns the predicted velocity of every sample. Each sample is
modulated by its own timestep and condition, and attends only to its own tokens, so the two layouts compute the
same function (``modeling_pyramid_flux.py`` L379-489, ``modeling_pyramid_mmdit.py`` L457):

- ``packed``: as Pyramid-Flow, the segments of one row (one group of ``sum(ratios)`` stage columns) are concatenated
  into one token sequence; attention is confined to each segment by a block-diagonal mask (an explicit boolean
  mask with ``scaled_dot_product_attention``, or a FlexAttention block mask), and adaLN modulation is written per
  token from the segment's own sample (the reference's ``forward_with_pad``);
- ``unpacked``: each stage's samples form an ordinary batch of equal-length sequences.

Positions are per stage on the stage's own integer token grid: 2-D sin-cos added to the tokens (the MMDiT
variant's kind) or 2-D rotary embeddings on queries and keys (the Flux variant's kind),
``modeling_embedding.py`` L199-308 and ``modeling_pyramid_flux.py`` L101.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from curricurun.errors import UserError

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of :class:`PyramidDiT` (the setup fills it from the recipe)."""

    channels: int
    num_classes: int
    hidden_size: int = 384
    depth: int = 12
    num_heads: int = 6
    patch_size: int = 2
    mlp_ratio: float = 4.0
    positions: Literal["sincos", "rope"] = "sincos"
    packing: Literal["packed", "unpacked"] = "packed"
    packed_attention: Literal["mask", "flex"] = "mask"
    condition_dim: int | None = None
    """None: class-conditional (a learned embedding per class plus a null class for guidance); an integer: the
    width of precomputed text embeddings, projected to the hidden size (``tools/extract_text_features.py`` L140-148)."""


def timestep_embedding(timesteps: torch.Tensor, dim: int = 256, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of the DiT timestep τ ∈ [1, 1000], cos first (diffusers' ``Timesteps``, as the reference)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_positions(height: int, width: int, dim: int, device: torch.device) -> torch.Tensor:
    """2-D sin-cos embedding [height·width, dim] of the integer token grid: half the channels per axis."""
    quarter = dim // 4
    omega = 1.0 / 10_000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    parts = []
    for axis in (rows.reshape(-1), cols.reshape(-1)):
        angles = axis[:, None] * omega[None]
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=-1)


def rope_angles(height: int, width: int, head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [height·width, head_dim/2] of 2-D rotary embeddings: a quarter of the pairs per axis."""
    quarter = head_dim // 4
    freqs = 1.0 / 10_000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    angles = torch.cat([rows.reshape(-1, 1) * freqs, cols.reshape(-1, 1) * freqs], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x_i, x_{i + d/2}) of ``x`` [..., L, d] by the angles whose cos/sin are [L, d/2]."""
    first, second = x.float().chunk(2, dim=-1)
    rotated = torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)
    return rotated.to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = attend(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    """DiT block with adaLN-zero (Peebles & Xie 2023): six modulation vectors per sample, zero-initialised."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(
        self,
        x: torch.Tensor,
        condition: torch.Tensor,
        per_token: Callable[[torch.Tensor], torch.Tensor],
        attend: Attend,
    ) -> torch.Tensor:
        """``condition`` is per sample [B, D]; ``per_token`` spreads a per-sample tensor over ``x``'s tokens."""
        shift1, scale1, gate1, shift2, scale2, gate2 = per_token(self.adaLN_modulation(condition)).chunk(6, dim=-1)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), attend)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch: int, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, condition: torch.Tensor, per_token) -> torch.Tensor:
        shift, scale = per_token(self.adaLN_modulation(condition)).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


@dataclass(frozen=True)
class _Group:
    count: int
    grid: tuple[int, int]

    @property
    def length(self) -> int:
        return self.grid[0] * self.grid[1]


class PyramidDiT(nn.Module):
    """Velocity predictor f_θ(x_r, τ, condition) over groups of stage latents (``pipeline`` L283-302, L339-347)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        dim, patch = config.hidden_size, config.patch_size
        if dim % config.num_heads or (dim // config.num_heads) % 4 or dim % 4:
            raise ValueError(f"hidden_size {dim} must split into {config.num_heads} heads of a multiple of 4 channels")
        self.patch_embed = nn.Conv2d(config.channels, dim, kernel_size=patch, stride=patch)
        self.time_mlp = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))
        if config.condition_dim is None:
            self.condition_embed: nn.Module = nn.Embedding(config.num_classes + 1, dim)  # last row: the null class
        else:
            self.condition_embed = nn.Linear(config.condition_dim, dim)
        self.blocks = nn.ModuleList(Block(dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth))
        self.final = FinalLayer(dim, patch, config.channels)
        self._block_masks: dict[tuple, object] = {}
        self._initialise()

    def _initialise(self) -> None:
        """DiT's initialisation: Xavier linears, zero adaLN and output layers (so every block starts as identity)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        weight = self.patch_embed.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.condition_embed.weight, std=0.02)
        for layer in (self.time_mlp[0], self.time_mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final.adaLN_modulation[-1], self.final.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, *latents: torch.Tensor, timesteps: torch.Tensor, conditions: torch.Tensor) -> tuple[torch.Tensor]:
        """Predicted velocities, one tensor per group, shaped like the inputs.

        Args:
            latents: one ``[B_g, C, H_g, W_g]`` tensor per group (per stage), sides divisible by the patch size.
            timesteps: ``[Σ B_g]`` DiT timesteps τ, in group order.
            conditions: ``[Σ B_g]`` labels (``num_classes``: the null class) or ``[Σ B_g, condition_dim]`` embeddings.
        """
        patch = self.config.patch_size
        groups = [_Group(x.shape[0], (x.shape[-2] // patch, x.shape[-1] // patch)) for x in latents]
        condition = self.time_mlp(timestep_embedding(timesteps).to(self.time_mlp[0].weight.dtype))
        condition = condition + self.condition_embed(conditions)
        tokens = []
        for x, group in zip(latents, groups, strict=True):
            t = self.patch_embed(x).flatten(2).transpose(1, 2)
            if self.config.positions == "sincos":
                t = t + sincos_positions(*group.grid, t.shape[-1], t.device).to(t.dtype)
            tokens.append(t)
        if self.config.packing == "packed":
            outputs = self._packed(tokens, groups, condition)
        else:
            outputs = self._unpacked(tokens, groups, condition)
        return tuple(self._unpatchify(out, group) for out, group in zip(outputs, groups, strict=True))

    def _unpacked(self, tokens: list[torch.Tensor], groups: list[_Group], condition: torch.Tensor) -> list:
        """Each group is an ordinary batch of equal-length sequences."""
        outputs, offset = [], 0
        for x, group in zip(tokens, groups, strict=True):
            c = condition[offset : offset + group.count]
            offset += group.count
            attend = self._dense_attention(self._rope([group]), mask=None)

            def per_sample(m: torch.Tensor) -> torch.Tensor:
                return m[:, None]

            for block in self.blocks:
                x = block(x, c, per_sample, attend)
            outputs.append(self.final(x, c, per_sample))
        return outputs

    def _packed(self, tokens: list[torch.Tensor], groups: list[_Group], condition: torch.Tensor) -> list:
        """One sequence per row holding ``count_g / rows`` samples of every group; attention stays in a segment."""
        rows = math.gcd(*(g.count for g in groups))
        per_row = [g.count // rows for g in groups]
        x = torch.cat([t.reshape(rows, m * g.length, -1) for t, g, m in zip(tokens, groups, per_row, strict=True)], 1)
        segment = self._segments(groups, per_row, x.device)
        rope = self._rope(groups, per_row)
        if self.config.packed_attention == "flex":
            attend = self._flex_attention(rope, segment, groups)
        else:
            attend = self._dense_attention(rope, mask=segment[:, None] == segment[None, :])
        counts = [g.count for g in groups]

        def per_token(m: torch.Tensor) -> torch.Tensor:
            """Each sample's vector repeated over its segment's tokens (the reference's ``forward_with_pad``)."""
            pieces = [
                piece.reshape(rows, n, 1, -1).expand(-1, -1, g.length, -1).reshape(rows, n * g.length, -1)
                for piece, g, n in zip(m.split(counts), groups, per_row, strict=True)
            ]
            return torch.cat(pieces, dim=1)

        for block in self.blocks:
            x = block(x, condition, per_token, attend)
        x = self.final(x, condition, per_token)
        pieces = x.split([m * g.length for g, m in zip(groups, per_row, strict=True)], dim=1)
        return [p.reshape(g.count, g.length, -1) for p, g in zip(pieces, groups, strict=True)]

    @staticmethod
    def _segments(groups: list[_Group], per_row: list[int], device) -> torch.Tensor:
        """The segment id of each token of a row [L]: one segment per sample, the same layout in every row."""
        lengths = torch.tensor(
            [g.length for g, n in zip(groups, per_row, strict=True) for _ in range(n)], device=device
        )
        return torch.arange(lengths.numel(), device=device).repeat_interleave(lengths)

    def _rope(self, groups: list[_Group], per_row: list[int] | None = None):
        """cos/sin over the tokens of one sequence (a group's sample, or a whole packed row); None for sin-cos."""
        if self.config.positions != "rope":
            return None
        head_dim = self.config.hidden_size // self.config.num_heads
        device = self.patch_embed.weight.device
        parts = [rope_angles(*g.grid, head_dim, device) for g in groups]
        repeats = per_row or [1] * len(groups)
        cos = torch.cat([c.repeat(m, 1) for (c, _), m in zip(parts, repeats, strict=True)])
        sin = torch.cat([s.repeat(m, 1) for (_, s), m in zip(parts, repeats, strict=True)])
        return cos, sin

    @staticmethod
    def _dense_attention(rope, mask: torch.Tensor | None) -> Attend:
        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        return attend

    def _flex_attention(self, rope, segment: torch.Tensor, groups: list[_Group]) -> Attend:
        """FlexAttention with a block mask built once per layout (compiled on CUDA, the unfused path elsewhere)."""
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        key = (tuple((g.count, g.grid) for g in groups), str(segment.device))
        if key not in self._block_masks:
            length = segment.numel()

            def same_segment(batch, head, query, key_index):
                return segment[query] == segment[key_index]

            self._block_masks[key] = create_block_mask(
                same_segment, None, None, length, length, device=str(segment.device)
            )
        block_mask = self._block_masks[key]
        if not segment.is_cuda and torch.is_grad_enabled():
            raise UserError(
                "setup.packed_attention: 'flex' trains only on CUDA (FlexAttention has no CPU backward); use 'mask'"
            )
        kernel = _compiled_flex() if segment.is_cuda else flex_attention

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            return kernel(q, k, v, block_mask=block_mask)

        return attend

    def _unpatchify(self, x: torch.Tensor, group: _Group) -> torch.Tensor:
        patch, channels = self.config.patch_size, self.config.channels
        height, width = group.grid
        x = x.reshape(group.count, height, width, patch, patch, channels)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(group.count, channels, height * patch, width * patch)


_COMPILED_FLEX = None


def _compiled_flex():
    """FlexAttention is fused only under ``torch.compile``; compile it once per process."""
    global _COMPILED_FLEX
    if _COMPILED_FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=False)
    return _COMPILED_FLEX
