"""VAR's transformer block (adaLN self-attention + MLP) and the adaLN before the head.

Source: ``models/basic_var.py`` (``FFN``, ``AdaLNSelfAttn``, ``AdaLNBeforeHead``), lines 33-174. The
class embedding conditions every block through six modulation vectors per block: gates γ₁, γ₂, scales s₁, s₂ and
shifts b₁, b₂, in that order (the first 2C rows of the adaLN projection are the gates, which is why VAR initialises
them with ``alng`` and the other 4C rows with ``aln``).
"""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from curricurun.setups.var.attention import KVCache, SelfAttention


class FeedForward(nn.Module):
    """Linear → GELU (tanh approximation) → Linear, hidden width ``mlp_ratio``·C (VAR's ``FFN``, ratio 4)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AdaLNSelfAttn(nn.Module):
    """Pre-norm block: x + γ₁·attn(LN(x)(1 + s₁) + b₁), then x + γ₂·mlp(LN(x)(1 + s₂) + b₂), with drop path.

    The LayerNorm has no affine parameters: the class condition supplies them. Per-block adaLN (default): a
    SiLU + Linear(C → 6C) of the class embedding. Shared adaLN (``saln``, VAR-d36-s): one Linear(C → 6C) for all
    blocks, computed once by the model, plus a learned per-block bias ``ada_gss`` [1, 1, 6, C].
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        mlp_ratio: float,
        drop_path: float,
        shared_adaln: bool,
        l2_norm: bool,
        norm_eps: float,
    ):
        super().__init__()
        self.width = width
        self.attn = SelfAttention(width, num_heads, l2_norm)
        self.ffn = FeedForward(width, round(width * mlp_ratio))
        self.ln_wo_grad = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.shared_adaln = shared_adaln
        if shared_adaln:
            # VAR's init: randn / √C, later scaled by aln / alng (model.init_weights).
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, width) / width**0.5)
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def modulation(self, condition: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(γ₁, γ₂, s₁, s₂, b₁, b₂), each [B, 1, C]. ``condition``: the class embedding [B, C], or with shared
        adaLN the shared projection [B, 1, 6, C]."""
        if self.shared_adaln:
            return (self.ada_gss + condition).unbind(2)
        return self.ada_lin(condition).view(-1, 1, 6, self.width).unbind(2)

    def forward(
        self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None = None
    ) -> torch.Tensor:
        gamma1, gamma2, scale1, scale2, shift1, shift2 = self.modulation(condition)
        x = x + self.drop_path(self.attn(self.ln_wo_grad(x) * (scale1 + 1) + shift1, mask, cache) * gamma1)
        return x + self.drop_path(self.ffn(self.ln_wo_grad(x) * (scale2 + 1) + shift2) * gamma2)


class AdaLNBeforeHead(nn.Module):
    """LN(x)(1 + s) + b with (s, b) = Linear(SiLU(class embedding)): the final norm, conditioned per image."""

    def __init__(self, width: int, norm_eps: float):
        super().__init__()
        self.width = width
        self.ln_wo_grad = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(class_embedding).view(-1, 1, 2, self.width).unbind(2)
        return self.ln_wo_grad(x) * (scale + 1) + shift
