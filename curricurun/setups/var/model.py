"""The VAR transformer: class-conditional next-scale prediction on a token pyramid (``models/var.py``, arXiv 2404.02905)

The input sequence of a pyramid with patch numbers p_0..p_{K−1} is [start tokens] + [the teacher-forcing input of
scales 1..K−1], e_{K−1} = L tokens in all; position t predicts token t of the ground-truth pyramid. The start
tokens are the class embedding plus a learned start position; every token adds its scale's level embedding and
its own learned position. Training at progressive stage p cuts the sequence, the embeddings and the mask to the
first e_p tokens, so compute shrinks with the stage (``models/var.py`` ``forward``).

Parameter names follow VAR's (``class_emb``, ``pos_start``, ``pos_1LC``, ``lvl_embed``, ``ada_gss``,
``scale_mul_1H11``) so that VAR's no-weight-decay key list (``curricurun.param_groups.VAR_NO_DECAY_NAMES``) applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from curricurun.setups.var.attention import KVCache, block_causal_mask, token_levels
from curricurun.setups.var.blocks import AdaLNBeforeHead, AdaLNSelfAttn

PATCH_NUM_SETS: dict[str, tuple[int, ...]] = {
    "256": (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
    "512": (1, 2, 3, 4, 6, 9, 13, 18, 24, 32),
    "1024": (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64),
}
"""VAR's ``--pn`` aliases (``utils/arg_util.py:244-249``)."""


@dataclass(frozen=True)
class VarConfig:
    """Everything that determines the transformer (VAR's ``build_vae_var`` arguments, ``models/__init__.py:19-21``).

    Attributes:
        depth: blocks; VAR derives width = 64·depth, heads = depth, drop path = 0.1·depth/24 from it.
        width: C.
        num_heads: attention heads.
        num_classes: classes; the class table has one more row, the unconditional class used for guidance.
        vocab_size: V, the tokenizer's codebook size (the head's outputs).
        token_channels: Cvae, the tokenizer's code dimension (the teacher-forcing inputs' channels).
        patch_nums: token-map sides, coarse to fine.
        mlp_ratio: MLP hidden width over C (VAR: 4).
        drop_path_rate: the last block's drop-path rate; block i gets i/(depth − 1) of it.
        shared_adaln: VAR's ``saln``.
        attn_l2_norm: VAR's ``anorm``.
        class_dropout: probability of replacing the label by the unconditional class in training (VAR: 0.1).
        norm_eps: LayerNorm epsilon (VAR: 1e-6).
        init_std: weight init std; negative means √(1/(3C)) (VAR's ``ini`` −1).
        init_head: multiplier of the head's weights (VAR's ``hd``, 0.02).
        init_adaln: multiplier of the adaLN scale/shift rows (VAR's ``aln``, 0.5).
        init_adaln_gamma: multiplier of the adaLN gate rows (VAR's ``alng``, 1e-5 by default).
    """

    depth: int
    width: int
    num_heads: int
    num_classes: int
    vocab_size: int
    token_channels: int
    patch_nums: tuple[int, ...]
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0
    shared_adaln: bool = False
    attn_l2_norm: bool = True
    class_dropout: float = 0.1
    norm_eps: float = 1e-6
    init_std: float = -1.0
    init_head: float = 0.02
    init_adaln: float = 0.5
    init_adaln_gamma: float = 1e-5

    @property
    def token_ends(self) -> tuple[int, ...]:
        """e_k = Σ_{j≤k} p_j²: the sequence length when training up to scale k."""
        ends, total = [], 0
        for p in self.patch_nums:
            total += p * p
            ends.append(total)
        return tuple(ends)


