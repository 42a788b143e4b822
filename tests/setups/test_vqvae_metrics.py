"""Evaluation sums add across batches/ranks; MSE, PSNR, usage and perplexity follow from them by hand."""

from __future__ import annotations

import math

import pytest
import torch

from curricurun.setups.vqvae.metrics import metrics_from_sums, perplexity, reconstruction_sums


def _summed(*parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
    """What the engine hands over: per-key sums, scalars as floats and histograms as tensors."""
    total = {key: sum(part[key] for part in parts) for key in parts[0]}
    return {key: float(value) if value.dim() == 0 else value for key, value in total.items()}


def test_mse_and_psnr_of_two_images_on_two_ranks_by_hand():
    images = torch.zeros(1, 1, 2, 2)
    # rank 0: reconstruction 0.5 everywhere -> error (0.5 / 2)² = 0.0625 on the [0, 1] scale, PSNR 12.0412 dB.
    rank0 = reconstruction_sums(images, torch.full_like(images, 0.5), torch.tensor([[2.0, 2.0, 0.0, 0.0]]))
    # rank 1: a perfect reconstruction -> error 0, PSNR capped at 100 dB (MSE floor 1e-10).
    rank1 = reconstruction_sums(images, images.clone(), torch.tensor([[4.0, 0.0, 0.0, 0.0]]))
    metrics = metrics_from_sums(_summed(rank0, rank1))
    assert metrics["mse"] == pytest.approx(0.0625 * 4 / 8)
    assert metrics["psnr"] == pytest.approx((-10 * math.log10(0.0625) + 100.0) / 2)


def test_reconstructions_are_clamped_before_the_error_is_measured():
    images = torch.ones(1, 1, 1, 1)
    sums = reconstruction_sums(images, torch.full_like(images, 3.0), torch.ones(1, 1))
    assert float(sums["squared_error"]) == 0.0


def test_usage_and_perplexity_per_scale_and_overall_by_hand():
    hits = torch.tensor([[2.0, 2.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    sums = reconstruction_sums(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), hits)
    metrics = metrics_from_sums(_summed(sums))
    # scale 0: 2 of 4 codes, equally often -> 50 %, perplexity e^{ln 2} = 2; scale 1: one code -> 25 %, 1.
    assert (metrics["usage_s0"], metrics["perplexity_s0"]) == (50.0, pytest.approx(2.0))
    assert (metrics["usage_s1"], metrics["perplexity_s1"]) == (25.0, pytest.approx(1.0))
    # overall counts (6, 2, 0, 0): 50 %, exp(-(0.75 ln 0.75 + 0.25 ln 0.25)) = 1.7548
    assert metrics["usage"] == 50.0
    assert metrics["perplexity"] == pytest.approx(1.75476, abs=1e-5)


def test_perplexity_of_nothing_is_zero_and_of_a_uniform_histogram_is_its_size():
    assert perplexity(torch.zeros(5)) == 0.0
    assert perplexity(torch.ones(256)) == pytest.approx(256.0)
