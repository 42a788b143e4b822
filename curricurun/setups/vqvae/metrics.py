"""Reconstruction and codebook metrics, from sums that add across batches and ranks.

- ``mse``: mean squared error per pixel and channel on the [0, 1] scale (images are [-1, 1] in the model, so the
  error is divided by 2 before squaring), reconstructions clamped to [-1, 1] as a viewer would see them.
- ``psnr``: the mean over images of 10·log10(1 / MSE_image) dB, peak 1 (the usual per-image average).
- ``usage_s{k}``: the share (%) of the V codes chosen at least once at scale k over the whole evaluation split;
  ``usage`` counts a code used at any scale.
- ``perplexity_s{k}``: exp(entropy) of the code frequencies at scale k: V when all codes are equally frequent,
  1 when one code takes everything; ``perplexity`` is over all scales' choices together.
"""

from __future__ import annotations

import math

import torch

PSNR_FLOOR_MSE = 1e-10  # a perfect image would have infinite PSNR; cap it at 100 dB


def reconstruction_sums(
    images: torch.Tensor, reconstruction: torch.Tensor, code_hits: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-batch sums; ``code_hits`` is the [K, V] histogram of this batch's codes."""
    error = ((reconstruction.float().clamp(-1.0, 1.0) - images.float()) / 2).square()
    per_image = error.flatten(1).mean(1)
    return {
        "squared_error": error.sum(),
        "values": torch.tensor(float(error.numel()), device=error.device),
        "psnr_sum": (-10 * torch.log10(per_image.clamp(min=PSNR_FLOOR_MSE))).sum(),
        "images": torch.tensor(float(images.shape[0]), device=error.device),
        "code_hits": code_hits.float(),
    }


def perplexity(counts: torch.Tensor) -> float:
    """exp(H) of the distribution proportional to ``counts`` (0 when nothing was counted)."""
    total = float(counts.sum())
    if total <= 0:
        return 0.0
    probabilities = counts.double()[counts > 0] / total
    return math.exp(float(-(probabilities * probabilities.log()).sum()))


def usage_percent(counts: torch.Tensor) -> float:
    return 100.0 * float((counts > 0).double().mean())


def metrics_from_sums(sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """MSE, PSNR, and usage/perplexity overall and per scale, from summed :func:`reconstruction_sums`."""
    hits = torch.as_tensor(sums["code_hits"], dtype=torch.float64)  # [K, V]
    metrics = {
        "mse": float(sums["squared_error"]) / max(float(sums["values"]), 1.0),
        "psnr": float(sums["psnr_sum"]) / max(float(sums["images"]), 1.0),
        "usage": usage_percent(hits.sum(0)),
        "perplexity": perplexity(hits.sum(0)),
    }
    for scale, counts in enumerate(hits):
        metrics[f"usage_s{scale}"] = usage_percent(counts)
        metrics[f"perplexity_s{scale}"] = perplexity(counts)
    return metrics
