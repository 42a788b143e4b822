"""LR rule, LR / weight-decay schedules and their application: values worked out by hand from the references.

VAR formulas: utils/lr_control.py. super-gradients formulas: callbacks.py:317-379, 489-513.
"""

import math

import pytest
import torch

from curricurun.lr import (
    LrSchedule,
    WeightDecaySchedule,
    apply_to_optimizer,
    parse_shape,
    resolve_lr_rule,
)

# ---------------------------------------------------------------- world-size rule


def test_linear_rule_doubles_the_lr_when_the_world_size_doubles_at_a_fixed_per_device_batch():
    # per-device 16, reference 8 × 16 = 128: 1 GPU → 5e-4 × 16/128; 2 GPUs → 5e-4 × 32/128.
    one = resolve_lr_rule(5e-4, "linear", 16, 16, reference_world_size=8)
    two = resolve_lr_rule(5e-4, "linear", 16 * 2, 16, reference_world_size=8)
    assert one.effective_lr == 5e-4 * 0.125
    assert two.effective_lr == 2 * one.effective_lr


def test_linear_rule_keeps_the_lr_when_the_global_batch_is_fixed_across_world_sizes():
    # global 256 = 256 per device × 1 = 128 × 2; reference 128 → ratio 2 either way → lr 2 × 5e-4.
    one = resolve_lr_rule(5e-4, "linear", 256, 256, reference_batch=128)
    two = resolve_lr_rule(5e-4, "linear", 128 * 2, 128, reference_batch=128)
    assert one.effective_lr == two.effective_lr == 1e-3


def test_sqrt_rule_scales_by_the_square_root_of_the_batch_ratio():
    # 512 / 128 = 4 → × sqrt(4) = 2; 256 / 128 = 2 → × 1.41421356.
    assert resolve_lr_rule(1e-3, "sqrt", 512, 64, reference_batch=128).effective_lr == pytest.approx(2e-3)
    assert resolve_lr_rule(1e-3, "sqrt", 256, 32, reference_batch=128).effective_lr == pytest.approx(1.41421356e-3)


def test_none_rule_keeps_the_base_lr():
    rule = resolve_lr_rule(2e-3, "none", 48, 48, reference_world_size=8)
    assert (rule.effective_lr, rule.ratio) == (2e-3, 48 / 384)
    assert rule.describe() == (
        "lr 0.002 = base 0.002, not rescaled (rule none; global batch 48)"
        " [reference_batch 384 = reference_world_size 8 × per-device 48]"
    )


def test_reference_world_size_convention_multiplies_by_the_per_device_batch():
    # super-gradients: recipes tuned on 8 GPUs; 8 × 16 = 128; this run: 16 × 16 = 256 → × 2.
    rule = resolve_lr_rule(5e-4, "linear", 256, 16, reference_world_size=8)
    assert (rule.reference_batch, rule.ratio, rule.effective_lr) == (128, 2.0, 1e-3)
    assert rule.describe() == (
        "lr 0.001 = base 0.0005 × linear(256 / 128) [reference_batch 128 = reference_world_size 8 × per-device 16]"
    )


def test_var_tblr_rule_gives_the_readme_tlr():
    # VAR: tlr = tblr × bs / 256 = 8e-5 × 768 / 256 = 2.4e-4 (VAR README.md:144-146, d36-s).
    rule = resolve_lr_rule(8e-5, "linear", 768, 96, reference_batch=256)
    assert rule.effective_lr == pytest.approx(2.4e-4)
    assert rule.describe() == "lr 0.00024 = base 8e-05 × linear(768 / 256) [reference_batch 256 given]"


def test_no_reference_means_the_global_batch_is_the_reference_and_describe_says_so():
    rule = resolve_lr_rule(5e-4, "linear", 256, 32)
    assert (rule.reference_batch, rule.ratio, rule.effective_lr) == (256, 1.0, 5e-4)
    assert "the reference is this run's global batch" in rule.describe()


