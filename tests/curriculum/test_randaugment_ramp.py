"""RandAugment magnitude ramp and the RandAugment transforms it asks for (ET++ launchers L44-63)."""

import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from curricurun.curriculum.base import Progress
from curricurun.curriculum.randaugment_ramp import RandAugmentRamp, RandAugmentRampParams, randaugment_transform


def at(compute_fraction: float) -> Progress:
    return Progress(
        step=0,
        micro_step=0,
        epoch=0.0,
        samples_seen=0,
        step_fraction=compute_fraction,
        compute_fraction=compute_fraction,
        total_steps=1000,
        steps_per_epoch=10,
    )


def test_linear_schedule_is_t_over_t_times_m0():
    # m = (t/T)·m0 with m0 = 9: 0, 2.25, 4.5, 9
    ramp = RandAugmentRamp(RandAugmentRampParams(schedule="linear"))
    assert [ramp.state_at(at(f)).aug_magnitude for f in (0.0, 0.25, 0.5, 1.0)] == pytest.approx([0, 2.25, 4.5, 9])


def test_a_custom_magnitude_table_splits_progress_into_equal_stages():
    ramp = RandAugmentRamp(RandAugmentRampParams(magnitudes=[2, 6]))
    assert [ramp.state_at(at(f)).aug_magnitude for f in (0.0, 0.49, 0.5, 1.0)] == [2, 2, 6, 6]


def test_timm_policy_builds_et_plus_plus_rand_m_mstd05_inc1():
    # ET++'s --aa rand-m{m}-mstd0.5-inc1 with timm's default 2 ops: magnitude 7 with noise std 0.5 per op,
    # and the "increasing" op set (e.g. PosterizeIncreasing) - the ops keep their timm names.
    transform = randaugment_transform(7)
    inner = transform.transform
    assert inner.num_layers == 2
    assert {op.magnitude for op in inner.ops} == {7}
    assert {op.magnitude_std for op in inner.ops} == {0.5}
    assert "PosterizeIncreasing" in {op.name for op in inner.ops}


def test_timm_policy_accepts_pil_images_and_uint8_tensors():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 64, 48), dtype=torch.uint8)
    transform = randaugment_transform(9, num_ops=3)
    out = transform(image)
    assert out.dtype == torch.uint8 and out.shape == (3, 64, 48)
    pil = transform(Image.new("RGB", (48, 64), (10, 200, 30)))
    assert isinstance(pil, Image.Image) and pil.size == (48, 64)


def test_torchvision_policy_expresses_timms_magnitude_scale_in_101_bins():
    # timm's m means m/10 of an op's range; torchvision's magnitude index i means i/(bins−1).
    # m = 4.5 → index round(10·4.5) = 45 of 101 bins → 45/100 = 4.5/10.
    transform = randaugment_transform(4.5, policy="torchvision")
    assert (transform.magnitude, transform.num_magnitude_bins, transform.num_ops) == (45, 101, 2)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert transform(image).shape == (3, 32, 32)


def test_magnitudes_outside_timms_scale_are_refused():
    with pytest.raises(ValueError):
        randaugment_transform(11)
    with pytest.raises(ValidationError):
        RandAugmentRampParams(magnitudes=[1, 12])
    with pytest.raises(ValidationError):
        RandAugmentRampParams(schedule="linear", magnitudes=[1, 2])
