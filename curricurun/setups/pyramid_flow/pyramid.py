"""The pyramidal flow-matching math: stage windows, timestep bands, the training pair and the stage-jump renoising.

Code convention throughout (Pyramid-Flow's code; its paper and issue #208 index the other way): stage 0 is the LOWEST
resolution, σ = 1 is pure noise and σ = 0 is data. Every formula cites the reference line (jy0205/Pyramid-Flow at
3040d71; ``scheduler`` = ``diffusion_schedulers/scheduling_flow_matching.py``, ``pipeline`` =
``pyramid_dit/pyramid_dit_for_video_gen_pipeline.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

TRAIN_TIMESTEPS = 1000
"""Discrete training timesteps per stage (the scheduler's ``num_train_timesteps``, ``scheduler`` L70-88)."""


@dataclass(frozen=True)
class StageWindow:
    """One stage's slice of the noise-to-data path.

    Attributes:
        start: S_k, the noise level the stage starts from (corrected for k > 0, ``scheduler`` L96-121).
        end: E_k, the noise level it ends at (0 for the last stage).
        original_start: S_k before the correction (σ at the stage boundary); the renoising uses it (L729-743).
        timestep_max: the DiT timestep at the stage's start (its band's top, ``scheduler`` L123-135).
        timestep_min: the DiT timestep at the stage's end.
    """

    start: float
    end: float
    original_start: float
    timestep_max: float
    timestep_min: float


def stage_windows(stages: int, gamma: float = 1 / 3, train_timesteps: int = TRAIN_TIMESTEPS) -> tuple[StageWindow, ...]:
    """The K windows [S_k, E_k] and their non-overlapping timestep bands (``scheduler`` L96-149).

    The global grid is σ_i = (T − i)/T, i = 0..T−1 (``linspace(1, T, T)[::-1] / T``, schedule shift 1 as both
    launch scripts use). Boundaries are at k/K: S_k^ori = σ[int(k/K·T)] and E_k = σ[int((k+1)/K·T)], with E_{K−1} = 0.
    For k > 0 the start is corrected so that the renoised jump has unit noise variance:
    d = 1 − S_k^ori, S_k = 1 − d/(√(1 + 1/γ)·(1 − d) + d). Each stage then gets a share of the timeline [T → 1]
    proportional to its flow distance S_k − E_k: with cumulative fractions f_k, T_k^max = t[int(f_k·T)] and
    T_k^min = t[min(int(f_{k+1}·T), T − 1)] on the grid t_i = T − i. K = 3, γ = 1/3 gives S = 1, 0.80024, 0.50075,
    E = 0.667, 0.334, 0 and bands 1000 → 744 → 386 → 1.
    """
    if stages < 1:
        raise ValueError(f"stages must be at least 1, got {stages}")
    sigma = [(train_timesteps - i) / train_timesteps for i in range(train_timesteps)]
    starts, ends, originals = [], [], []
    for k in range(stages):
        start_index = int(k / stages * train_timesteps)
        end_index = int((k + 1) / stages * train_timesteps)
        original = sigma[start_index]
        end = sigma[end_index] if end_index < train_timesteps else 0.0
        start = original
        if k > 0:
            data_weight = 1 - original
            start = 1 - data_weight / (math.sqrt(1 + 1 / gamma) * (1 - data_weight) + data_weight)
        starts.append(start)
        ends.append(end)
        originals.append(original)
    distances = [s - e for s, e in zip(starts, ends, strict=True)]
    total = sum(distances)
    windows = []
    for k in range(stages):
        first = 0.0 if k == 0 else sum(distances[:k]) / total
        last = 1.0 if k == stages - 1 else sum(distances[: k + 1]) / total
        timestep_max = train_timesteps - int(first * train_timesteps)
        timestep_min = train_timesteps - min(int(last * train_timesteps), train_timesteps - 1)
        windows.append(StageWindow(starts[k], ends[k], originals[k], float(timestep_max), float(timestep_min)))
    return tuple(windows)


def renoise_coefficients(window: StageWindow, gamma: float = 1 / 3) -> tuple[float, float]:
    """α and β of the jump into ``window``'s stage: x ← α·U(x) + β·n_blk (``pipeline`` L729-743, inference only).

    d = 1 − S_k^ori, α = 1/(√(1 + 1/γ)·(1 − d) + d), β = α·(1 − d)/√γ. Then the upsampled previous end point
    S_k^ori·U(n') + d·U(x) becomes (1 − S_k)·U(x) plus noise of variance S_k² per element and no correlation inside
    a 2×2 block: the training start point's marginal. k = 1: 0.5999 / 0.6930; k = 2: 0.7496 / 0.4337.
    """
    data_weight = 1 - window.original_start
    alpha = 1 / (math.sqrt(1 + 1 / gamma) * (1 - data_weight) + data_weight)
    beta = alpha * (1 - data_weight) / math.sqrt(gamma)
    return alpha, beta


def downsample(x: torch.Tensor) -> torch.Tensor:
    """2× bilinear down-sampling (``get_pyramid_latent``, ``pipeline`` L554-570): the mean of each 2×2 block."""
    return F.interpolate(x, size=(x.shape[-2] // 2, x.shape[-1] // 2), mode="bilinear")


def upsample_nearest(x: torch.Tensor) -> torch.Tensor:
    """2× nearest up-sampling U, used for the previous stage's latent in training and at each jump (L307, L729)."""
    return F.interpolate(x, size=(x.shape[-2] * 2, x.shape[-1] * 2), mode="nearest")


def clean_pyramid(x: torch.Tensor, stages: int) -> list[torch.Tensor]:
    """x⁽ᵏ⁾ = D^{K−1−k}(x), lowest resolution first, no rescaling (``pipeline`` L554-570)."""
    levels = [x]
    for _ in range(stages - 1):
        levels.append(downsample(levels[-1]))
    return levels[::-1]


def noise_pyramid(noise: torch.Tensor, stages: int) -> list[torch.Tensor]:
    """n⁽ᵏ⁾ = 2^{K−1−k}·D^{K−1−k}(n): ×2 per halving restores unit variance (a 2×2 mean has variance 1/4, L260-280)."""
    levels = [noise]
    for _ in range(stages - 1):
        levels.append(downsample(levels[-1]) * 2)
    return levels[::-1]


def stage_endpoints(
    k: int,
    windows: tuple[StageWindow, ...],
    clean: list[torch.Tensor],
    noise: list[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, end) of stage k for the samples whose pyramids are ``clean`` and ``noise`` (``pipeline`` L307-319).

    start = n⁽⁰⁾ for k = 0, else S_k·n⁽ᵏ⁾ + (1 − S_k)·U(x⁽ᵏ⁻¹⁾) (the clean previous stage, the same noise draw);
    end = E_k·n⁽ᵏ⁾ + (1 − E_k)·x⁽ᵏ⁾, or the clean x⁽ᴷ⁻¹⁾ at the last stage.
    """
    window = windows[k]
    if k == 0:
        start = noise[0]
    else:
        start = window.start * noise[k] + (1 - window.start) * upsample_nearest(clean[k - 1])
    if k == len(windows) - 1:
        end = clean[k]
    else:
        end = window.end * noise[k] + (1 - window.end) * clean[k]
    return start, end


def stage_times(
    window: StageWindow, uniform: torch.Tensor, train_timesteps: int = TRAIN_TIMESTEPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Within-stage ratio r and DiT timestep τ from u ~ U(0, 1), per sample (``pipeline`` L321-333).

    i = clamp(⌊T·u⌋, 0, T − 1), r = 1 − i/T (``sigmas_per_stage``) and τ = linspace(T_max, T_min, T + 1)[i]
    (``timesteps_per_stage``), so τ = T_max + (i/T)·(T_min − T_max): the timestep alone tells the stage.
    """
    index = (uniform * train_timesteps).floor().clamp(0, train_timesteps - 1)
    ratio = 1 - index / train_timesteps
    return ratio, timestep_at(window, ratio)


def timestep_at(window: StageWindow, ratio: torch.Tensor) -> torch.Tensor:
    """The DiT timestep of within-stage ratio r: τ = T_max + (1 − r)·(T_min − T_max), linear in the band (L137-149)."""
    return window.timestep_max + (1 - ratio) * (window.timestep_min - window.timestep_max)


def interpolate(start: torch.Tensor, end: torch.Tensor, ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The noisy input x_r = r·start + (1 − r)·end and the velocity target start − end (``pipeline`` L339, L347)."""
    r = ratio.reshape(-1, *([1] * (start.dim() - 1))).to(start.dtype)
    return r * start + (1 - r) * end, start - end


def block_noise(shape: tuple[int, ...], gamma: float = 1 / 3, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise drawn per 2×2 block from N(0, (1 + γ)I − γ𝟙𝟙ᵀ) (``sample_block_noise``, ``pipeline`` L697-703).

    The covariance has eigenvalue 1 + γ orthogonal to 𝟙 and 1 − 3γ along 𝟙, so its square root is
    √(1 + γ)·(I − P) + √(1 − 3γ)·P with P = 𝟙𝟙ᵀ/4: with z i.i.d. per block, n = √(1 + γ)·(z − z̄) + √(1 − 3γ)·z̄.
    (At γ = 1/3 the matrix is singular, which a Cholesky factor would trip over.) Drawn on the CPU from
    ``generator``, so a seed gives the same picture on every device.
    """
    if not 0 < gamma <= 1 / 3:
        raise ValueError(f"gamma must be in (0, 1/3] for a valid block covariance, got {gamma}")
    *lead, height, width = shape
    z = torch.randn(*lead, height // 2, 2, width // 2, 2, generator=generator)
    mean = z.mean(dim=(-3, -1), keepdim=True)
    n = math.sqrt(1 + gamma) * (z - mean) + math.sqrt(max(1 - 3 * gamma, 0.0)) * mean
    return n.reshape(*lead, height, width)
