"""Low-frequency cropping: the exact FFT crop and ET++'s Lanczos down-sampling (docs/references.md)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from curricurun.curriculum.low_frequency_crop import (
    LowFrequencyCropParams,
    fft_low_frequency_crop,
    resize_low_frequency,
    scaled_bandwidths,
    stage_index,
)

SIDE = 224
BORDER = 8  # output pixels trimmed before comparing: Lanczos clamps at the border, the FFT wraps around


def one_over_f_image(positions: torch.Tensor, max_frequency: int | None = None, seed: int = 0) -> torch.Tensor:
    """A 1/f-spectrum image (like natural images; random phases, values in [0.1, 0.9]) sampled at
    ``positions × positions`` in input-pixel coordinates: ``arange(224)`` gives the 224² image itself.

    The image is a trigonometric polynomial with the DFT frequencies of a 224² grid, so it can be evaluated
    exactly anywhere; ``max_frequency`` (cycles per image) band-limits it.
    """
    generator = torch.Generator().manual_seed(seed)
    k = torch.fft.fftfreq(SIDE, 1 / SIDE, dtype=torch.float64)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    radius = torch.sqrt(kx**2 + ky**2)
    amplitude = torch.where(radius > 0, 1 / radius.clamp(min=1), 0.0)
    if max_frequency is not None:
        amplitude = torch.where((kx.abs() <= max_frequency) & (ky.abs() <= max_frequency), amplitude, 0.0)
    spectrum = amplitude * torch.exp(2j * math.pi * torch.rand(SIDE, SIDE, generator=generator, dtype=torch.float64))
    # value at (y, x) = Re Σ_k spectrum[ky, kx]·exp(2πi(ky·y + kx·x)/224) / 224² (an inverse DFT off the grid)
    basis = torch.exp(2j * math.pi * torch.outer(positions.double(), k) / SIDE)
    values = (basis @ spectrum @ basis.T).real / SIDE**2
    return 0.5 + 0.4 * values / torch.fft.ifft2(spectrum).real.abs().max()


def pixels(count: int, step: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    return torch.arange(count, dtype=torch.float64) * step + offset


def interior(image: torch.Tensor) -> torch.Tensor:
    return image[..., BORDER:-BORDER, BORDER:-BORDER]


@pytest.mark.parametrize("bandwidth", [96, 160])
def test_fft_crop_of_a_band_limited_image_samples_it_exactly_on_the_coarse_grid(bandwidth):
    # Frequencies up to 20 cycles/image survive a crop to 96 (which keeps −48…47), so output pixel j must be
    # the continuous image at j·224/B input pixels (the DFT grid), evaluated here straight from its formula.
    image = one_over_f_image(pixels(SIDE), max_frequency=20)
    cropped = fft_low_frequency_crop(image[None, None], bandwidth)[0, 0]
    expected = one_over_f_image(pixels(bandwidth, step=SIDE / bandwidth), max_frequency=20)
    assert cropped.shape == (bandwidth, bandwidth)
    assert torch.allclose(cropped, expected, atol=1e-12, rtol=0)


def test_fft_crop_preserves_each_channels_mean_intensity_exactly():
    # The DC coefficient of the B×B crop is X[0,0]·B²/(H·W) and the mean of the inverse FFT is that over B²,
    # i.e. X[0,0]/(H·W): the input mean. This holds for any content, band-limited or not.
    batch = torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 5 - 2
    for bandwidth in (96, 97, 160, 224):
        cropped = fft_low_frequency_crop(batch, bandwidth)
        assert cropped.shape == (2, 3, bandwidth, bandwidth)
        assert torch.allclose(cropped.mean(dim=(-2, -1)), batch.mean(dim=(-2, -1)), atol=1e-12, rtol=0)


def test_fft_crop_keeps_half_precision_batches_in_their_dtype():
    batch = torch.rand(1, 3, 32, 32).half()
    assert fft_low_frequency_crop(batch, 16).dtype == torch.float16
    with pytest.raises(ValueError):
        fft_low_frequency_crop(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), 16)
    with pytest.raises(ValueError):
        fft_low_frequency_crop(batch, 33)


@pytest.mark.parametrize("bandwidth", [96, 128, 160, 192])
def test_lanczos_resize_matches_the_fft_crop_once_their_sampling_grids_are_aligned(bandwidth):
    # The FFT crop samples the input at j·S/B; a resize samples pixel centres, (j + 0.5)·S/B − 0.5.
    # Feeding the FFT crop the image sampled δ = (S/B − 1)/2 pixels further on puts both on the same grid.
    shift = (SIDE / bandwidth - 1) / 2
    fft = fft_low_frequency_crop(one_over_f_image(pixels(SIDE, offset=shift))[None, None], bandwidth)[0, 0]
    lanczos = resize_low_frequency(one_over_f_image(pixels(SIDE))[None].float(), bandwidth)[0].double()
    # Tolerance: Lanczos-3 is a windowed sinc whose response droops and leaks near B/2, where a 1/f image still
    # has energy, so the two differ by ~41 dB PSNR (measured 39.9-42.8 dB over seeds and B, float32 resize);
    # a one-off check found 38.6-38.9 dB for 1/f noise (docs/references.md). Bound: 38 dB.
    mse = torch.mean((interior(fft) - interior(lanczos)) ** 2).item()
    assert -10 * math.log10(mse) > 38.0


def test_lanczos_and_fft_crop_agree_to_a_thousandth_on_low_frequency_content_and_only_when_aligned():
    # Content below 12 cycles/image sits deep in Lanczos' pass band: the methods then differ only by the
    # resize's float32 arithmetic and passband ripple (measured ≤ 1e-3 of a 0.8 range). Without the half-pixel
    # alignment the same comparison is off by 4e-2: the grid shift, not the filter, dominates.
    bandwidth = 96
    shift = (SIDE / bandwidth - 1) / 2
    image = one_over_f_image(pixels(SIDE), max_frequency=12)
    lanczos = resize_low_frequency(image[None].float(), bandwidth)[0].double()
    shifted = one_over_f_image(pixels(SIDE, offset=shift), max_frequency=12)
    aligned = fft_low_frequency_crop(shifted[None, None], bandwidth)[0, 0]
    unaligned = fft_low_frequency_crop(image[None, None], bandwidth)[0, 0]
    assert (interior(aligned) - interior(lanczos)).abs().max() < 2e-3
    assert (interior(unaligned) - interior(lanczos)).abs().max() > 1e-2


def test_resize_accepts_pil_images_and_uint8_tensors_and_they_agree():
    array = (one_over_f_image(pixels(SIDE)).numpy() * 255).round().astype(np.uint8)
    rgb = np.stack([array, array[::-1], array.T], axis=-1)
    pil = resize_low_frequency(Image.fromarray(rgb), 160)
    tensor = resize_low_frequency(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), 160)
    assert isinstance(pil, Image.Image) and pil.size == (160, 160)
    assert tensor.dtype == torch.uint8 and tensor.shape == (3, 160, 160)
    difference = (torch.from_numpy(np.array(pil)).permute(2, 0, 1).int() - tensor.int()).abs()
    assert difference.max() <= 1  # torchvision's Lanczos kernel reproduces PIL's up to rounding


def test_stage_index_splits_progress_into_equal_stages_and_keeps_the_end_in_the_last():
    # stage k covers [k/10, (k+1)/10)
    assert [stage_index(f, 10) for f in (0.0, 0.099, 0.1, 0.55, 0.999, 1.0, 1.2, -0.1)] == [0, 0, 1, 5, 9, 9, 9, 0]


def test_tables_scale_to_other_base_sizes_and_round_to_the_increment():
    table = (96, 160, 224)
    # ×256/224: 109.7, 182.9, 256 → /16 = 6.86, 11.43, 16 → 7·16, 11·16, 16·16
    assert scaled_bandwidths(table, 256, 16) == (112, 176, 256)
    # ×32/224: 13.7, 22.9, 32 → /4 = 3.43, 5.71, 8 → 12, 24, 32 (CIFAR-size images)
    assert scaled_bandwidths(table, 32, 4) == (12, 24, 32)
    # never below one increment: 96·16/224 = 6.9 → 8 at increment 8
    assert scaled_bandwidths((96,), 16, 8) == (8,)


@pytest.mark.parametrize(
    "params",
    [
        {"bandwidths": []},
        {"bandwidths": [96, 300]},  # tables are written at base 224
        {"method": "lanczos"},
        {"base_resolution": 16, "size_increment": 32},
    ],
)
def test_invalid_params_are_rejected(params):
    with pytest.raises(ValidationError):
        LowFrequencyCropParams(**params)
