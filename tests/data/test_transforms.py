"""Stage transforms: sizes, normalisation, ET++ order, per-sample seeding, and the cost of low resolutions."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from curricurun.data.transforms import (
    EvalTransform,
    StageTransform,
    _shift_with_zeros,
    resampling_matrix,
)

# A 28x28 grey image with no symmetry: a ramp plus a bright block in the top-left corner.
_ramp = (np.arange(28)[None, :] * 7 + np.arange(28)[:, None] * 2) % 256
_ramp[2:6, 3:9] = 255
IMAGE = torch.from_numpy(_ramp.astype(np.uint8))[None]
RGB = torch.from_numpy(np.stack([_ramp, 255 - _ramp, _ramp // 2]).astype(np.uint8))


def _pil_resize(image: torch.Tensor, side: int, resample: Image.Resampling) -> np.ndarray:
    return np.array(Image.fromarray(image[0].numpy()).resize((side, side), resample)).astype(np.float32)


# Resampling -------------------------------------------------------------------------------------------


def test_bilinear_resampling_matrix_for_halving_four_pixels_matches_hand_values():
    # 4 → 2: scale = stretch = 2, output centres at 1.0 and 3.0 (input coordinates).
    # Row 0: k((j + .5 − 1)/2) for j = 0..3 = k(−.25), k(.25), k(.75), k(1.25) = .75, .75, .25, 0 → / 1.75.
    expected = np.array([[3, 3, 1, 0], [0, 1, 3, 3]]) / 7
    np.testing.assert_allclose(resampling_matrix(4, 2, "bilinear"), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "kernel, resample", [("bilinear", Image.Resampling.BILINEAR), ("lanczos", Image.Resampling.LANCZOS)]
)
@pytest.mark.parametrize("size_in, size_out", [(28, 14), (28, 20), (30, 7), (28, 56)])
def test_resampling_matrix_equals_pil_resize_on_float_images(kernel, resample, size_in, size_out):
    values = np.random.default_rng(0).uniform(0, 255, (size_in, size_in)).astype(np.float32)
    expected = np.array(Image.fromarray(values, mode="F").resize((size_out, size_out), resample))
    matrix = resampling_matrix(size_in, size_out, kernel)
    np.testing.assert_allclose(matrix @ values @ matrix.T, expected, atol=1e-3)


# RandAugment: timm's own -----------------------------------------------------------------------------


def test_randaugment_is_timms_transform_seeded_from_the_sample():
    """The op choice (numpy), skips and magnitude noise (python random) are timm's, drawn from the seeded RNGs."""
    import random

    from timm.data.auto_augment import rand_augment_transform

    transform = StageTransform(op_probability=1.0)
    for seed in range(6):
        ours = transform(IMAGE, 28, 9.0, None, seed)
        generator = torch.Generator().manual_seed(seed)
        torch.rand(3, generator=generator)  # the crop / flip draws come first
        library_seed = int(torch.randint(0, 2**62, (), generator=generator))
        random.seed(library_seed)
        np.random.seed([library_seed & 0xFFFFFFFF, library_seed >> 32])
        timm_ra = rand_augment_transform("rand-m9-n2-mstd0.5-inc1-p1", {"img_mean": (128,)})
        from timm.data import auto_augment

        from curricurun.data.pipelines.randaugment import posterize_keeping_zero_bits

        for op in timm_ra.ops:
            if op.aug_fn is auto_augment.posterize:
                op.aug_fn = posterize_keeping_zero_bits
            op.kwargs["resample"] = Image.Resampling.BICUBIC
        expected = np.asarray(timm_ra(Image.fromarray(IMAGE[0].numpy())), dtype=np.float32)
        torch.testing.assert_close(ours[0], torch.from_numpy((expected / 255 - 0.5) / 0.5), atol=1e-6, rtol=0)


# Sizes and normalisation ------------------------------------------------------------------------------


def test_output_side_is_the_bandwidth_when_set_else_the_resolution():
    transform = StageTransform(hflip=True, random_crop_padding=2)
    assert transform(IMAGE, 28, None, None, 0).shape == (1, 28, 28)
    assert transform(IMAGE, 20, None, None, 0).shape == (1, 20, 20)
    assert transform(IMAGE, 28, 9.0, 14, 0).shape == (1, 14, 14)
    out = StageTransform(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(RGB, 16, 5.0, None, 0)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32


def test_normalisation_is_x_over_255_minus_mean_over_std_per_channel():
    # Defaults 0.5/0.5: 0 → −1, 255 → 1, 51 → (0.2 − 0.5)/0.5 = −0.6.
    pixels = torch.tensor([[[0, 255, 51]]], dtype=torch.uint8)
    torch.testing.assert_close(EvalTransform()(pixels[:, :, :1].expand(1, 1, 1), 1), torch.tensor([[[-1.0]]]))
    out = StageTransform()(pixels.expand(1, 3, 3).contiguous(), 3, None, None, 0)
    torch.testing.assert_close(out[0, 0], torch.tensor([-1.0, 1.0, -0.6]))
    # Per channel, pixel 255: (1 − 0.2)/0.5 = 1.6, (1 − 0.4)/0.25 = 2.4, (1 − 0.6)/0.2 = 2.0.
    white = torch.full((3, 2, 2), 255, dtype=torch.uint8)
    out = EvalTransform(mean=(0.2, 0.4, 0.6), std=(0.5, 0.25, 0.2))(white, 2)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([1.6, 2.4, 2.0]))


