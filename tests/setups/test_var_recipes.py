"""The shipped VAR recipes: they validate offline, their transformers have VAR's sizes, their LR follows VAR's rule."""

from __future__ import annotations

import json

import pytest

from curricurun.cli import RECIPES_DIR, run
from curricurun.commands.inspect_model import summarize_model
from curricurun.commands.inspect_schedule.schedule import build_schedule
from curricurun.recipe import load_recipe

VAR_RECIPES = ["var_d16", "var_d20", "var_d24", "var_d30", "var_d36", "var_tiny"]


def test_every_var_recipe_validates_offline_without_its_tokenizer(capsys):
    paths = [str(RECIPES_DIR / f"{name}.yaml") for name in VAR_RECIPES]
    assert run(["validate", *paths]) == 0
    assert capsys.readouterr().out.count(": ok") == len(paths)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # VAR's README table (README.md:89-96) with exact counts from models/basic_var.py. Per block (per-block
        # adaLN) 18C² + 14C + H: qkv 3C², q/v biases 2C, proj C² + C, MLP 8C² + 5C, adaLN 6C² + 6C, scale_mul H.
        # d16 (C 1024, 680 tokens): 16·18,888,720 + word_embed 33C + class_emb 1001C + pos_start C + pos 680C
        # + lvl 10C + head adaLN 2C² + 2C + head 4096C + 4096 = 302,219,520 + 8,064,000 = 310,283,520.
        ("var_d16", 310_283_520),
        ("var_d20", 600_917_136),
        ("var_d24", 1_033_399_360),
        ("var_d30", 2_010_020_356),
        # d36 with shared adaLN at 512 (C 2304, 2240 tokens): blocks 12C² + 14C + H each (ada_gss 6C instead of the
        # 6C² + 6C projection) plus one shared 6C² + 6C projection.
        ("var_d36", 2_353_893_904),
    ],
)
def test_the_transformer_has_vars_parameter_count(name, expected):
    summary = summarize_model(load_recipe(RECIPES_DIR / f"{name}.yaml"))
    assert summary["parameters"] == expected  # exact (the issue allows 0.1%)
    assert summary["trainable_parameters"] == expected
    assert "tokenizer" not in summary["modules"]


def test_inspect_model_prints_the_count_without_a_tokenizer_or_data(capsys):
    assert run(["inspect-model", str(RECIPES_DIR / "var_d16.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] == 310_283_520


def _schedule(name: str, steps_per_epoch: int = 100):
    recipe = load_recipe(RECIPES_DIR / f"{name}.yaml")
    return build_schedule(recipe, steps_per_epoch * recipe.batch.global_batch, 1, name).learning_rate


@pytest.mark.parametrize(
    ("name", "peak", "warmup", "total", "wpe"),
    [
        # tlr = tblr·bs/256; warm-up ep/50 epochs at 100 micro-steps per epoch.
        ("var_d16", 1e-4 * 768 / 256, 400, 20_000, 0.1),
        ("var_d20", 1e-4 * 768 / 256, 500, 25_000, 0.1),
        ("var_d24", 8e-5 * 768 / 256, 700, 35_000, 0.01),
        ("var_d30", 8e-5 * 1024 / 256, 700, 35_000, 0.01),
    ],
)
def test_the_256_recipes_follow_vars_lr_rule_and_lin0_schedule(name, peak, warmup, total, wpe):
    lr = _schedule(name)
    assert lr.rule.effective_lr == pytest.approx(peak)
    assert lr.lr_at(0) == pytest.approx(0.005 * peak)  # wp0
    assert lr.lr_at(warmup // 2) == pytest.approx((0.005 + 0.995 * 0.5) * peak)
    # lin0: pasd = (g − W)/(total − 1 − W); the ratio stays 1 while pasd < 0.05, then falls linearly to wpe.
    plateau_end = warmup + 0.05 * (total - 1 - warmup)
    assert lr.lr_at(int(plateau_end)) == pytest.approx(peak)
    g = (warmup + total) // 2
    pasd = (g - warmup) / (total - 1 - warmup)
    assert lr.lr_at(g) == pytest.approx(peak * (wpe + (1 - wpe) * (1 - pasd) / 0.95))
    assert lr.lr_at(total - 1) == pytest.approx(wpe * peak)


def test_weight_decay_is_constant_for_d16_and_rises_on_a_cosine_for_d30_and_d36():
    assert {_schedule("var_d16").weight_decay_at(s) for s in (0, 10_000, 19_999)} == {0.05}
    for name in ("var_d30", "var_d36"):
        wd = _schedule(name)
        # 0.08 + (0.05 − 0.08)(½ + ½cos(π·g/(35000 − 1))): 0.05 at 0, 0.065 half-way, 0.08 at the end.
        assert wd.weight_decay_at(0) == pytest.approx(0.05)
        assert wd.weight_decay_at(34_999) == pytest.approx(0.08)
        assert wd.weight_decay_at(17_499) == pytest.approx(0.065, abs=1e-6)


def test_the_recipes_carry_vars_optimiser_and_training_settings():
    for name in ("var_d16", "var_d20", "var_d24", "var_d30", "var_d36"):
        recipe = load_recipe(RECIPES_DIR / f"{name}.yaml")
        assert recipe.optim.betas == (0.9, 0.95)
        assert "scale_mul" in recipe.optim.no_decay_names and "ada_gss" in recipe.optim.no_decay_names
        assert (recipe.training.grad_clip, recipe.training.precision) == (2.0, "fp16")
        assert recipe.data.path == "ILSVRC/imagenet-1k"
    d36 = load_recipe(RECIPES_DIR / "var_d36.yaml")
    params = d36.setup_params
    assert (params.shared_adaln, params.patch_nums[-1], params.init_adaln_gamma) == (True, 32, 5e-6)
    assert d36.curriculum_params[0].pg == 0.7 and d36.curriculum_params[0].pg0 == 4
