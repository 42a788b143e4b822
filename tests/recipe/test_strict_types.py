"""Strict recipe types: a bool is not a number, an empty split name is not "no evaluation", non-finite
curriculum numbers and seeds NumPy cannot take are refused: each one line naming the field, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from curricurun import cli

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"

CASES = [
    ("batch.per_device=true", "batch.per_device: expected a positive integer (or null), got true"),
    ("optim.lr=true", "optim.lr: expected a positive number, got true"),
    ("data.image_size=false", "data.image_size: expected a positive integer, got false"),
    ("schedule.warmup_fraction=false", "schedule.warmup_fraction: expected a number >= 0 and < 1 (or null), got false"),
    ("training.grad_scaler.growth_factor=true", "training.grad_scaler.growth_factor:"),
    ("seed=true", "seed: expected a non-negative integer, got true"),
    ("seed=4294967296", "seed: expected at most 4294967295"),
    ("data.eval_split=''", "data.eval_split: string should have at least 1 character, got ''"),
    ("data.train_split=''", "data.train_split: string should have at least 1 character, got ''"),
    ("curriculum.0.steps=[[.inf, 20]]", "curriculum.0.steps.0.0: expected a number, got inf"),
    ("curriculum.0.steps=[[.nan, 20]]", "curriculum.0.steps.0.0: expected a number, got nan"),
]


@pytest.mark.parametrize(("override", "expected"), CASES, ids=[case[0] for case in CASES])
def test_wrong_type_is_one_line_exit_2(override: str, expected: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.run(["validate", str(DEMO), "--set", override]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: --set {override}: ") and expected in lines[0], lines[0]


@pytest.mark.parametrize("override", ["seed=4294967295", "data.eval_split=null", "optim.lr=1", "batch.per_device=64"])
def test_edge_values_still_validate(override: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.run(["validate", str(DEMO), "--set", override]) == 0, capsys.readouterr().err
