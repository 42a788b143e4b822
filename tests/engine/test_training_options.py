"""Engine options end to end: EMA evaluation, early stopping, bf16 autocast on CPU."""

from __future__ import annotations

import json

import pytest
from engine_helpers import needs_fashion_mnist, run_cli, small_recipe

pytestmark = [needs_fashion_mnist, pytest.mark.slow]


def test_early_stopping_on_ema_evaluation_stops_after_patience_and_checkpoints(tmp_path):
    # Evaluate every 5 steps; min_delta 2.0 on top-1 (a fraction in [0, 1]) can never be met, so the first
    # evaluation sets the best and the second (step 10) exhausts patience 1.
    recipe = small_recipe(
        tmp_path,
        training={
            "ema": {"decay": 0.99, "schedule": "threshold"},
            "eval": {"every_steps": 5, "use_ema": True},
            "checkpoint": {"every_steps": 100, "keep_last": 2},
            "early_stopping": {"metric": "top1", "mode": "max", "patience": 1, "min_delta": 2.0},
        },
        data={"max_eval_samples": 64},
    )
    run = tmp_path / "run"
    result = run_cli(["train", str(recipe), "--output-dir", str(run)])
    assert "early stopping at step 10" in result.stderr
    state = json.loads((run / "checkpoint-00000010" / "trainer_state.json").read_text())
    assert [round(h["epoch"], 3) for h in state["eval_history"]] == [0.125, 0.25]
    assert state["early_stopping"]["bad_evals"] == 1
    assert (run / "checkpoint-00000010" / "ema.safetensors").is_file()
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval/top1" in line]
    assert len(evals) == 2 and all(0.0 <= e["eval/top1"] <= 1.0 for e in evals)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    recipe = small_recipe(tmp_path, training={"precision": "bf16", "epochs": 0.25}, data={"max_eval_samples": 32})
    run_cli(["train", str(recipe), "--output-dir", str(tmp_path / "run")])
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if '"loss"' in line and "eval/" not in line
    ]
    assert losses and all(loss == loss for loss in losses)  # finite, not NaN
