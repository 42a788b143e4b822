"""``schedule.unit: compute`` honours ``hold_epochs`` and ``warmup_max_epochs`` as the step unit does.

Without a curriculum every step spends exactly one full-size step of compute, so the compute-indexed LR must equal
the step-indexed one under the same hold and warm-up cap (before, the compute unit ignored both without a word).
"""

from __future__ import annotations

import json

import pytest

from curricurun.cli import RECIPES_DIR, run

RECIPE = str(RECIPES_DIR / "efficienttrain_baseline_resnet50.yaml")
ARGS = ["--steps-per-epoch", "20", "--every", "7", "--json"]
HOLD_AND_CAP = ["--set", "schedule.hold_epochs=30", "--set", "schedule.warmup_max_epochs=5"]


def lrs(capsys, *overrides: str) -> dict[int, float]:
    """The LR at every 7th step, by step."""
    code = run(["inspect-schedule", RECIPE, *ARGS, *overrides])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return {entry["step"]: entry["lr"] for entry in json.loads(captured.out)["steps"]}


def test_compute_unit_applies_hold_epochs_and_the_warm_up_cap_like_the_step_unit(capsys):
    by_steps = lrs(capsys, *HOLD_AND_CAP)
    by_compute = lrs(capsys, *HOLD_AND_CAP, "--set", "schedule.unit=compute")
    assert by_compute.keys() == by_steps.keys()
    assert list(by_compute.values()) == pytest.approx(list(by_steps.values()))
    # The two settings do change the schedule: warm-up capped at 5 epochs (100 steps) instead of 20, then the peak
    # held for 30 epochs (600 steps), so steps 105 and 693 are both at the peak; without them 105 is still warming up.
    plain = lrs(capsys, "--set", "schedule.unit=compute")
    peak = max(by_steps.values())
    assert by_compute[105] == pytest.approx(peak) and by_compute[693] == pytest.approx(peak)
    assert plain[105] < 0.5 * peak
