"""Pyramidal flow-matching math against values worked out by hand from Pyramid-Flow's scheduler and pipeline.

Code convention: stage 0 is the lowest resolution, σ = 1 is noise. K = 3, γ = 1/3 unless stated.
"""

from __future__ import annotations

import math

import pytest
import torch

from curricurun.setups.pyramid_flow.pyramid import (
    block_noise,
    clean_pyramid,
    interpolate,
    noise_pyramid,
    renoise_coefficients,
    stage_endpoints,
    stage_times,
    stage_windows,
    upsample_nearest,
)
from curricurun.setups.pyramid_flow.sampling import inference_schedule

WINDOWS = stage_windows(3)


def test_stage_windows_start_and_end_where_the_reference_scheduler_puts_them():
    # σ_i = (1000 − i)/1000. E_0 = σ[int(1/3·1000)] = σ[333] = 0.667, E_1 = σ[666] = 0.334, E_2 = 0.
    # S_1: d = 1 − 0.667 = 0.333, S = 1 − 0.333/(2·0.667 + 0.333) = 1 − 0.333/1.667 = 0.80024.
    # S_2: d = 1 − 0.334 = 0.666, S = 1 − 0.666/(2·0.334 + 0.666) = 1 − 0.666/1.334 = 0.50075.
    starts = [w.start for w in WINDOWS]
    ends = [w.end for w in WINDOWS]
    assert starts == pytest.approx([1.0, 0.80024, 0.50075], abs=5e-6)
    assert ends == pytest.approx([0.667, 0.334, 0.0], abs=1e-12)
    assert [w.original_start for w in WINDOWS] == pytest.approx([1.0, 0.667, 0.334], abs=1e-12)


def test_timestep_bands_split_1000_to_1_in_proportion_to_each_stages_flow_distance():
    # distances 1 − 0.667 = 0.333, 0.80024 − 0.334 = 0.46624, 0.50075 − 0 = 0.50075; total 1.29999.
    # cumulative 0.333/1.29999 = 0.25616 → index 256 → t = 1000 − 256 = 744;
    # (0.333 + 0.46624)/1.29999 = 0.61481 → index 614 → t = 386; the last band ends at t[999] = 1.
    bands = [(w.timestep_max, w.timestep_min) for w in WINDOWS]
    assert bands == [(1000.0, 744.0), (744.0, 386.0), (386.0, 1.0)]


def test_renoising_coefficients_match_the_reference_values():
    # k = 1: d = 0.333, α = 1/(2·0.667 + 0.333) = 1/1.667 = 0.59988, β = α·0.667·√3 = 0.69302.
    # k = 2: d = 0.666, α = 1/(2·0.334 + 0.666) = 1/1.334 = 0.74963, β = α·0.334·√3 = 0.43366.
    assert renoise_coefficients(WINDOWS[1]) == pytest.approx((0.5999, 0.6930), abs=1e-4)
    assert renoise_coefficients(WINDOWS[2]) == pytest.approx((0.7496, 0.4337), abs=1e-4)


@pytest.mark.parametrize("k", [1, 2])
def test_renoising_lands_on_the_corrected_start_signal_and_noise_levels(k):
    # α·U(E n' + d x) + β n_blk: the signal weight α·d must be 1 − S_k, and the per-element noise variance
    # α²(1 − d)²·(1 + 1/γ) (the 𝟙𝟙ᵀ parts cancel, since β²γ = α²(1 − d)²) must be S_k².
    alpha, beta = renoise_coefficients(WINDOWS[k])
    d = 1 - WINDOWS[k].original_start
    assert alpha * d == pytest.approx(1 - WINDOWS[k].start, abs=1e-12)
    assert beta**2 * (1 / 3) == pytest.approx(alpha**2 * (1 - d) ** 2, abs=1e-12)
    assert alpha**2 * (1 - d) ** 2 * 4 == pytest.approx(WINDOWS[k].start ** 2, abs=1e-12)


def test_a_single_stage_is_plain_flow_matching_over_the_whole_timeline():
    (window,) = stage_windows(1)
    assert (window.start, window.end, window.timestep_max, window.timestep_min) == (1.0, 0.0, 1000.0, 1.0)


def test_within_stage_times_follow_the_reference_discrete_grid():
    # i = ⌊1000u⌋: u = 0 → i 0 → r 1, τ = 744; u = 0.5 → i 500 → r 0.5, τ = 744 + 0.5·(386 − 744) = 565;
    # u = 0.9999 → i 999 → r 0.001, τ = 744 − 0.999·358 = 386.358; u = 1 is clamped to i = 999.
    ratio, timestep = stage_times(WINDOWS[1], torch.tensor([0.0, 0.5, 0.9999, 1.0], dtype=torch.float64))
    assert ratio.tolist() == pytest.approx([1.0, 0.5, 0.001, 0.001])
    assert timestep.tolist() == pytest.approx([744.0, 565.0, 386.358, 386.358])


def test_clean_pyramid_is_repeated_2x2_means_lowest_first():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    low, mid, high = clean_pyramid(x, 3)
    # 2×2 means of [[0,1,4,5], [2,3,6,7], [8,9,12,13], [10,11,14,15]] = 2.5, 4.5, 10.5, 12.5; then their mean 7.5.
    assert mid.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    assert low.flatten().tolist() == [7.5]
    assert torch.equal(high, x)


def test_noise_pyramid_doubles_per_halving_and_keeps_unit_variance():
    noise = torch.ones(1, 1, 4, 4)
    low, mid, _ = noise_pyramid(noise, 3)
    assert mid.flatten().tolist() == [2.0] * 4 and low.flatten().tolist() == [4.0]
    levels = noise_pyramid(torch.randn(64, 4, 32, 32, generator=torch.Generator().manual_seed(0)), 3)
    assert [float(level.std()) for level in levels] == pytest.approx([1.0, 1.0, 1.0], abs=0.02)


