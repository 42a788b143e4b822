"""Codebook options that VAR's recipe does not use: EMA updates, k-means initialisation, dead-code restart.

VAR and vaex learn the codebook by gradient from a uniform ±1/V start and use neither EMA updates nor a data
initialisation (VAR ``models/quant.py:39-46``: an ``nn.Embedding`` learned by gradient, no EMA, no data init).
They are the classic remedies for unused codes, offered here as recipe flags so that the two can be compared:

- **EMA updates** (van den Oord et al. 2017, appendix A.1; VQ-VAE-2): each code moves to the running mean of the
  vectors assigned to it, N_i ← γN_i + (1 − γ)n_i, M_i ← γM_i + (1 − γ)Σ_{z→i} z, e_i = M_i / Ñ_i with Laplace
  smoothing Ñ_i = (N_i + ε) / (ΣN + Vε) · ΣN. The codebook then takes no gradient (its loss term still trains φ).
- **k-means initialisation**: Lloyd's k-means on the vectors of the first training batch, before it is quantised.
  For the multi-scale quantiser the vectors are every scale's residual under an exact quantisation
  (``exact_residual_targets``), so one codebook covers the coarse means and the fine residuals alike.
- **Dead-code restart**: a code whose running hit count (decay 0.99, as VAR's usage monitor ``quant.py:88-93``)
  falls below ``dead_code_threshold`` per batch is moved onto a random vector of the current batch.

With several processes every statistic is summed and every batch of vectors gathered across ranks before use,
and the random choices come from a generator seeded by the update count: all ranks keep the same codebook, and a
resumed run (the buffers are checkpointed) continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import distributed as dist
from torch import nn

from curricurun.setups.vqvae.quantizer import MultiScaleResidualQuantizer, QuantizerOutput

USAGE_DECAY = 0.99  # VAR's code-usage monitor after its first 100 records (models/quant.py:88-93)


@dataclass(frozen=True)
class CodebookOptions:
    """The codebook's training options; the defaults are VAR's (gradient updates, uniform init, no restart)."""

    update: str = "gradient"  # "gradient" | "ema"
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5
    init: str = "uniform"  # "uniform" | "kmeans"
    kmeans_iterations: int = 10
    dead_code_restart: bool = False
    dead_code_threshold: float = 1.0

    @property
    def active(self) -> bool:
        return self.update == "ema" or self.init == "kmeans" or self.dead_code_restart


def kmeans(vectors: torch.Tensor, clusters: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means: ``clusters`` centroids [clusters, C] of ``vectors`` [N, C].

    Starts from distinct random vectors (with repetition only when N < clusters); an empty cluster keeps its
    centroid, so it can still be taken by a later restart.
    """
    count = vectors.shape[0]
    if count >= clusters:
        start = torch.randperm(count, generator=generator)[:clusters]
    else:
        start = torch.randint(count, (clusters,), generator=generator)
    centroids = vectors[start.to(vectors.device)].clone()
    for _ in range(iterations):
        assignment = nearest_rows(vectors, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, vectors)
        sizes = torch.bincount(assignment, minlength=clusters).to(vectors.dtype)[:, None]
        centroids = torch.where(sizes > 0, sums / sizes.clamp(min=1), centroids)
    return centroids


def nearest_rows(vectors: torch.Tensor, centroids: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Index of the nearest centroid (L2) of each vector, in chunks so N × V distances never sit in memory."""
    squared = centroids.square().sum(1)
    parts = [torch.addmm(squared, part, centroids.T, beta=1, alpha=-2).argmin(dim=1) for part in vectors.split(chunk)]
    return torch.cat(parts)


class CodebookUpkeep(nn.Module):
    """Applies the active :class:`CodebookOptions` around each training forward of the quantiser."""

    def __init__(self, options: CodebookOptions, quantizer: MultiScaleResidualQuantizer):
        super().__init__()
        self.options = options
        vocab, dim = quantizer.vocab_size, quantizer.embed_dim
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.register_buffer("ema_count", torch.ones(vocab))
        self.register_buffer("ema_sum", torch.zeros(vocab, dim))
        self.register_buffer("usage", torch.zeros(vocab))
        if options.update == "ema":
            quantizer.embedding.weight.requires_grad_(False)

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.updates))

    @torch.no_grad()
    def before_quantising(self, quantizer: MultiScaleResidualQuantizer, f: torch.Tensor) -> None:
        """k-means initialisation on the first training batch (all ranks' vectors)."""
        if self.options.init != "kmeans" or bool(self.initialised):
            return
        vectors = _gather_rows(self._maybe_normalised(quantizer, quantizer.exact_residual_targets(f)))
        centroids = kmeans(vectors, quantizer.vocab_size, self.options.kmeans_iterations, self._generator())
        quantizer.embedding.weight.copy_(centroids)
        self.initialised.fill_(True)

    @torch.no_grad()
    def after_quantising(self, quantizer: MultiScaleResidualQuantizer, output: QuantizerOutput) -> None:
        """EMA update of the codes from this batch's assignments, then restart of the dead codes."""
        weight = quantizer.embedding.weight
        vectors = self._maybe_normalised(quantizer, torch.cat(output.targets))
        assignment = torch.cat([index.flatten() for index in output.indices])
        hits = _sum_across_ranks(output.code_hits.sum(0))
        if self.options.update == "ema":
            if int(self.updates) == 0:  # one virtual hit at the starting code: unused codes stay put at first
                self.ema_sum.copy_(weight)
            sums = _sum_across_ranks(torch.zeros_like(weight).index_add_(0, assignment, vectors))
            decay = self.options.ema_decay
            self.ema_count.mul_(decay).add_(hits, alpha=1 - decay)
            self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
            total, epsilon = self.ema_count.sum(), self.options.ema_epsilon
            smoothed = (self.ema_count + epsilon) / (total + quantizer.vocab_size * epsilon) * total
            weight.copy_(self.ema_sum / smoothed[:, None])
        if self.options.dead_code_restart:
            self._restart_dead_codes(weight, vectors, hits)
        self.updates.add_(1)

    def _restart_dead_codes(self, weight: torch.Tensor, vectors: torch.Tensor, hits: torch.Tensor) -> None:
        if int(self.updates) == 0:
            self.usage.copy_(hits)
        else:
            self.usage.mul_(USAGE_DECAY).add_(hits, alpha=1 - USAGE_DECAY)
        dead = (self.usage < self.options.dead_code_threshold).nonzero().flatten()
        if dead.numel() == 0:
            return
        pool = _gather_rows(vectors)
        picks = torch.randint(pool.shape[0], (dead.numel(),), generator=self._generator()).to(pool.device)
        weight[dead] = pool[picks].to(weight.dtype)
        self.ema_sum[dead] = pool[picks]
        self.ema_count[dead] = 1.0
        # A restarted code counts as just alive: it is restarted again while it gathers fewer hits than that.
        self.usage[dead] = self.options.dead_code_threshold

    @staticmethod
    def _maybe_normalised(quantizer: MultiScaleResidualQuantizer, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(vectors, dim=1) if quantizer.z_normalise else vectors


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _sum_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    if _distributed():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def _gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """All ranks' rows concatenated in rank order (ranks may hold different numbers of rows)."""
    if not _distributed():
        return rows
    world = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.long, device=rows.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([rows.shape[0]], device=rows.device))
    longest = int(max(size.item() for size in sizes))
    padded = torch.zeros(longest, rows.shape[1], dtype=rows.dtype, device=rows.device)
    padded[: rows.shape[0]] = rows
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([part[: int(size.item())] for part, size in zip(gathered, sizes, strict=True)])
