"""VAR sampling: scale by scale with a KV cache, classifier-free guidance on a ramp, top-k / top-p.

Source: ``models/var.py`` ``autoregressive_infer_cfg`` and ``models/helpers.py`` ``sample_with_top_k_top_p_``
(VAR ``models/var.py``), re-derived. Each scale is one forward pass over its p_k² tokens: the KV cache holds the
keys and values of the coarser scales, so no mask is needed. The conditional and unconditional halves run as one
batch of 2B; at scale k the guided logits are (1 + t)·cond − t·uncond with t = cfg·k/(K − 1), so guidance grows
from 0 at the first scale to ``cfg`` at the last.
"""

from __future__ import annotations

import torch

from curricurun.setups.var.attention import KVCache
from curricurun.setups.var.model import VarTransformer


def filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Logits with everything outside the top-k and outside the top-p nucleus set to −inf (0 turns either off).

    Top-k keeps the logits ≥ the k-th largest (k is capped at the vocabulary). Top-p sorts ascending and drops
    the low tail whose cumulative probability is ≤ 1 − p, always keeping the most likely token.
    """
    logits = logits.clone()
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits.masked_fill_(logits < kth, -torch.inf)
    if top_p > 0:
        ordered, order = logits.sort(dim=-1)
        drop = ordered.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
        drop[..., -1] = False
        logits.masked_fill_(drop.scatter(-1, order, drop), -torch.inf)
    return logits


def sample_tokens(logits: torch.Tensor, top_k: int, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One token per position from softmax(filtered logits): [B, l, V] → [B, l]."""
    probabilities = filter_top_k_top_p(logits, top_k, top_p).softmax(dim=-1)
    flat = probabilities.view(-1, probabilities.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(logits.shape[:-1])


@torch.no_grad()
def generate(
    model: VarTransformer,
    tokenizer,
    labels: torch.Tensor,
    cfg: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Images [B, C, H, W] in [-1, 1] for class ``labels`` [B] (on the model's device).

    ``tokenizer`` supplies the code lookup, φ and the running f̂ (``embed``, ``next_autoregressive_input``,
    ``decode_latent``), the same path the transformer's teacher-forcing inputs were built with.
    """
    batch, scales = labels.shape[0], len(model.patch_nums)
    unconditional = torch.full_like(labels, model.num_classes)
    class_embedding = model.class_emb(torch.cat((labels, unconditional)))
    condition = model.block_condition(class_embedding)
    caches = [KVCache() for _ in model.blocks]
    x = model.start_tokens(class_embedding) + model.level_positions(0, model.first_length)
    side = model.patch_nums[-1]
    f_hat = torch.zeros(batch, tokenizer.embed_dim, side, side, device=labels.device)
    for scale, patch in enumerate(model.patch_nums):
        logits = model.logits(model.run_blocks(x, condition, None, caches), class_embedding)
        t = cfg * scale / (scales - 1) if scales > 1 else 0.0
        guided = (1 + t) * logits[:batch] - t * logits[batch:]
        indices = sample_tokens(guided, top_k, top_p, generator).view(batch, patch, patch)
        f_hat, next_input = tokenizer.next_autoregressive_input(scale, f_hat, tokenizer.embed(indices))
        if scale < scales - 1:
            start, end = model.token_ends[scale], model.token_ends[scale + 1]
            tokens = model.word_embed(next_input.flatten(2).transpose(1, 2)) + model.level_positions(start, end)
            x = tokens.repeat(2, 1, 1)
    return tokenizer.decode_latent(f_hat)
