"""VAR progressive training (VAR train.py:270-302, trainer.py): stage boundaries, the pgwp ramp, weights and cost."""

import pytest
from pydantic import ValidationError

from curricurun.curriculum.base import Progress
from curricurun.curriculum.progressive_scales import (
    ProgressiveScales,
    ProgressiveScalesParams,
    scale_token_weights,
    token_counts,
    var_stage,
)

# VAR d36-s at 512 px with --pg=0.7 --pg0=4 (VAR#29): ep = 350, wp = ep/50 = 7 epochs,
# pgwp = ep/300 epochs. ImageNet-1k has 1,281,167 training images; at bs 768, ac 1 that is
# I = ceil(1281167/768) = 1669 micro-iterations per epoch, so max_it = 350·1669 = 584150,
# wp_it = 7·1669 = 11683, pg·max_it = 0.7·584150 = 408905 and pgwp_it = 584150/300 = 1947.1667.
PN_512 = [1, 2, 3, 4, 6, 9, 13, 18, 24, 32]
ITERS = 1669
MAX_IT = 350 * ITERS


def var_progress(g: int, iters: int = ITERS, total: int = MAX_IT, warmup: int = 7 * ITERS, accumulation: int = 1):
    """Progress at micro-iteration g of a run with ``iters`` micro-iterations per epoch."""
    step = g // accumulation
    return Progress(
        step=step,
        micro_step=g,
        epoch=g / iters,
        samples_seen=g * 768,
        step_fraction=g / total,
        compute_fraction=g / total,
        total_steps=total // accumulation,
        steps_per_epoch=iters / accumulation,
        accumulation=accumulation,
        warmup_steps=warmup // accumulation,
    )


def d36() -> ProgressiveScales:
    return ProgressiveScales(ProgressiveScalesParams(patch_nums=PN_512, pg=0.7, pg0=4))


def test_token_counts_are_the_cumulative_squares_of_the_512_patch_numbers():
    # 1, 1+4, 5+9, 14+16, 30+36, 66+81, 147+169, 316+324, 640+576, 1216+1024 (arg_util.py:244-249)
    assert token_counts(PN_512) == (1, 5, 14, 30, 66, 147, 316, 640, 1216, 2240)


@pytest.mark.parametrize(
    ("g", "stage"),
    [
        (0, 4),
        (7 * ITERS, 4),  # end of warm-up: g ≤ wp_it keeps pg0
        # Stage j+4 begins where (g − 11683)/397222·5 reaches j − 0.5, i.e. at g = 11683 + (2j−1)·39722.2:
        (51405, 4),  # 30.8 epochs = 51405.2 micro-iterations
        (51406, 5),
        (130849, 5),  # 78.4 epochs = 130849.6
        (130850, 6),
        (210293, 6),  # 126.0 epochs = 210294 exactly (2.5 rounds to even: still 6 there)
        (210295, 7),
        (289738, 7),  # 173.6 epochs = 289738.4
        (289739, 8),
        (369182, 8),  # 221.2 epochs = 369182.8
        (369183, 9),  # round(4.5·…) past 4.5 → 5 steps → the full pyramid, ahead of pg·max_it
        (408905, 9),  # pg·max_it
        (MAX_IT - 1, 9),
    ],
)
def test_var_d36_stage_boundaries_fall_at_the_epochs_worked_out_from_the_formula(g, stage):
    assert d36().state_at(var_progress(g)).scale_index == stage


@pytest.mark.parametrize(
    ("g", "weight"),
    [
        # Stage 5 starts at g = 51406 (prog_it = 1 there); weight = clamp(prog_it/1947.1667, 0.01, 1)
        # and prog_it/1947.1667 = prog_it·300/584150.
        (51406, 0.01),  # 1·300/584150 = 0.00051 → floor 0.01
        (51406 + 18, 0.01),  # prog_it 19: 5700/584150 = 0.00976 → floor
        (51406 + 19, 6000 / 584150),  # prog_it 20: 0.01027, first value above the floor
        (51406 + 999, 300000 / 584150),  # prog_it 1000: 0.51357
        (51406 + 1946, 584100 / 584150),  # prog_it 1947: 0.99991
        (51406 + 1947, 1.0),  # prog_it 1948: 1.00043 → 1
        (289739 + 99, 30000 / 584150),  # stage 8 starts at 289739; prog_it 100: 0.05136
    ],
)
def test_a_new_scale_ramps_its_loss_weight_from_001_to_1_over_pgwp(g, weight):
    state = d36().state_at(var_progress(g))
    assert state.newest_scale_weight == pytest.approx(weight, rel=1e-12)
    assert state.scale_loss_weights == pytest.approx((1.0,) * state.scale_index + (weight,), rel=1e-12)


