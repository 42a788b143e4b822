"""Pyramid-Flow's per-batch stage mixture (train_pyramid_flow.py L222, pipeline L283-302, issue #119)."""

import pytest
from pydantic import ValidationError

from curricurun.curriculum.base import Progress
from curricurun.curriculum.stage_mixture import StageMixture, StageMixtureParams, stage_columns, token_balanced_ratios
from curricurun.errors import UserError

START = Progress(
    step=0,
    micro_step=0,
    epoch=0.0,
    samples_seen=0,
    step_fraction=0.0,
    compute_fraction=0.0,
    total_steps=10,
    steps_per_epoch=5,
)


def test_released_ratios_assign_columns_0_1_1_2_by_position():
    # sample i → column i % 4 → stage {0: 0, 1: 1, 2: 1, 3: 2} (pipeline L283-302)
    assert stage_columns([1, 2, 1], 8) == [0, 1, 1, 2, 0, 1, 1, 2]
    assert stage_columns([1, 2, 1], 4) == [0, 1, 1, 2]


def test_original_uniform_ratios_cycle_through_the_stages():
    assert stage_columns([1, 1, 1], 6) == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("batch_size", [6, 2, 0])
def test_a_batch_that_is_not_a_multiple_of_the_ratio_sum_is_a_user_error(batch_size):
    with pytest.raises(UserError, match=f"batch size {batch_size} is not a multiple of .* = 4"):
        stage_columns([1, 2, 1], batch_size)
    with pytest.raises(UserError):
        StageMixture(StageMixtureParams()).check_batch_size(batch_size)


def test_the_state_carries_the_ratios_for_every_step():
    assert StageMixture(StageMixtureParams()).state_at(START).stage_ratios == (1, 2, 1)
    assert StageMixture(StageMixtureParams(ratios=[1, 1, 1])).state_at(START).stage_ratios == (1, 1, 1)


def test_our_token_balanced_extension_weights_stages_by_tokens_not_samples():
    # stages at side 1/4, 1/2, 1 hold 1/16, 1/4, 1 of the tokens: counts ×16, ×4, ×1 → [16, 8, 1],
    # so the token shares are 16/16 : 8/4 : 1 = 1 : 2 : 1.
    assert token_balanced_ratios([1, 2, 1], [0.25, 0.5, 1.0]) == (16, 8, 1)
    mixture = StageMixture(StageMixtureParams(extension_token_balanced=True))
    assert mixture.state_at(START).stage_ratios == (16, 8, 1)
    with pytest.raises(UserError):
        mixture.check_batch_size(8)  # groups of 25
    mixture.check_batch_size(50)


def test_the_extension_is_labelled_as_ours_in_its_parameter_description():
    description = StageMixtureParams.model_fields["extension_token_balanced"].description
    assert "OUR EXTENSION" in description and "not in Pyramid-Flow" in description


@pytest.mark.parametrize(
    "params",
    [
        {"ratios": []},
        {"ratios": [1, 0, 1]},
        {"extension_token_balanced": True, "stage_scales": [0.5, 1.0]},
        {"extension_token_balanced": True, "stage_scales": [0.0, 0.5, 1.0]},
    ],
)
def test_invalid_params_are_rejected(params):
    with pytest.raises(ValidationError):
        StageMixtureParams(**params)


def test_the_stage_mix_costs_the_mean_token_fraction_of_its_columns():
    released = StageMixture(StageMixtureParams(ratios=[1, 2, 1]))
    # (1·(1/4)² + 2·(1/2)² + 1·1²) / 4 = (0.0625 + 0.5 + 1) / 4
    assert released.relative_cost(released.state_at(None)) == pytest.approx(0.390625)
    original = StageMixture(StageMixtureParams(ratios=[1, 1, 1]))
    # (0.0625 + 0.25 + 1) / 3
    assert original.relative_cost(original.state_at(None)) == pytest.approx(0.4375)
    balanced = StageMixture(StageMixtureParams(ratios=[1, 2, 1], extension_token_balanced=True))
    # ratios become [16, 8, 1]: (16·0.0625 + 8·0.25 + 1) / 25 = 4 / 25
    assert balanced.relative_cost(balanced.state_at(None)) == pytest.approx(0.16)