def test_lr_rule_as_dict_is_json_ready_and_carries_the_description():
    rule = resolve_lr_rule(5e-4, "linear", 256, 16, reference_world_size=8)
    data = rule.as_dict()
    assert data["effective_lr"] == 1e-3 and data["reference_batch"] == 128
    assert data["description"] == rule.describe()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rule": "quadratic"}, "valid rules: linear, sqrt, none"),
        ({"reference_batch": 128, "reference_world_size": 8}, "not both"),
        ({"reference_batch": 0}, "reference_batch must be at least 1"),
    ],
)
def test_lr_rule_rejects_bad_input_with_a_message_naming_the_fix(kwargs, message):
    args = {"base_lr": 1e-3, "rule": "linear", "global_batch": 64, "per_device_batch": 8} | kwargs
    with pytest.raises(ValueError, match=message):
        resolve_lr_rule(**args)


# ---------------------------------------------------------------- shapes


def test_parse_shape_accepts_every_documented_shape():
    for shape in ["constant", "cosine", "linear", "step", "sg_cosine", "lin", "lin0", "lin00", "lin0.7", "cos", "exp"]:
        assert parse_shape(shape) == shape


@pytest.mark.parametrize("shape", ["lin1", "lin0.0", "lin1.5", "linx", "cosine2", "Cosine"])
def test_parse_shape_rejects_unknown_shapes_and_lists_the_valid_ones(shape):
    with pytest.raises(
        ValueError, match=r"constant, cosine, linear, step, sg_cosine, lin, lin0, lin00, lin<T> with 0<T<1"
    ):
        parse_shape(shape)


# VAR shapes: W = 100, max_it = 1101 → pasd = (it − 100) / (1101 − 1 − 100) = (it − 100) / 1000.
def _var(shape, **kw):
    return LrSchedule(shape, total_steps=1101, warmup_steps=100, warmup_start_ratio=0.005, final_ratio=0.01, **kw)


def test_var_warmup_rises_linearly_from_wp0_and_never_reaches_one_before_w():
    s = _var("lin0")
    assert s.ratio_at(0) == 0.005
    assert s.ratio_at(50) == pytest.approx(0.5025)  # 0.005 + 0.995 × 50/100
    assert s.ratio_at(99) == pytest.approx(0.99005)  # 0.005 + 0.995 × 0.99
    assert s.ratio_at(100) == 1.0  # pasd 0 < 0.05: plateau


def test_var_warmup_length_is_rounded_like_var_rounds_wp_it():
    # round(2.5) = 2 (Python rounds half to even, as VAR does): step 1 → 0.5, step 2 is past warm-up.
    s = LrSchedule("lin00", total_steps=12, warmup_steps=2.5, warmup_start_ratio=0.0, final_ratio=0.0)
    assert s.warmup_iters == 2
    assert s.ratio_at(1) == 0.5
    assert s.ratio_at(2) == 1.0  # pasd = 0 / 9


def test_var_cos_follows_half_cosine_to_wpe():
    s = _var("cos")
    assert s.ratio_at(350) == pytest.approx(0.855018, abs=1e-6)  # pasd 0.25: 0.01 + 0.99(0.5 + 0.5 cos(π/4))
    assert s.ratio_at(600) == pytest.approx(0.505)  # pasd 0.5: 0.01 + 0.99 × 0.5
    assert s.ratio_at(1100) == pytest.approx(0.01)  # pasd 1


def test_var_lin_holds_for_fifteen_percent_then_falls_linearly():
    s = _var("lin")
    assert s.ratio_at(249) == 1.0  # pasd 0.149 < 0.15
    assert s.ratio_at(250) == pytest.approx(1.0)  # pasd 0.15: 0.01 + 0.99 × 0.85 / 0.85
    assert s.ratio_at(600) == pytest.approx(0.592353, abs=1e-6)  # 0.01 + 0.99 × 0.5 / 0.85


