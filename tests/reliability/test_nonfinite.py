"""A diverging run stops within one step of the first non-finite loss (exit 3) and never keeps a
non-finite checkpoint; ``training.on_nonfinite: skip_step`` drops those updates and counts them."""

from __future__ import annotations

import json
import math

import pytest
import torch
from engine_helpers import needs_fashion_mnist, small_recipe
from safetensors.torch import load_file

from curricurun.cli import run
from curricurun.engine.checkpoint import list_checkpoints
from curricurun.engine.stopping import InterruptRequests, StepGuard

DIVERGING = {
    "training": {"epochs": 1, "log_every_steps": 1, "checkpoint": {"every_steps": 1, "keep_last": 2}},
}


def _all_finite(checkpoint) -> bool:
    tensors = list(load_file(str(checkpoint / "model.safetensors")).values())
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    tensors += [v for entry in optimizer["state"].values() for v in entry.values() if isinstance(v, torch.Tensor)]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def _losses(run_dir) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {record["step"]: record["loss"] for record in map(json.loads, lines) if "loss" in record}


@needs_fashion_mnist
@pytest.mark.parametrize("optim", [{"lr": 1e6}, {"name": "sgd", "lr": 1000.0}])
def test_a_diverging_run_stops_at_the_first_nonfinite_loss_with_exit_3(tmp_path, capsys, optim):
    optimizer = {"name": "adamw", "lr": 0.002, "weight_decay": 0.05, "lr_scaling": {"rule": "none"}, **optim}
    recipe = small_recipe(tmp_path, optim=optimizer, training=DIVERGING["training"])
    run_dir = tmp_path / "run"
    assert run(["train", str(recipe), "--output-dir", str(run_dir)]) == 3
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite loss" in errors[0] and "last good checkpoint" in errors[0], errors
    stopped_at = int(errors[0].split(" at step ")[1].split()[0])
    losses = _losses(run_dir)  # logged every step: every step before the stop had a finite loss
    assert sorted(losses) == list(range(1, stopped_at)) and all(math.isfinite(v) for v in losses.values())
    kept = list_checkpoints(run_dir)
    assert kept and kept[-1].name == f"checkpoint-{stopped_at - 1:08d}" and str(kept[-1]) in errors[0]
    assert all(_all_finite(path) for path in kept)


@needs_fashion_mnist
def test_skip_step_drops_nonfinite_updates_counts_them_and_keeps_finite_weights(tmp_path, capsys):
    training = {**DIVERGING["training"], "on_nonfinite": "skip_step"}
    recipe = small_recipe(tmp_path, optim={"lr": 1e6}, training=training)
    run_dir = tmp_path / "run"
    assert run(["train", str(recipe), "--output-dir", str(run_dir)]) == 0
    assert "non-finite loss or gradient norm (1 so far)" in capsys.readouterr().err
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    skipped = [r["skipped_nonfinite_steps"] for r in records if "skipped_nonfinite_steps" in r]
    assert skipped[-1] > 0 and skipped == sorted(skipped)
    final = list_checkpoints(run_dir)[-1]
    assert final.name == "checkpoint-00000040" and _all_finite(final)
    assert json.loads((final / "trainer_state.json").read_text())["skipped_steps"] == skipped[-1]


class _OneProcess:
    num_processes = 1

    def __init__(self, scaler=None):
        self.scaler = scaler


def test_the_guard_leaves_an_infinite_gradient_norm_to_fp16s_scaler_but_stops_on_a_nan_loss():
    plain = StepGuard(_OneProcess(), "stop", InterruptRequests())
    assert plain.check(torch.tensor(1.0), torch.tensor(float("inf"))) == (True, None)
    assert plain.check(torch.tensor(1.0), torch.tensor(3.0)) == (False, None)
    fp16 = StepGuard(_OneProcess(scaler=object()), "stop", InterruptRequests())
    assert fp16.check(torch.tensor(1.0), torch.tensor(float("inf"))) == (False, None)  # the scaler skips it
    assert fp16.check(torch.tensor(float("nan")), torch.tensor(1.0)) == (True, None)
    assert fp16.log_fields() == {"skipped_by_grad_scaler": 0}
