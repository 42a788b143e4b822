"""The ``var`` setup: recipe fields, the tokenizer check, VAR's stage loss, per-scale evaluation sums, sampling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError

from curricurun.cli import run
from curricurun.curriculum.base import StageState
from curricurun.errors import UserError
from curricurun.setups import get as get_setup
from curricurun.setups.base import DataShape, SampleOptions
from curricurun.setups.var.setup import VarParams, VarSetup
from curricurun.setups.vqvae.tokenizer import MultiScaleTokenizer, save_tokenizer
from curricurun.setups.vqvae.vqvae import VQVAEConfig

PATCH_NUMS = (1, 2, 3, 4, 6, 8)  # e_k = 1, 5, 14, 30, 66, 130
SHAPE = DataShape(channels=1, num_classes=10, image_size=32)
V = 32


def random_tokenizer(directory: Path, **changes) -> Path:
    """A tokenizer with random weights in the vqvae export format: 32-px grey images, V 32, Cvae 8, pyramid 1..8."""
    values = dict(in_channels=1, image_size=32, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=8, vocab_size=V)
    torch.manual_seed(0)
    return save_tokenizer(MultiScaleTokenizer(VQVAEConfig(**{**values, **changes}, patch_nums=PATCH_NUMS)), directory)


def params(**changes) -> VarParams:
    values = dict(depth=2, width=48, patch_nums=list(PATCH_NUMS), vocab_size=V, token_channels=8, class_dropout=0.0)
    return VarParams(**{**values, **changes})


def make_setup(data: DataShape | None = SHAPE, **changes) -> VarSetup:
    return VarSetup(params(**changes), data)


class Spy(torch.nn.Module):
    """Records the model inputs and answers fixed logits: ``boost`` (a number or per token [B, L]) on the
    ``favoured`` token of each position, 0 elsewhere."""

    def __init__(self, favoured: torch.Tensor | None = None, boost: float | torch.Tensor = 0.0):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.favoured, self.boost, self.calls = favoured, boost, []

    def forward(self, labels, inputs, scale_index=None):
        self.calls.append((labels.clone(), inputs.clone(), scale_index))
        length = 1 + inputs.shape[1]
        logits = torch.zeros(labels.shape[0], length, V) + self.anchor
        if self.favoured is not None:
            boost = torch.as_tensor(self.boost, dtype=torch.float32)
            boost = boost[:, :length, None] if boost.dim() else boost
            logits = logits + boost * torch.nn.functional.one_hot(self.favoured[:, :length], V)
        return logits


def token_batch(batch: int = 2, tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "label": torch.arange(batch),
        "tokens": tokens if tokens is not None else torch.randint(V, (batch, 130), generator=generator),
        "token_inputs": torch.randn(batch, 129, 8, generator=generator),
    }


def test_the_setup_is_registered_as_var():
    assert get_setup("var") is VarSetup


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("256", (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)),
        (512, (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)),
        ([1, 2, 4], (1, 2, 4)),
    ],
)
def test_patch_numbers_take_vars_aliases_or_a_list(given, expected):
    assert VarParams(patch_nums=given).patch_nums == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"patch_nums": "128"}, "one of 256, 512, 1024"),
        ({"patch_nums": [1, 3, 2]}, "strictly increasing"),
        ({"depth": 3, "width": 100}, "width 100 is not divisible by num_heads 3"),
        ({"unknown": 1}, "Extra inputs"),
        ({"class_dropout": 1.0}, "less than 1"),
    ],
)
def test_bad_fields_are_rejected(changes, message):
    with pytest.raises(ValidationError, match=message):
        VarParams(**changes)


def test_vars_depth_rule_sets_width_heads_and_drop_path():
    config = VarSetup(VarParams(depth=24, num_classes=1000), None).config
    assert (config.width, config.num_heads, config.drop_path_rate) == (1536, 24, pytest.approx(0.1))


def test_a_tokenizer_that_exists_is_checked_at_validation_and_a_missing_one_is_not(tmp_path):
    directory = random_tokenizer(tmp_path / "tok")
    params(tokenizer=str(directory))  # matches
    with pytest.raises(ValidationError, match=r"vocab_size 4096 \(tokenizer: 32\); token_channels 32 \(tokenizer: 8\)"):
        VarParams(tokenizer=str(directory), patch_nums=list(PATCH_NUMS))
    params(tokenizer=str(tmp_path / "not_trained_yet"))  # validate passes; training will load and check it


def test_loading_the_tokenizer_checks_it_against_the_data(tmp_path):
    directory = random_tokenizer(tmp_path / "tok")
    setup = make_setup(DataShape(channels=1, num_classes=10, image_size=64), tokenizer=str(directory))
    with pytest.raises(UserError, match=r"data.image_size 64 \(tokenizer: 32\)"):
        setup.tokenizer(torch.device("cpu"))
    grey_tokenizer_rgb_data = make_setup(DataShape(channels=3, num_classes=10, image_size=32), tokenizer=str(directory))
    with pytest.raises(UserError, match=r"data channels 3 \(tokenizer: 1\)"):
        grey_tokenizer_rgb_data.tokenizer(torch.device("cpu"))
    with pytest.raises(ValidationError, match=r"in_channels 3 \(tokenizer: 1\)"):
        params(tokenizer=str(directory), in_channels=3)
    with pytest.raises(UserError, match="tokenizer: file not found"):
        make_setup(tokenizer=str(tmp_path / "missing")).tokenizer(torch.device("cpu"))
    with pytest.raises(UserError, match="setup.tokenizer: expected the directory"):
        make_setup().tokenizer(torch.device("cpu"))


def test_the_model_needs_classes_from_the_recipe_or_the_data():
    with pytest.raises(UserError, match="setup.num_classes"):
        VarSetup(params(), None)
    assert VarSetup(params(num_classes=7), None).config.num_classes == 7


def test_the_stage_loss_weights_tokens_by_one_over_the_full_length_and_ramps_the_newest_scale():
    # Uniform logits: every token's cross-entropy is ln 32. Stage 1 (scales 0, 1: 1 + 4 tokens), newest weight 0.25:
    # loss = ln 32 · (1·1 + 0.25·4) / 130, NOT renormalised to the 5 tokens trained (VAR trainer.py:112-120).
    setup, spy = make_setup(), Spy()
    stage = StageState(scale_index=1, newest_scale_weight=0.25, scale_loss_weights=(1.0, 0.25))
    loss = setup.training_loss(spy, token_batch(), stage)
    assert loss.item() == pytest.approx(math.log(32) * 2 / 130, rel=1e-6)
    labels, inputs, scale_index = spy.calls[0]
    assert (tuple(inputs.shape), scale_index) == ((2, 4, 8), 1)  # inputs of scale 1 only: e_1 − p_0² = 4
    # Without a curriculum: all 130 tokens at 1/130 each → ln 32.
    assert setup.training_loss(spy, token_batch(), StageState()).item() == pytest.approx(math.log(32), rel=1e-6)


def test_label_smoothing_is_applied_to_every_token():
    # Logits 2 on the target, 0 elsewhere, Z = e² + 31. CE = ln Z − 2; with smoothing ε = 0.1 over V = 32 classes:
    # ln Z − 2·(1 − ε) − 2·ε/32. Full sequence: the weights sum to 1 per image, so the loss is that value.
    batch = token_batch()
    z = math.exp(2) + 31
    plain = make_setup().training_loss(Spy(batch["tokens"], 2.0), batch, StageState())
    smooth = make_setup(label_smoothing=0.1).training_loss(Spy(batch["tokens"], 2.0), batch, StageState())
    assert plain.item() == pytest.approx(math.log(z) - 2, rel=1e-6)
    assert smooth.item() == pytest.approx(math.log(z) - 2 * 0.9 - 2 * 0.1 / 32, rel=1e-6)


def test_a_scale_index_beyond_the_setups_pyramid_is_a_user_error():
    with pytest.raises(UserError, match="scale_index 9 is beyond setup.patch_nums"):
        make_setup().training_loss(Spy(), token_batch(), StageState(scale_index=9))


def test_evaluation_sums_per_scale_and_the_metrics_from_them():
    # Two images. Scales 0-2 (14 tokens) have target 0 and logits 10 there: right, CE = ln(e¹⁰ + 31) − 10.
    # Scales 3-5 (116 tokens) have target 1 and uniform logits: argmax 0 is wrong, CE = ln 32.
    tokens = torch.cat([torch.zeros(2, 14, dtype=torch.long), torch.ones(2, 116, dtype=torch.long)], dim=1)
    boost = torch.cat([torch.full((2, 14), 10.0), torch.zeros(2, 116)], dim=1)
    sums = make_setup().evaluation_sums(Spy(torch.zeros_like(tokens), boost), token_batch(tokens=tokens))
    right = math.log(math.exp(10) + 31) - 10
    counts = [2.0, 8.0, 18.0, 32.0, 72.0, 128.0]  # 2 images × p²
    assert sums["tokens"].tolist() == counts
    assert sums["correct"].tolist() == [2.0, 8.0, 18.0, 0.0, 0.0, 0.0]
    expected_loss = [c * right for c in counts[:3]] + [c * math.log(32) for c in counts[3:]]
    assert sums["loss_sum"].tolist() == pytest.approx(expected_loss, rel=1e-5)

    metrics = VarSetup.metrics_from_sums({k: v.double() for k, v in sums.items()})
    assert metrics["accuracy"] == pytest.approx(28 / 260)
    assert metrics["loss"] == pytest.approx((28 * right + 232 * math.log(32)) / 260, rel=1e-5)
    assert (metrics["accuracy_tail"], metrics["loss_tail"]) == (0.0, pytest.approx(math.log(32), rel=1e-5))
    assert [metrics[f"accuracy_scale{k}"] for k in range(6)] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert metrics["loss_scale2"] == pytest.approx(right, rel=1e-4)


def test_with_a_tokenizer_the_targets_and_inputs_are_the_first_scales_of_the_image_pyramid(tmp_path):
    directory = random_tokenizer(tmp_path / "tok")
    setup, spy = make_setup(tokenizer=str(directory)), Spy()
    images = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    batch = {"image": images, "label": torch.tensor([0, 1, 2])}
    setup.training_loss(spy, batch, StageState(scale_index=2, scale_loss_weights=(1.0, 1.0, 1.0)))
    tokenizer = setup.tokenizer(torch.device("cpu"))
    maps = tokenizer.encode(images)
    assert torch.equal(spy.calls[0][1], tokenizer.teacher_forcing_input(maps[:3]))  # 4 + 9 rows
    assert spy.calls[0][1].shape == (3, 13, 8)
    targets, inputs = setup.stage_tokens(batch, 2)
    assert torch.equal(targets, torch.cat([m.flatten(1) for m in maps[:3]], dim=1))
    assert setup.tokenizer(torch.device("cpu")) is tokenizer  # loaded once


def test_measure_batches_train_without_a_tokenizer_at_every_stage():
    setup = make_setup()
    model = setup.build_model()
    batch = setup.measure_batch(StageState(), 4)
    assert (batch["tokens"].shape, batch["token_inputs"].shape) == ((4, 130), (4, 129, 8))
    for stage in range(6):
        loss = setup.training_loss(model, batch, StageState(scale_index=stage))
        assert torch.isfinite(loss)


def test_sampling_through_the_setup_gives_images_in_unit_range_class_by_class(tmp_path):
    setup = make_setup(tokenizer=str(random_tokenizer(tmp_path / "tok")))
    model = setup.build_model().train()
    images = setup.sample(model, [2, 5], seed=0, options=SampleOptions(cfg=1.5, top_k=8, top_p=0.9, per_class=3))
    assert images.shape == (6, 1, 32, 32)
    assert images.min() >= 0 and images.max() <= 1
    assert model.training  # the mode is restored
    with pytest.raises(UserError, match="--classes: expected class indices below 10, got 10"):
        setup.sample(model, [10], seed=0, options=SampleOptions())


def test_previews_after_evaluation_are_a_grid_of_one_sample_per_class(tmp_path):
    setup = make_setup(tokenizer=str(random_tokenizer(tmp_path / "tok")), preview_classes=4)
    setup.after_evaluation(setup.build_model(), {}, 120, tmp_path)
    assert (tmp_path / "samples" / "step-00000120.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST IDX files missing")
def test_inspect_schedule_measures_each_stage_without_a_tokenizer(tmp_path, capsys):
    # 64 samples, batch 4: 16 steps; pg 0.5, pg0 3, no warm-up: prog_si = 3 + round(g/8·2) → 3 (g 0-1), 4 (g 2-5),
    # 5 from g 6 (1.5 → 2): three shapes to time, the last one the full sequence (cost 1). The loader is timed on
    # real images; without a tokenizer the transformer is timed on the setup's random tokens (and a note says so).
    recipe = {
        "setup": {"name": "var", "depth": 1, "width": 32, "patch_nums": list(PATCH_NUMS), "vocab_size": V,
                  "token_channels": 8, "num_classes": 10, "in_channels": 1, "tokenizer": str(tmp_path / "none")},
        "data": {"source": "idx", "path": "/usr/share/datasets/fashion-mnist", "image_size": 32,
                 "max_train_samples": 64},
        "batch": {"per_device": 4},
        "optim": {"lr": 1e-3},
        "schedule": {"shape": "auto", "unit": "micro_steps"},
        "curriculum": [{"name": "progressive_scales", "patch_nums": list(PATCH_NUMS), "pg": 0.5, "pg0": 3}],
        "training": {"steps": 16},
    }  # fmt: skip
    path = tmp_path / "var.yaml"
    path.write_text(yaml.safe_dump(recipe))
    args = ["inspect-schedule", str(path), "--measure", "--json", "--repeats", "2", "--output-dir", str(tmp_path / "r")]
    assert run(args) == 0
    forecast = json.loads(capsys.readouterr().out)["forecast"]
    stages = forecast["stages"]
    assert [s["scale_index"] for s in stages] == [3, 4, 5]
    assert [s["pixel_cost"] for s in stages] == pytest.approx([30 / 130, 66 / 130, 1.0])
    assert all(s["model_ms_per_step"] > 0 and s["loader_ms_per_step"] > 0 for s in stages)
    assert any("random batch" in note for note in forecast["notes"])
