"""What one VAR training step learns from: the truncated token pyramid, its inputs and its loss weights.

Source: VAR ``models/quant.py:148, 179``, ``models/var.py:198-209`` (truncation to e_p tokens, images never resized) and
``trainer.py:92-120`` (per-token weights 1/L of the
FULL sequence, never renormalised, the newest scale's tokens times ``prog_wp``; loss = mean over images of the
weighted token sum), re-derived from ``trainer.py`` L37-41, L112-120.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from curricurun.curriculum.base import StageState
from curricurun.curriculum.progressive_scales import scale_token_weights
from curricurun.errors import UserError


def stage_scale_index(stage: StageState, num_scales: int) -> int:
    """The largest scale trained at ``stage``: its ``scale_index``, or the last scale without a curriculum."""
    if stage.scale_index is None:
        return num_scales - 1
    if stage.scale_index >= num_scales:
        raise UserError(
            f"curriculum progressive_scales: scale_index {stage.scale_index} is beyond setup.patch_nums"
            f" ({num_scales} scales); give the curriculum the setup's patch_nums"
        )
    return stage.scale_index


def truncated_pyramid(tokenizer, images: torch.Tensor, scale_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth and teacher-forcing input of the first ``scale_index`` + 1 scales of ``images``.

    Returns:
        targets [B, e_p] (long) and inputs [B, e_p − p_0², Cvae] (fp32). The residual quantiser is sequential, so
        the first p + 1 maps of the full encoding are exactly what VAR's encoder stopped after scale p produces.
    """
    maps = tokenizer.encode(images)[: scale_index + 1]
    targets = torch.cat([m.flatten(1) for m in maps], dim=1)
    return targets, tokenizer.teacher_forcing_input(maps)


def token_weights(patch_nums: tuple[int, ...], stage: StageState, scale_index: int, device) -> torch.Tensor:
    """Per-token weights [e_p]: multiplier_k / L for the p_k² tokens of scale k (``scale_token_weights``)."""
    per_scale = scale_token_weights(patch_nums, stage)
    counts = torch.tensor([p * p for p in patch_nums[: scale_index + 1]], device=device)
    values = torch.tensor(per_scale[: scale_index + 1], dtype=torch.float32, device=device)
    return values.repeat_interleave(counts)


def weighted_token_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, label_smoothing: float
) -> torch.Tensor:
    """mean_b Σ_t w_t·CE(logits_bt, target_bt) with label smoothing (VAR's training loss)."""
    per_token = F.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), label_smoothing=label_smoothing, reduction="none"
    ).view_as(targets)
    return (per_token * weights).sum(dim=1).mean()


def per_scale_sums(logits: torch.Tensor, targets: torch.Tensor, patch_nums: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Summed cross-entropy, correct predictions and token counts per scale, each a tensor [K] (no smoothing).

    Sums, not means, so that adding them over batches and ranks gives exact per-scale metrics.
    """
    per_token = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
    correct = (logits.argmax(dim=-1) == targets).float()
    counts = [p * p for p in patch_nums]
    loss = torch.stack([chunk.sum() for chunk in per_token.split(counts, dim=1)])
    hits = torch.stack([chunk.sum() for chunk in correct.split(counts, dim=1)])
    tokens = torch.tensor([float(targets.shape[0] * c) for c in counts], device=targets.device)
    return {"loss_sum": loss, "correct": hits, "tokens": tokens}
