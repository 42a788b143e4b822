"""Exact resume: N steps, stop, resume for N more == 2N steps uninterrupted, on 1 and 2 processes."""

from __future__ import annotations

import json

import pytest
import torch
from engine_helpers import needs_fashion_mnist, run_cli, small_recipe
from safetensors.torch import load_file

# 640 samples / global batch 16 = 40 steps per epoch, 2 epochs = 80 steps. The image side is 16 px for the
# first 30% of steps, 20 px until 75% (step 60), then 28 px. Stopping at step 50 falls inside the second
# epoch, in the 20 px stage, and the resumed half crosses the change to 28 px.
CURRICULUM = [
    {"name": "progressive_resolution", "mode": "steps", "full_resolution": 28, "steps": [[0.3, 16], [0.75, 20]]}
]
STOP = 50


def _assert_same_weights(a, b):
    left, right = load_file(str(a)), load_file(str(b))
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


@needs_fashion_mnist
@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_stopped_and_resumed_run_equals_the_uninterrupted_one(tmp_path, processes):
    batch = {"per_device": 8 // processes, "accumulation": 2}  # global 16 in both cases
    recipe = small_recipe(
        tmp_path, batch=batch, curriculum=CURRICULUM, training={"ema": {"decay": 0.9, "schedule": "threshold"}}
    )
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    run_cli(["train", str(recipe), "--output-dir", str(whole)], processes)
    run_cli(["train", str(recipe), "--output-dir", str(halves), "--stop-after", str(STOP)], processes)
    stopped = json.loads((halves / "checkpoint-00000050" / "trainer_state.json").read_text())
    assert stopped["step"] == STOP and 1 < stopped["epoch"] < 2
    assert stopped["curriculum"] == {"resolution": 20}
    resumed = run_cli(["train", str(recipe), "--output-dir", str(halves), "--resume"], processes)
    assert "resumed from" in resumed.stderr and "at step 50" in resumed.stderr
    for file in ("model.safetensors", "ema.safetensors"):
        _assert_same_weights(whole / "checkpoint-00000080" / file, halves / "checkpoint-00000080" / file)
