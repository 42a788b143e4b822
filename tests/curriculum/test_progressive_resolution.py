"""Progressive resizing in its three forms (Composer, ffcv-imagenet)."""

import pytest
from pydantic import ValidationError

from curricurun.curriculum.base import Progress
from curricurun.curriculum.progressive_resolution import (
    ProgressiveResolution,
    ProgressiveResolutionParams,
    composer_size,
    ffcv_resolution,
)

STEPS_PER_EPOCH = 100


def at(epoch: float, total_epochs: int) -> Progress:
    """Progress after ``epoch`` epochs of a run of ``total_epochs`` epochs at 100 steps per epoch."""
    step = round(epoch * STEPS_PER_EPOCH)
    total = total_epochs * STEPS_PER_EPOCH
    return Progress(
        step=step,
        micro_step=step,
        epoch=epoch,
        samples_seen=step * 256,
        step_fraction=step / total,
        compute_fraction=step / total,
        total_steps=total,
        steps_per_epoch=STEPS_PER_EPOCH,
    )


def build(**params) -> ProgressiveResolution:
    return ProgressiveResolution(ProgressiveResolutionParams(**params))


@pytest.mark.parametrize(
    ("fraction", "size"),
    [
        # Composer defaults: initial 0.5, delay 0.5, finetune 0.2, increment 4, full 224; ramp over [0.5, 0.8].
        (0.0, 112),  # 224·0.5 = 112
        (0.5, 112),  # ramp starts: elapsed 0
        (0.6, 148),  # elapsed 0.1/0.3 = 1/3 → scale 2/3 → 149.33/4 = 37.33 → 37·4
        (0.65, 168),  # elapsed 0.5 → scale 0.75 → 168
        (0.8, 224),  # end of ramp
        (0.95, 224),  # fine-tune at full size
    ],
)
def test_composer_scale_follows_delay_ramp_and_finetune(fraction, size):
    curriculum = build(mode="composer", full_resolution=224)
    assert curriculum.state_at(at(fraction * 90, 90)).resolution == size


def test_composer_spicy_recipe_and_rounding_to_the_size_increment():
    # "spicy": initial 0.6, delay 0.2, finetune 0.2 → at f = 0.5, elapsed 0.3/0.6 = 0.5, scale 0.8,
    # 224·0.8 = 179.2 → 179.2/4 = 44.8 → 45·4 = 180.
    assert composer_size(0.5, 224, 0.6, 0.2, 0.2, 4) == 180
    # delay + finetune = 1 leaves no ramp: full size from the delay on (Composer itself divides by zero).
    assert composer_size(0.7, 224, 0.5, 0.7, 0.3, 4) == 224


def test_composer_counts_completed_epochs_when_the_duration_is_in_epochs():
    # 10 epochs, ramp over [0.5, 0.8]. At epoch 6.9 only 6 epochs are complete: f = 0.6 → 148 (as above);
    # counted in steps it is f = 0.69 → elapsed 0.19/0.3 = 0.633 → scale 0.8167 → 182.93/4 = 45.73 → 46·4 = 184.
    by_epochs = build(mode="composer", full_resolution=224, duration_unit="epochs")
    by_steps = build(mode="composer", full_resolution=224)
    assert by_epochs.state_at(at(6.9, 10)).resolution == 148
    assert by_steps.state_at(at(6.9, 10)).resolution == 184


@pytest.mark.parametrize(
    ("epoch", "size"),
    [
        # rn50_88_epochs.yaml: min 160, max 192, ramp epochs 65 → 76 (ffcv-imagenet)
        (0, 160),
        (65, 160),  # epoch ≤ start_ramp
        (70, 160),  # 160 + 32·5/11 = 174.55 → 174.55/32 = 5.45 → 5·32
        (70.9, 160),  # the size is set once per epoch: still epoch 70
        (71, 192),  # 160 + 32·6/11 = 177.45 → 5.55 → 6·32
        (76, 192),
        (87, 192),
    ],
)
def test_ffcv_resolution_ramps_in_epochs_and_rounds_to_32(epoch, size):
    curriculum = build(mode="ffcv", full_resolution=192, min_res=160, start_ramp=65, end_ramp=76)
    assert curriculum.state_at(at(epoch, 88)).resolution == size


def test_ffcv_rounding_sends_halves_to_the_even_multiple():
    # rn50_16_epochs.yaml, ramp 11 → 13: epoch 12 gives 176 = 5.5·32 → 6·32 = 192.
    assert ffcv_resolution(12, 160, 192, 11, 13, 32) == 192
    # 128 → 160 over epochs 0 → 2: epoch 1 gives 144 = 4.5·32 → 4·32 = 128.
    assert ffcv_resolution(1, 128, 160, 0, 2, 32) == 128


def test_explicit_steps_hold_each_size_until_its_bound_then_train_at_full_size():
    by_fraction = build(mode="steps", full_resolution=224, steps=[(0.25, 128), (0.5, 160)])
    assert [by_fraction.state_at(at(f * 40, 40)).resolution for f in (0.1, 0.25, 0.49, 0.5, 1.0)] == [
        128,
        160,
        160,
        224,
        224,
    ]
    by_epochs = build(mode="steps", full_resolution=224, steps=[(3, 96)], until_unit="epochs")
    assert [by_epochs.state_at(at(e, 40)).resolution for e in (2.99, 3.0)] == [96, 224]
    assert by_epochs.indexed_by == "epochs"


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "composer", "full_resolution": 224, "delay_fraction": 0.9, "finetune_fraction": 0.2},
        {"mode": "composer", "full_resolution": 224, "start_ramp": 3},  # an ffcv field
        {"mode": "ffcv", "full_resolution": 192, "min_res": 160},  # no ramp epochs
        {"mode": "ffcv", "full_resolution": 192, "start_ramp": 10, "end_ramp": 5},
        {"mode": "steps", "full_resolution": 224, "steps": [(0.5, 128), (0.25, 160)]},
        {"mode": "steps", "full_resolution": 224},
        {"mode": "steps", "full_resolution": 224, "steps": [(0.5, 128)], "size_increment": 8},
    ],
)
def test_params_that_do_not_fit_the_mode_are_rejected(params):
    with pytest.raises(ValidationError):
        ProgressiveResolutionParams(**params)