def test_the_first_stage_and_the_final_stage_have_no_ramp():
    curriculum = d36()
    first = curriculum.state_at(var_progress(5))  # stage 4, prog_it 6: would be 0.01 if ramped
    assert (first.scale_index, first.newest_scale_weight, first.scale_loss_weights) == (4, 1.0, (1.0,) * 5)
    final = curriculum.state_at(var_progress(369183))  # first micro-iteration of stage 9
    assert (final.scale_index, final.newest_scale_weight, final.scale_loss_weights) == (9, 1.0, (1.0,) * 10)


def test_stage_ties_round_half_to_even_and_counting_is_in_micro_iterations():
    # K = 3, pg0 = 0, pg = 0.5; 10 micro-iterations per epoch, 10 epochs, accumulation 2 → 50 optimizer steps.
    # wp_it = warmup_steps·accumulation = 5·2 = 10; pg·max_it = 50; window 40; 2 stages to advance.
    # Stage 1 from (g−10)/40·2 > 0.5 (g = 20 gives exactly 0.5 → round to 0); stage 2 at 1.5 → 2 (g = 40).
    curriculum = ProgressiveScales(ProgressiveScalesParams(patch_nums=[1, 2, 3], pg=0.5, pg0=0, pgwp=1.0))

    def at(g):
        return curriculum.state_at(var_progress(g, iters=10, total=100, warmup=10, accumulation=2))

    assert [at(g).scale_index for g in (10, 20, 22, 38, 40)] == [0, 0, 1, 1, 2]
    # Stage 1 begins at g = 21 (mid accumulation window); pgwp = 1 epoch = 10 micro-iterations.
    # g = 22: prog_it 2 → 0.2; g = 26: prog_it 6 → 0.6; g = 30: prog_it 10 → 1.0.
    assert [at(g).newest_scale_weight for g in (22, 26, 30)] == pytest.approx([0.2, 0.6, 1.0])
    assert var_stage(20, 3, 0.5, 0, 10.0, 100.0) == 0


def test_the_first_stage_is_frozen_through_the_runs_warm_up_unless_wp_is_given():
    # With wp = 0 the window is [0, 408905]: stage 5 from 0.1·408905 = 40890.5 → g = 40891.
    # With the default (the 7-epoch LR warm-up) stage 5 only starts at g = 51406.
    no_freeze = ProgressiveScales(ProgressiveScalesParams(patch_nums=PN_512, pg=0.7, pg0=4, wp=0.0))
    assert no_freeze.state_at(var_progress(40891)).scale_index == 5
    assert d36().state_at(var_progress(40891)).scale_index == 4


def test_not_progressive_trains_every_scale_at_full_weight_and_keeps_the_lr_shape():
    curriculum = ProgressiveScales(ProgressiveScalesParams(patch_nums=PN_512))
    state = curriculum.state_at(var_progress(0))
    assert (state.scale_index, state.newest_scale_weight, state.scale_loss_weights) == (9, 1.0, (1.0,) * 10)
    assert curriculum.preferred_lr_shape is None
    assert d36().preferred_lr_shape == "lin0.7"  # f"lin{pg:g}" (utils/arg_util.py L269-270)


def test_relative_cost_is_the_token_prefix_over_the_full_sequence():
    curriculum = d36()
    # stage 4 trains e_4 = 66 of 2240 tokens; stage 9 all of them
    assert curriculum.relative_cost(curriculum.state_at(var_progress(0))) == pytest.approx(66 / 2240)
    assert curriculum.relative_cost(curriculum.state_at(var_progress(MAX_IT - 1))) == 1.0


def test_token_weights_stay_one_over_the_full_length_with_the_newest_scale_ramped():
    state = d36().state_at(var_progress(51406 + 999))
    w = 300000 / 584150
    assert scale_token_weights(PN_512, state) == pytest.approx((1 / 2240,) * 5 + (w / 2240,))


@pytest.mark.parametrize(
    "params",
    [
        {"patch_nums": [1, 2, 3], "pg0": 3},  # pg0 is not a scale index
        {"patch_nums": [1, 3, 2]},  # not increasing
        {"pg": 1.5},
        {"pgwp": 0.0},
        {"pg0": 4, "unknown": 1},
    ],
)
def test_invalid_params_are_rejected(params):
    with pytest.raises(ValidationError):
        ProgressiveScalesParams(**params)
