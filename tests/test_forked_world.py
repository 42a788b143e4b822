"""The forked ranks of tests/engine_helpers.run_cli form the world torchrun forms: same ranks, same shards,
same weights bit for bit, and a failing rank fails the world with its exit code."""

from __future__ import annotations

import json

import pytest
from engine_helpers import needs_fashion_mnist, run_cli, small_recipe

pytestmark = pytest.mark.slow


def _ends(trace_dir):
    lines = [
        [json.loads(line) for line in (trace_dir / f"samples-rank{rank}.jsonl").read_text().splitlines()]
        for rank in (0, 1)
    ]
    return [rank_lines[:-1] for rank_lines in lines], [rank_lines[-1] for rank_lines in lines]


@needs_fashion_mnist
def test_forked_ranks_train_exactly_as_torchrun_workers(tmp_path):
    recipe = small_recipe(
        tmp_path, batch={"per_device": 8}, training={"epochs": None, "steps": 6, "eval": {"every_epochs": None}}
    )
    traces = {}
    for name, fresh in (("torchrun", True), ("forked", False)):
        traces[name] = tmp_path / f"trace-{name}"
        run_cli(
            ["train", str(recipe), "--output-dir", str(tmp_path / name)],
            processes=2,
            env={"CURRICURUN_SAMPLE_TRACE": str(traces[name])},
            fresh=fresh,
        )
    (steps_t, ends_t), (steps_f, ends_f) = _ends(traces["torchrun"]), _ends(traces["forked"])
    assert steps_t == steps_f  # every rank saw the same sample indices at every step
    assert [line["indices"] for line in steps_f[0]] != [line["indices"] for line in steps_f[1]]  # disjoint shards
    assert ends_t == ends_f  # final weights' hashes, per rank


def test_a_failing_rank_fails_the_forked_world_with_its_exit_code(tmp_path):
    missing = tmp_path / "missing.yaml"
    result = None
    with pytest.raises(AssertionError, match=r"failed \(2\)"):
        result = run_cli(["train", str(missing)], processes=2)
    assert result is None