def test_var_lin0_holds_for_five_percent_then_falls_linearly():
    s = _var("lin0")
    assert s.ratio_at(140) == 1.0  # pasd 0.04
    assert s.ratio_at(600) == pytest.approx(0.531053, abs=1e-6)  # 0.01 + 0.99 × 0.5 / 0.95
    assert s.ratio_at(1100) == pytest.approx(0.01)


def test_var_lin00_falls_linearly_from_the_end_of_warmup():
    s = _var("lin00")
    assert s.ratio_at(100) == 1.0
    assert s.ratio_at(600) == pytest.approx(0.505)  # 0.01 + 0.99 × 0.5


def test_var_lin_threshold_is_two_slopes_meeting_at_m():
    # lin0.7, wpe 0.01: m = (1 + 0.01 + 0.99 × 0.3) / 2 = 1.307 / 2 = 0.6535.
    s = _var("lin0.7")
    assert s.ratio_at(450) == pytest.approx(0.82675)  # pasd 0.35: 1 + (0.6535 − 1) × 0.35 / 0.7
    assert s.ratio_at(800) == pytest.approx(0.6535)  # pasd 0.7: rest 0.3 → 0.01 + 0.6435 × 0.3 / 0.3
    assert s.ratio_at(950) == pytest.approx(0.33175)  # pasd 0.85: 0.01 + 0.6435 × 0.15 / 0.3
    assert s.ratio_at(1100) == pytest.approx(0.01)


def test_var_exp_holds_then_decays_geometrically_to_wpe():
    s = _var("exp")
    assert s.ratio_at(249) == 1.0  # pasd 0.149
    assert s.ratio_at(675) == pytest.approx(0.1)  # pasd 0.575: exp((0.425 / 0.85) ln 0.01) = 0.01^0.5
    assert s.ratio_at(1100) == pytest.approx(0.01)


# Generic shapes: W = 100, total 1000 → p = (step − 100) / 900.
def test_generic_warmup_starts_at_the_start_ratio():
    s = LrSchedule("cosine", total_steps=1000, warmup_steps=100, final_ratio=0.1)
    assert (s.ratio_at(0), s.ratio_at(50), s.ratio_at(100)) == (0.0, 0.5, 1.0)


def test_generic_cosine_goes_to_the_final_ratio():
    s = LrSchedule("cosine", total_steps=1000, warmup_steps=100, final_ratio=0.1)
    assert s.ratio_at(550) == pytest.approx(0.55)  # p 0.5: 0.1 + 0.9 × 0.5
    assert s.ratio_at(325) == pytest.approx(0.1 + 0.9 * (0.5 + 0.5 * math.sqrt(0.5)))  # p 0.25
    assert s.ratio_at(1000) == pytest.approx(0.1)  # p 1


def test_generic_linear_goes_to_the_final_ratio():
    s = LrSchedule("linear", total_steps=1000, warmup_steps=100, final_ratio=0.1)
    assert s.ratio_at(325) == pytest.approx(0.775)  # 1 − 0.9 × 0.25
    assert s.ratio_at(550) == pytest.approx(0.55)
    assert s.ratio_at(1000) == pytest.approx(0.1)


def test_constant_stays_at_one_after_warmup():
    s = LrSchedule("constant", total_steps=1000, warmup_steps=10, warmup_start_ratio=0.1)
    assert s.ratio_at(5) == pytest.approx(0.55)  # 0.1 + 0.9 × 5/10
    assert s.ratio_at(10) == s.ratio_at(999) == 1.0


def test_step_shape_multiplies_by_gamma_at_each_milestone_of_the_post_warmup_steps():
    # milestones 0.5, 0.75 of 900 post-warm-up steps → steps 550 and 775.
    s = LrSchedule("step", total_steps=1000, warmup_steps=100, milestones=[0.5, 0.75], gamma=0.1)
    assert s.ratio_at(549) == 1.0
    assert s.ratio_at(550) == pytest.approx(0.1)
    assert s.ratio_at(774) == pytest.approx(0.1)
    assert s.ratio_at(775) == pytest.approx(0.01)


