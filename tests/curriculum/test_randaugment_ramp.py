"""RandAugment magnitude ramp and the RandAugment transforms it asks for (ET++ launchers L44-63)."""

import pytest
from PIL import Image
from pydantic import ValidationError

from curricurun.curriculum.base import Progress
from curricurun.curriculum.randaugment_ramp import RandAugmentRamp, RandAugmentRampParams
from curricurun.data.pipelines.randaugment import timm_rand_augment


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
    inner = timm_rand_augment(7)
    assert inner.num_layers == 2
    assert {op.magnitude for op in inner.ops} == {7}
    assert {op.magnitude_std for op in inner.ops} == {0.5}
    assert "PosterizeIncreasing" in {op.name for op in inner.ops}


def test_a_fractional_magnitude_of_the_linear_ramp_is_set_on_every_op():
    inner = timm_rand_augment(4.5, num_ops=3)
    assert inner.num_layers == 3 and {op.magnitude for op in inner.ops} == {4.5}
    assert isinstance(inner(Image.new("RGB", (48, 64), (10, 200, 30))), Image.Image)


def test_magnitudes_outside_timms_scale_are_refused():
    with pytest.raises(ValueError):
        timm_rand_augment(11)
    with pytest.raises(ValidationError):
        RandAugmentRampParams(magnitudes=[1, 12])
    with pytest.raises(ValidationError):
        RandAugmentRampParams(schedule="linear", magnitudes=[1, 2])