def test_eval_transform_keeps_a_constant_image_constant_at_any_size():
    grey = torch.full((1, 28, 28), 51, dtype=torch.uint8)  # resampling rows sum to 1
    torch.testing.assert_close(EvalTransform()(grey, 14), torch.full((1, 14, 14), -0.6))


def test_bandwidth_resize_is_lanczos_like_pil_within_one_grey_level():
    out = StageTransform()(IMAGE, 28, None, 14, 0)
    expected = (_pil_resize(IMAGE, 14, Image.Resampling.LANCZOS) / 255 - 0.5) / 0.5
    # PIL rounds each pass to uint8; ours keeps floats (clipped per pass like PIL's): under one grey level,
    # and one grey level is 2/255 after (x/255 − 0.5)/0.5.
    assert np.abs(out[0].numpy() - expected).max() < 2 / 255


# Crop, flip, order ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dy", range(-2, 3))
@pytest.mark.parametrize("dx", range(-2, 3))
def test_shift_with_zeros_equals_padding_then_cropping(dy, dx):
    padded = np.pad(IMAGE.numpy(), ((0, 0), (2, 2), (2, 2)))
    expected = padded[:, 2 + dy : 30 + dy, 2 + dx : 30 + dx]
    np.testing.assert_array_equal(_shift_with_zeros(IMAGE.numpy(), dy, dx), expected)


def test_random_crop_draws_every_offset_within_the_padding():
    transform, plain = StageTransform(random_crop_padding=1), EvalTransform()
    candidates = {
        (dy, dx): plain(torch.from_numpy(_shift_with_zeros(IMAGE.numpy(), dy, dx)), 28)
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    }
    seen = set()
    for seed in range(100):
        out = transform(IMAGE, 28, None, None, seed)
        matches = [offset for offset, image in candidates.items() if torch.equal(out, image)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(candidates)  # all 9 offsets of a padding of 1


def test_flip_without_randaugment_at_low_resolution_equals_flipping_first():
    """The cheap path resizes before flipping; the result must be the ET++ order's (flip, then resize)."""
    transform = StageTransform(hflip=True)
    unflipped = EvalTransform()(IMAGE, 14)
    flipped_first = EvalTransform()(IMAGE.flip(-1), 14)
    outcomes = set()
    for seed in range(20):
        out = transform(IMAGE, 14, None, None, seed)
        if torch.allclose(out, unflipped, atol=1e-5):
            outcomes.add("kept")
        else:
            torch.testing.assert_close(out, flipped_first, atol=1e-5, rtol=0)
            outcomes.add("flipped")
    assert outcomes == {"kept", "flipped"}


def test_randaugment_runs_each_op_with_its_probability():
    plain = StageTransform()(IMAGE, 28, None, None, 7)
    never = StageTransform(op_probability=0.0)(IMAGE, 28, 9.0, None, 7)
    torch.testing.assert_close(never, plain)  # p = 0: every op skipped
    always = StageTransform(op_probability=1.0)
    changed = sum(not torch.equal(always(IMAGE, 28, 9.0, None, seed), plain) for seed in range(10))
    assert changed >= 8  # few timm ops leave this ramp unchanged (Equalize/AutoContrast on a full-range image)


def test_fixed_magnitude_applies_when_the_stage_sets_none():
    fixed = StageTransform(fixed_magnitude=9.0, op_probability=1.0)(IMAGE, 28, None, None, 3)
    staged = StageTransform(op_probability=1.0)(IMAGE, 28, 9.0, None, 3)
    torch.testing.assert_close(fixed, staged)


def test_magnitude_outside_timm_scale_is_rejected():
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        StageTransform()(IMAGE, 28, 11.0, None, 0)


# Seeding ----------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_tensor_whatever_the_global_rng_and_leaves_it_untouched():
    transform = StageTransform(hflip=True, random_crop_padding=2)
    torch.manual_seed(1)
    first = transform(IMAGE, 28, 9.0, 14, seed=42)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    second = transform(IMAGE, 28, 9.0, 14, seed=42)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, second)
    assert not torch.equal(first, transform(IMAGE, 28, 9.0, 14, seed=43))


class _Seeded(Dataset):
    def __init__(self, transform: StageTransform):
        self.transform = transform

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(IMAGE, 28, 9.0, 14, 1000 + index)


def test_results_do_not_depend_on_the_number_of_dataloader_workers():
    dataset = _Seeded(StageTransform(hflip=True, random_crop_padding=2))
    inline = torch.cat(list(DataLoader(dataset, batch_size=2)))
    workers = torch.cat(list(DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="fork")))
    assert torch.equal(inline, workers)


def test_transform_pickles_with_its_behaviour():
    transform = StageTransform(hflip=True, random_crop_padding=2)
    transform(IMAGE, 28, 9.0, None, 0)  # builds a cached RandAugment op
    copy = pickle.loads(pickle.dumps(transform))
    assert torch.equal(copy(IMAGE, 28, 9.0, 14, 5), transform(IMAGE, 28, 9.0, 14, 5))


# Cost -------------------------------------------------------------------------------------------------


def test_low_resolution_stage_without_randaugment_stays_cheap():
    """Measured 12-32 µs per 28 px image on 2 cores (module docstring); a float-at-full-size path was ~100."""
    transform = StageTransform(hflip=True, random_crop_padding=2)
    transform(IMAGE, 14, None, None, 0)
    started = time.perf_counter()
    for seed in range(2000):
        transform(IMAGE, 14, None, None, seed)
    assert (time.perf_counter() - started) / 2000 < 200e-6
