"""Damaged or mismatched checkpoints: each case falls back to the previous complete checkpoint with one
line saying why, or is refused with one line naming the file or field (exit 2) and the run directory left
byte for byte as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from engine_helpers import needs_fashion_mnist, small_recipe

from curricurun.cli import run
from curricurun.engine.checkpoint import TRAINER_STATE, list_checkpoints
from curricurun.engine.resume import recipe_changes

TRAINING = {
    "epochs": 1,
    "log_every_steps": 10,
    "eval": {"every_epochs": 1},
    "checkpoint": {"every_steps": 10, "keep_last": 2},
    "ema": {"decay": 0.9},
}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run stopped at step 35 of 40: checkpoints 30 and 35 are kept."""
    root = tmp_path_factory.mktemp("damaged")
    recipe = small_recipe(root, training=TRAINING)
    run_dir = root / "run"
    assert run(["train", str(recipe), "--output-dir", str(run_dir), "--stop-after", "35"]) == 0
    assert [p.name for p in list_checkpoints(run_dir)] == ["checkpoint-00000030", "checkpoint-00000035"]
    return recipe, run_dir


def _copy(stopped_run, tmp_path) -> tuple[Path, Path]:
    recipe, run_dir = stopped_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return recipe, copy


def _tree(run_dir: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(run_dir)): p.read_bytes() if p.is_file() else None for p in sorted(run_dir.rglob("*"))}


def _edit_state(change):
    def damage(checkpoint: Path) -> None:
        state = json.loads((checkpoint / TRAINER_STATE).read_text())
        (checkpoint / TRAINER_STATE).write_text(json.dumps(change(state)))

    return damage


def _flip_a_bit(name):
    def damage(checkpoint: Path) -> None:
        data = bytearray((checkpoint / name).read_bytes())
        data[len(data) // 2] ^= 0x04
        (checkpoint / name).write_bytes(bytes(data))

    return damage


def _truncate(name):
    return lambda checkpoint: (checkpoint / name).write_bytes((checkpoint / name).read_bytes()[:1000])


DAMAGE = {
    "not utf-8": (lambda c: (c / TRAINER_STATE).write_bytes(b"\xff\xfe{\x00"), "not a readable trainer state"),
    "a list": (lambda c: (c / TRAINER_STATE).write_text("[1, 2]"), "expected a JSON object, found list"),
    "empty object": (lambda c: (c / TRAINER_STATE).write_text("{}"), "field 'step' is missing"),
    "no step": (_edit_state(lambda s: {k: v for k, v in s.items() if k != "step"}), "field 'step' is missing"),
    "step abc": (_edit_state(lambda s: {**s, "step": "abc"}), "field 'step': expected a whole number"),
    "step -5": (_edit_state(lambda s: {**s, "step": -5}), "field 'step': expected a whole number"),
    "step 1000000": (_edit_state(lambda s: {**s, "step": 1_000_000}), "field 'step': 1000000"),
    "eval_history x": (_edit_state(lambda s: {**s, "eval_history": "x"}), "field 'eval_history'"),
    "no manifest": (_edit_state(lambda s: {k: v for k, v in s.items() if k != "manifest"}), "field 'manifest'"),
    "bit flip in the model": (_flip_a_bit("model.safetensors"), "model.safetensors: damaged (its sha256 differs"),
    "bit flip in the optimizer": (_flip_a_bit("optimizer.pt"), "optimizer.pt: damaged (its sha256 differs"),
    "truncated EMA": (_truncate("ema.safetensors"), "ema.safetensors: damaged (1000 bytes"),
    "deleted EMA": (lambda c: (c / "ema.safetensors").unlink(), "ema.safetensors: missing"),
}


@needs_fashion_mnist
@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_checkpoint_is_refused_with_one_line_and_nothing_changes(stopped_run, tmp_path, capsys, case):
    recipe, run_dir = _copy(stopped_run, tmp_path)
    damage, expected = DAMAGE[case]
    damage(run_dir / "checkpoint-00000035")
    before = _tree(run_dir)
    capsys.readouterr()
    code = run(["train", str(recipe), "--output-dir", str(run_dir), "--resume", str(run_dir / "checkpoint-00000035")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and expected in errors[0], errors
    assert _tree(run_dir) == before


@needs_fashion_mnist
def test_resume_latest_falls_back_to_the_previous_checkpoint_saying_why(stopped_run, tmp_path, capsys):
    recipe, run_dir = _copy(stopped_run, tmp_path)
    _flip_a_bit("model.safetensors")(run_dir / "checkpoint-00000035")
    (run_dir / ".tmp-checkpoint-00000040-12345").mkdir()  # left by a killed run
    assert run(["train", str(recipe), "--output-dir", str(run_dir), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resume: skipping" in err and "checkpoint-00000035" in err and "sha256" in err
    assert "checkpoint-00000030 at step 30" in err
    assert "removed the partial checkpoint .tmp-checkpoint-00000040-12345" in err
    assert not (run_dir / ".tmp-checkpoint-00000040-12345").exists()
    assert list_checkpoints(run_dir)[-1].name == "checkpoint-00000040"


@needs_fashion_mnist
def test_no_usable_checkpoint_left_is_one_line_and_nothing_changes(stopped_run, tmp_path, capsys):
    recipe, run_dir = _copy(stopped_run, tmp_path)
    for checkpoint in list_checkpoints(run_dir):
        _flip_a_bit("optimizer.pt")(checkpoint)
    before = _tree(run_dir)
    capsys.readouterr()
    assert run(["train", str(recipe), "--output-dir", str(run_dir), "--resume"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no usable checkpoint left" in errors[0]
    assert _tree(run_dir) == before


@needs_fashion_mnist
@pytest.mark.parametrize(
    "override, named",
    [("optim.name=sgd", "optim.name: adamw -> sgd"), ("optim.lr=0.01", "optim.lr: 0.002 -> 0.01")],
)
def test_a_recipe_change_that_breaks_exactness_is_refused_unless_resume_changed(
    stopped_run, tmp_path, capsys, override, named
):
    recipe, run_dir = _copy(stopped_run, tmp_path)
    before = _tree(run_dir)
    capsys.readouterr()
    args = ["train", str(recipe), "--output-dir", str(run_dir), "--resume", "--set", override]
    assert run(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and "--resume-changed" in errors[0]
    assert _tree(run_dir) == before  # recipe.resolved.yaml included
    assert run([*args, "--resume-changed"]) == 0
    assert f"continuing with a changed recipe: {named}" in capsys.readouterr().err
    state = json.loads((list_checkpoints(run_dir)[-1] / TRAINER_STATE).read_text())
    assert state["resume_changes"] == [{"at_step": 35, "changes": [named]}]


@needs_fashion_mnist
def test_a_change_that_keeps_the_weights_exact_needs_no_flag(stopped_run, tmp_path):
    recipe, run_dir = _copy(stopped_run, tmp_path)
    args = ["train", str(recipe), "--output-dir", str(run_dir), "--resume", "--set", "training.log_every_steps=3"]
    assert run(args) == 0


def test_recipe_changes_name_the_world_size_and_ignore_logging():
    stored = {"batch": {"per_device": 8}, "training": {"log_every_steps": 10}, "schedule": {"warmup_steps": 5}}
    current = {"batch": {"per_device": 8}, "training": {"log_every_steps": 1}, "schedule": {"warmup_steps": 6}}
    assert recipe_changes(stored, current, 1, 2) == ["world size: 1 -> 2", "schedule.warmup_steps: 5 -> 6"]
    assert recipe_changes(stored, stored, 2, 2) == []
