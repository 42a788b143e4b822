"""Two real processes (torchrun, gloo, cpu=True): sharding, stages, identical weights and the LR rule."""

from __future__ import annotations

import json

import pytest
from engine_helpers import needs_fashion_mnist, run_cli, small_recipe

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

CURRICULUM = [{"name": "progressive_resolution", "mode": "steps", "full_resolution": 28, "steps": [[0.5, 16]]}]


def _trace(folder, rank):
    lines = [json.loads(line) for line in (folder / f"samples-rank{rank}.jsonl").read_text().splitlines()]
    return lines[:-1], lines[-1]


def _lr_rule(run_dir, step):
    state = json.loads((run_dir / f"checkpoint-{step:08d}" / "trainer_state.json").read_text())
    return state["lr_rule"]


def test_two_processes_shard_disjointly_train_the_same_stage_and_end_with_identical_weights(tmp_path):
    # 640 samples, per-device 8 on 2 ranks = global 16: 40 steps make exactly one epoch.
    recipe = small_recipe(
        tmp_path,
        batch={"per_device": 8},
        curriculum=CURRICULUM,
        training={"epochs": 1, "checkpoint": {"every_epochs": 1}},
    )
    trace_dir = tmp_path / "trace"
    run_cli(
        ["train", str(recipe), "--output-dir", str(tmp_path / "run")],
        processes=2,
        env={"CURRICURUN_SAMPLE_TRACE": str(trace_dir)},
    )
    (rank0, end0), (rank1, end1) = _trace(trace_dir, 0), _trace(trace_dir, 1)
    assert len(rank0) == len(rank1) == 40
    seen0 = [i for line in rank0 for i in line["indices"]]
    seen1 = [i for line in rank1 for i in line["indices"]]
    assert not set(seen0) & set(seen1)
    assert sorted(seen0 + seen1) == list(range(640))
    for a, b in zip(rank0, rank1, strict=True):
        assert a["step"] == b["step"] and a["stage"] == b["stage"] and a["shape"] == b["shape"]
    assert {tuple(line["shape"]) for line in rank0} == {(8, 1, 16, 16), (8, 1, 28, 28)}
    assert end0["final_weights_sha256"] == end1["final_weights_sha256"]


def test_linear_rule_doubles_the_lr_on_two_processes_with_a_per_device_batch(tmp_path):
    recipe = small_recipe(tmp_path, batch={"per_device": 8})
    one, two = tmp_path / "one", tmp_path / "two"
    run_cli(["train", str(recipe), "--output-dir", str(one), "--stop-after", "1"], processes=1)
    run_cli(["train", str(recipe), "--output-dir", str(two), "--stop-after", "1"], processes=2)
    rule_one, rule_two = _lr_rule(one, 1), _lr_rule(two, 1)
    assert (rule_one["global_batch"], rule_two["global_batch"]) == (8, 16)
    assert rule_two["effective_lr"] == 2 * rule_one["effective_lr"]


def test_a_global_batch_keeps_the_lr_equal_on_one_and_two_processes(tmp_path):
    recipe = small_recipe(tmp_path, batch={"per_device": None, "global": 16})
    one, two = tmp_path / "one", tmp_path / "two"
    run_cli(["train", str(recipe), "--output-dir", str(one), "--stop-after", "1"], processes=1)
    run_cli(["train", str(recipe), "--output-dir", str(two), "--stop-after", "1"], processes=2)
    assert _lr_rule(one, 1)["effective_lr"] == _lr_rule(two, 1)["effective_lr"] == 0.002