def test_stage_endpoints_mix_noise_with_the_upsampled_previous_stage_and_end_clean():
    clean = [torch.tensor([[[[1.0]]]]), torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])]
    clean.append(upsample_nearest(clean[1]) + 10)
    noise = [torch.full_like(c, 0.5) for c in clean]
    start0, end0 = stage_endpoints(0, WINDOWS, clean, noise)
    assert start0.item() == 0.5  # pure noise n⁽⁰⁾
    assert end0.item() == pytest.approx(0.667 * 0.5 + 0.333 * 1.0)
    start1, end1 = stage_endpoints(1, WINDOWS, clean, noise)
    # S_1 n + (1 − S_1) U(x⁽⁰⁾) = 0.80024·0.5 + 0.19976·1 everywhere (x⁽⁰⁾ = 1 up-sampled)
    assert start1.flatten().tolist() == pytest.approx([0.80024 * 0.5 + 0.19976] * 4, abs=1e-5)
    assert end1.flatten().tolist() == pytest.approx([0.334 * 0.5 + 0.666 * v for v in (1, 2, 3, 4)])
    start2, end2 = stage_endpoints(2, WINDOWS, clean, noise)
    s = 0.50075
    assert start2[0, 0, :2, :2].flatten().tolist() == pytest.approx([s * 0.5 + (1 - s) * 1.0] * 4, abs=1e-5)
    assert start2[0, 0, 2:, 2:].flatten().tolist() == pytest.approx([s * 0.5 + (1 - s) * 4.0] * 4, abs=1e-5)
    assert torch.equal(end2, clean[2])  # the last stage ends on the clean latent


def test_interpolant_and_velocity_target():
    start, end = torch.full((2, 1, 1, 1), 4.0), torch.full((2, 1, 1, 1), 2.0)
    noisy, target = interpolate(start, end, torch.tensor([0.25, 1.0]))
    assert noisy.flatten().tolist() == [0.25 * 4 + 0.75 * 2, 4.0]
    assert target.flatten().tolist() == [2.0, 2.0]


def test_block_noise_has_the_reference_block_covariance():
    # (1 + γ)I − γ𝟙𝟙ᵀ at γ = 1/3: variance 4/3 − 1/3 = 1, covariance −1/3 inside a 2×2 block, and (eigenvalue
    # 1 − 3γ = 0 along 𝟙) every block sums to zero.
    noise = block_noise((50_000, 1, 2, 2), generator=torch.Generator().manual_seed(0)).reshape(-1, 4)
    covariance = noise.T @ noise / noise.shape[0]
    expected = torch.eye(4) * (4 / 3) - torch.ones(4, 4) / 3
    assert torch.allclose(covariance, expected, atol=0.03)
    assert noise.sum(dim=1).abs().max() < 1e-5
    smaller = block_noise((50_000, 1, 2, 2), gamma=0.1, generator=torch.Generator().manual_seed(1)).reshape(-1, 4)
    covariance = smaller.T @ smaller / smaller.shape[0]
    assert torch.allclose(covariance, torch.eye(4) * 1.1 - torch.ones(4, 4) * 0.1, atol=0.03)


def test_block_noise_rejects_a_gamma_with_no_valid_covariance():
    with pytest.raises(ValueError, match="gamma"):
        block_noise((1, 1, 2, 2), gamma=0.5)


@pytest.mark.parametrize("k", [1, 2])
def test_a_renoised_jump_matches_the_training_start_distribution(k):
    # Monte Carlo over 40k draws: end of stage k−1 is E n' + (1 − E)·x with n' ~ N(0, 1) at the coarse side;
    # after x ← α U(·) + β n_blk the mean must be (1 − S_k)·U(x), the variance S_k² and the 2×2 block uncorrelated.
    generator = torch.Generator().manual_seed(k)
    coarse = torch.tensor([[[[0.3, -0.7]]]])
    previous_end = WINDOWS[k - 1].end
    draws = previous_end * torch.randn(40_000, 1, 1, 2, generator=generator) + (1 - previous_end) * coarse
    alpha, beta = renoise_coefficients(WINDOWS[k])
    up = upsample_nearest(draws)
    jumped = alpha * up + beta * block_noise(tuple(up.shape), generator=generator)
    start = WINDOWS[k].start
    assert torch.allclose(jumped.mean(0), (1 - start) * upsample_nearest(coarse)[0], atol=0.02)
    assert torch.allclose(jumped.var(0), torch.full((1, 2, 4), start**2), rtol=0.05)
    block = jumped[:, 0, :, :2].reshape(-1, 4)
    centred = block - block.mean(0)
    correlation = (centred.T @ centred / block.shape[0]) / start**2
    assert torch.allclose(correlation, torch.eye(4), atol=0.05)


def test_inference_schedule_spans_each_band_and_ends_at_ratio_zero():
    # stage 1, 3 steps: τ from 744 to 744 + 0.999·(386 − 744) = 386.358; r = linspace(1, 0.001, 3) then 0.
    timesteps, ratios = inference_schedule(WINDOWS[1], 3)
    assert timesteps.tolist() == pytest.approx([744.0, (744.0 + 386.358) / 2, 386.358], abs=1e-3)
    assert ratios.tolist() == pytest.approx([1.0, 0.5005, 0.001, 0.0], abs=1e-6)
    assert math.isclose(float(inference_schedule(WINDOWS[0], 1)[0][0]), 1000.0)