def test_hold_steps_keep_the_peak_before_the_decay_starts():
    # W 100 + hold 200 → decay from 300 over 700 steps; step 650 is p = 0.5.
    s = LrSchedule("cosine", total_steps=1000, warmup_steps=100, hold_steps=200, final_ratio=0.1)
    assert s.ratio_at(299) == 1.0
    assert s.ratio_at(650) == pytest.approx(0.55)


# super-gradients YOLO-NAS-Pose: 131 steps/epoch, max_epochs 13 → total 1703; warm-up 128 from
# 1e-6 / 2e-3 = 5e-4; flat until epoch 10 → hold 1310; T = 1703 − 128 − 1310 = 265.
def _sg():
    return LrSchedule(
        "sg_cosine",
        total_steps=13 * 131,
        warmup_steps=128,
        warmup_start_ratio=1e-6 / 2e-3,
        hold_steps=10 * 131,
        final_ratio=0.05,
    )


def test_sg_cosine_warmup_is_a_linspace_that_reaches_the_peak_at_its_last_step():
    s = _sg()
    assert s.ratio_at(0) == pytest.approx(5e-4)
    assert s.ratio_at(64) == pytest.approx(0.504185, abs=1e-6)  # 5e-4 + (1 − 5e-4) × 64/127
    assert s.ratio_at(127) == pytest.approx(1.0)


def test_sg_cosine_stays_flat_until_the_hold_ends_and_lags_one_step():
    # The callback sets the LR after a step, so step g uses t = max(0, g − 1 − 128 − 1310).
    s = _sg()
    assert s.ratio_at(128) == s.ratio_at(1438) == s.ratio_at(1439) == 1.0
    # t = 133 = (T + 1) / 2 → cos(π/2) = 0 → 0.05 + 0.95 × 0.5 = 0.525.
    assert s.ratio_at(1 + 128 + 1310 + 133) == pytest.approx(0.525)


def test_sg_cosine_never_quite_reaches_the_final_ratio():
    # Last step 1702: t = 263 → 0.05 + 0.95 × ½(1 + cos(π × 263/266)) ≈ 0.050298.
    assert _sg().ratio_at(1702) == pytest.approx(0.0502981, abs=1e-7)


def test_cosine_horizon_is_the_planned_length_not_when_training_stops():
    # YOLO-NAS-Pose plateaus around epoch 300 of 1000 (SG#1807): at epoch 300 the
    # LR is still far above the final ratio because the cosine spans max_epochs.
    s = LrSchedule(
        "sg_cosine",
        total_steps=1000 * 100,
        warmup_steps=100,
        warmup_start_ratio=5e-4,
        hold_steps=10 * 100,
        final_ratio=0.05,
    )
    # t = 30000 − 1 − 1100 = 28899, T + 1 = 98901 → cos(π × 0.2922) ≈ 0.6074 → 0.05 + 0.95 × 0.8037 ≈ 0.8135.
    assert s.ratio_at(300 * 100) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 28899 / 98901)))
    assert s.ratio_at(300 * 100) > 0.8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shape": "step"}, "increasing milestones"),
        ({"shape": "cosine", "milestones": [0.5]}, "only by shape 'step'"),
        ({"shape": "lin0", "hold_steps": 5}, "no hold_steps"),
        ({"shape": "exp", "final_ratio": 0.0}, "final_ratio must be positive"),
        ({"shape": "cosine", "warmup_steps": 60, "hold_steps": 40}, "fewer than total_steps"),
        ({"shape": "cos", "warmup_steps": 99}, "must end before the last step"),
    ],
)
def test_schedule_rejects_inconsistent_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LrSchedule(total_steps=100, **kwargs)


# ---------------------------------------------------------------- weight decay