class VarTransformer(nn.Module):
    """VAR's transformer (``models/var.py`` ``VAR``), without the tokenizer: that stays frozen in the setup."""

    def __init__(self, config: VarConfig):
        super().__init__()
        self.config = config
        c, width = config, config.width
        self.num_classes = c.num_classes
        self.patch_nums = tuple(c.patch_nums)
        self.token_ends = c.token_ends
        self.first_length = self.patch_nums[0] ** 2
        self.word_embed = nn.Linear(c.token_channels, width)
        self.class_emb = nn.Embedding(c.num_classes + 1, width)
        self.pos_start = nn.Parameter(torch.empty(1, self.first_length, width))
        self.pos_1LC = nn.Parameter(torch.empty(1, self.token_ends[-1], width))
        self.lvl_embed = nn.Embedding(len(self.patch_nums), width)
        self.shared_ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width)) if c.shared_adaln else None
        # torch.linspace(0, rate, depth), VAR's stochastic-depth rule, in Python (it must also run on "meta").
        rates = [c.drop_path_rate * i / (c.depth - 1) if c.depth > 1 else 0.0 for i in range(c.depth)]
        self.blocks = nn.ModuleList(
            AdaLNSelfAttn(width, c.num_heads, c.mlp_ratio, rate, c.shared_adaln, c.attn_l2_norm, c.norm_eps)
            for rate in rates
        )
        self.head_nm = AdaLNBeforeHead(width, c.norm_eps)
        self.head = nn.Linear(width, c.vocab_size)
        # Derived from the configuration, so not saved with the weights.
        self.register_buffer("levels", token_levels(self.patch_nums), persistent=False)
        self.init_weights()

    @property
    def init_std(self) -> float:
        return self.config.init_std if self.config.init_std >= 0 else math.sqrt(1 / (3 * self.config.width))

    @torch.no_grad()
    def init_weights(self) -> None:
        """VAR's ``init_weights`` (``models/var.py:237-286``), re-derived.

        Every Linear and Embedding weight and the start/position tables: truncated normal with std √(1/(3C));
        biases 0. Then the head's weight ×``init_head``; the head adaLN's weight ×``init_adaln``; in each block the
        attention output and the MLP's second layer ÷√(2·depth); the block adaLN's gate rows (the first 2C)
        ×``init_adaln_gamma`` and its scale/shift rows ×``init_adaln``, applied to ``ada_gss`` with shared adaLN.
        """
        c, std = self.config, self.init_std
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.pos_start, std=std)
        nn.init.trunc_normal_(self.pos_1LC, std=std)
        self.head.weight.mul_(c.init_head)
        self.head_nm.ada_lin[-1].weight.mul_(c.init_adaln)
        for block in self.blocks:
            block.attn.proj.weight.div_(math.sqrt(2 * c.depth))
            block.ffn.fc2.weight.div_(math.sqrt(2 * c.depth))
            gates = 2 * c.width
            if block.shared_adaln:
                block.ada_gss[:, :, 2:].mul_(c.init_adaln)
                block.ada_gss[:, :, :2].mul_(c.init_adaln_gamma)
            else:
                weight = block.ada_lin[-1].weight
                weight[gates:].mul_(c.init_adaln)
                weight[:gates].mul_(c.init_adaln_gamma)

    def block_condition(self, class_embedding: torch.Tensor) -> torch.Tensor:
        """What the blocks are conditioned on: the class embedding, or its shared adaLN projection [B, 1, 6, C]."""
        if self.shared_ada_lin is None:
            return class_embedding
        return self.shared_ada_lin(class_embedding).view(-1, 1, 6, self.config.width)

    def level_positions(self, start: int, end: int) -> torch.Tensor:
        """Level embedding + position embedding of tokens [start, end): [1, end − start, C]."""
        return self.lvl_embed(self.levels[start:end]).unsqueeze(0) + self.pos_1LC[:, start:end]

    def start_tokens(self, class_embedding: torch.Tensor) -> torch.Tensor:
        """The first scale's input: class embedding + start position (VAR's ``sos``), [B, p_0², C]."""
        batch = class_embedding.shape[0]
        return class_embedding.unsqueeze(1).expand(batch, self.first_length, -1) + self.pos_start

    def logits(self, hidden: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        """adaLN, then the head; fp32 logits [B, l, V] (VAR's ``get_logits``)."""
        return self.head(self.head_nm(hidden.float(), class_embedding).float()).float()

    def run_blocks(
        self,
        x: torch.Tensor,
        condition: torch.Tensor,
        mask: torch.Tensor | None,
        caches: list[KVCache] | None = None,
    ) -> torch.Tensor:
        for index, block in enumerate(self.blocks):
            x = block(x, condition, mask, None if caches is None else caches[index])
        return x

    def forward(self, labels: torch.Tensor, inputs: torch.Tensor, scale_index: int | None = None) -> torch.Tensor:
        """Logits [B, e_p, V] of the first e_p tokens, p = ``scale_index`` (None: all K scales).

        Args:
            labels: class indices [B]; in training mode a ``class_dropout`` fraction becomes the unconditional class.
            inputs: teacher-forcing inputs of scales 1..p, [B, e_p − p_0², Cvae] (the tokenizer's
                ``teacher_forcing_input`` of the first p + 1 token maps).
            scale_index: the progressive stage (VAR's ``prog_si``).
        """
        last = len(self.patch_nums) - 1
        scale_index = last if scale_index is None else scale_index
        if not 0 <= scale_index <= last:
            raise ValueError(f"scale_index {scale_index} outside 0..{last}")
        end = self.token_ends[scale_index]
        if inputs.shape[1] != end - self.first_length:
            raise ValueError(f"expected {end - self.first_length} teacher-forcing tokens, got {inputs.shape[1]}")
        if self.training and self.config.class_dropout > 0:
            dropped = torch.rand(labels.shape[0], device=labels.device) < self.config.class_dropout
            labels = torch.where(dropped, torch.full_like(labels, self.num_classes), labels)
        # Embeddings in fp32, as VAR computes them with autocast off.
        with torch.autocast(device_type=labels.device.type, enabled=False):
            class_embedding = self.class_emb(labels)
            x = self.start_tokens(class_embedding)
            if scale_index > 0:
                x = torch.cat((x, self.word_embed(inputs.float())), dim=1)
            x = x + self.level_positions(0, end)
        mask = block_causal_mask(self.levels, end)
        logits = self.logits(self.run_blocks(x, self.block_condition(class_embedding), mask), class_embedding)
        if scale_index == 0:
            # Stage 0 never uses word_embed; a zero term keeps it in the graph for DDP (VAR's forward does the same).
            logits = logits + 0 * (self.word_embed.weight[0, 0] + self.word_embed.bias[0])
        return logits
