"""VAR's self-attention: optional L2-normalised queries and keys, the block-causal pyramid mask, a KV cache.

Source: ``models/basic_var.py`` ``SelfAttention`` and ``models/var.py`` (mask construction): ``anorm``
(``models/basic_var.py:66-72, 101-105``), the mask sliced to the trained prefix (``models/var.py:209``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NORMALISED_SCALE_INIT = 4.0
"""``anorm``: the learned per-head logit scale starts at log 4 (``models/basic_var.py:66-72``)."""
NORMALISED_SCALE_MAX = 100.0
"""``anorm``: the scale is clamped at log 100 before exponentiation, so logits stay bounded (fp16 stability, VAR#38)."""


def token_levels(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """The scale index of every token of the pyramid: p_0² zeros, p_1² ones, … (VAR's ``lvl_1L``)."""
    return torch.cat([torch.full((p * p,), k, dtype=torch.long) for k, p in enumerate(patch_nums)])


def block_causal_mask(levels: torch.Tensor, length: int) -> torch.Tensor:
    """Boolean ``[length, length]`` mask, True where query i may attend key j: level(j) ≤ level(i).

    Every token sees all tokens of its own and of coarser scales, none of finer ones (``models/var.py``:
    ``where(d >= dT, 0, -inf)``). Training at stage p uses the top-left e_p × e_p block (``models/var.py:209``).
    """
    prefix = levels[:length]
    return prefix[:, None] >= prefix[None, :]


@dataclass
class KVCache:
    """Keys and values of the scales generated so far, one per block (sampling only).

    With the cache, scale k's tokens attend to scales 0..k without a mask: exactly the block-causal pattern, since
    the finer scales do not exist yet (VAR's ``kv_caching``; its sampling passes ``attn_bias=None``).
    """

    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def extend(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this scale's keys/values ``[B, H, l, d]`` along the sequence; return everything cached."""
        if self.keys is not None:
            keys = torch.cat((self.keys, keys), dim=2)
            values = torch.cat((self.values, values), dim=2)
        self.keys, self.values = keys, values
        return keys, values


class SelfAttention(nn.Module):
    """Multi-head self-attention with VAR's parameter layout: qkv without a key bias, learned q and v biases.

    With ``l2_norm`` (VAR's ``anorm``, default on): q and k are L2-normalised per head and q is multiplied by
    ``exp(min(scale_mul_1H11, log 100))``, a learned per-head scale initialised at log 4; the softmax scale is then 1.
    Without it the softmax scale is VAR's 0.25/√d, not the usual 1/√d (``models/basic_var.py``).
    """

    def __init__(self, width: int, num_heads: int, l2_norm: bool = True):
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, width // num_heads
        self.l2_norm = l2_norm
        self.mat_qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.proj = nn.Linear(width, width)
        if l2_norm:
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), math.log(NORMALISED_SCALE_INIT)))
            self.scale = 1.0
        else:
            self.scale = 0.25 / math.sqrt(self.head_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None = None) -> torch.Tensor:
        """``x`` [B, l, C] → [B, l, C]; ``mask`` boolean [l, l] (training) or None (sampling with ``cache``)."""
        batch, length, width = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        qkv = F.linear(x, self.mat_qkv.weight, bias).view(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, l, d]
        if self.l2_norm:
            scale_mul = self.scale_mul_1H11.clamp_max(math.log(NORMALISED_SCALE_MAX)).exp()
            # The fp32 scale would promote q out of the autocast dtype; k and v stay in it.
            q = (F.normalize(q, dim=-1) * scale_mul).to(v.dtype)
            k = F.normalize(k, dim=-1)
        if cache is not None:
            k, v = cache.extend(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))