def test_weight_decay_cosine_rises_from_wd_to_wd_end_over_the_whole_run():
    # VAR d36-s: 0.05 → 0.08, total 1101 steps: wd_end + (wd − wd_end)(½ + ½cos(π·it/1100)).
    s = WeightDecaySchedule(0.05, 0.08, total_steps=1101)
    assert s.value_at(0) == pytest.approx(0.05)
    assert s.value_at(550) == pytest.approx(0.065)  # cos(π/2) = 0: 0.08 − 0.03 × 0.5
    assert s.value_at(1100) == pytest.approx(0.08)


def test_weight_decay_without_an_end_value_is_constant():
    s = WeightDecaySchedule(0.05, None, total_steps=10)
    assert s.value_at(0) == s.value_at(9) == 0.05


# ---------------------------------------------------------------- optimizer


def _optimizer():
    decayed = torch.nn.Parameter(torch.zeros(2, 2))
    exempt = torch.nn.Parameter(torch.zeros(2))
    return torch.optim.AdamW(
        [
            {"params": [decayed], "weight_decay_applies": True, "lr_scale": 0.5},
            {"params": [exempt], "weight_decay_applies": False, "weight_decay": 0.0},
        ],
        lr=1.0,
    )


def test_apply_to_optimizer_scales_lr_per_group_and_decays_only_flagged_groups():
    opt = _optimizer()
    apply_to_optimizer(opt, lr=1e-3, weight_decay=0.07)
    decayed, exempt = opt.param_groups
    assert (decayed["lr"], decayed["weight_decay"]) == (5e-4, 0.07)
    assert (exempt["lr"], exempt["weight_decay"]) == (1e-3, 0.0)


def test_apply_to_optimizer_refuses_weight_decay_for_groups_without_the_flag():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2, 2))], lr=1.0)
    apply_to_optimizer(opt, lr=1e-3, weight_decay=None)
    assert opt.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="split_decay_groups"):
        apply_to_optimizer(opt, lr=1e-3, weight_decay=0.05)


@pytest.mark.parametrize("shape", ["lin0.7", "lin.5", "lin1", "lin1.5", "lin 0.5", "lin1e-1", "cosin", "auto", "exp"])
def test_the_recipe_and_the_schedule_accept_the_same_shapes(shape):
    """One parser: ``schedule.shape`` accepts exactly what LrSchedule accepts, plus ``auto``."""
    from pydantic import ValidationError

    from curricurun.recipe.schema import ScheduleConfig

    try:
        parse_shape(shape)
        schedule_accepts = True
    except ValueError:
        schedule_accepts = False
    try:
        ScheduleConfig(shape=shape)
        recipe_accepts = True
    except ValidationError:
        recipe_accepts = False
    assert recipe_accepts == (schedule_accepts or shape == "auto")


def test_warm_up_and_hold_are_resolved_from_epochs_fraction_or_steps_with_the_epoch_cap():
    from curricurun.lr import WarmupHold

    assert WarmupHold(epochs=2.5).warmup(steps_per_epoch=10, total=100) == 25
    assert WarmupHold(fraction=0.05).warmup(steps_per_epoch=10, total=90) == 4  # round(4.5), as VAR rounds wp_it
    assert WarmupHold(fraction=0.05).warmup(steps_per_epoch=10, total=90, rounded=False) == pytest.approx(4.5)
    assert WarmupHold(steps=40, max_epochs=1).warmup(steps_per_epoch=16, total=500) == 16
    assert WarmupHold(steps=40, max_epochs=1).warmup(steps_per_epoch=16, total=500, capped=False) == 40
    assert WarmupHold(hold_steps=7).hold(steps_per_epoch=16) == 7
    assert WarmupHold(hold_epochs=1.5).hold(steps_per_epoch=16) == 24


def test_cosine_weight_decay_of_a_one_step_run_is_its_start_value() -> None:
    """``training.steps: 1`` with a cosine weight decay: only step 0, at VAR's start value (no division by zero)."""
    s = WeightDecaySchedule(0.05, 0.08, total_steps=1)
    assert s.value_at(0) == 0.05
