"""The setup-side curricula change what the model sees, step by step, identically on two processes.

VAR's progressive scales cut the token sequence the transformer receives; Pyramid-Flow's stage mix splits every
batch into stage segments of growing resolution. Both are measured at the model's forward (sample trace).
"""

from __future__ import annotations

import json

import pytest
from engine_helpers import REPO, needs_fashion_mnist, run_cli
from setup_helpers import tiny_tokenizer

pytestmark = [needs_fashion_mnist, pytest.mark.slow]


def _records(trace, rank):
    lines = [json.loads(line) for line in (trace / f"samples-rank{rank}.jsonl").read_text().splitlines()]
    return [line for line in lines if "step" in line]


def _sets(overrides):
    return [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]


def test_progressive_scales_cut_the_token_sequence_identically_on_two_ranks(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    trace = tmp_path / "trace"
    # 256 images, global batch 2 × 8 = 16: 16 steps per epoch, 24 steps; the same stage arithmetic as the
    # one-process test in tests/setups/test_var_training.py: prog_si 2 ×6, 3 ×2, 4 ×3, 5 ×13.
    overrides = {
        "setup.tokenizer": str(tokenizer),
        "data.max_train_samples": 256,
        "data.eval_split": "null",
        "batch.per_device": 8,
        "schedule.warmup_steps": 4,
        "curriculum.0.pgwp": 0.25,
        "training.steps": 24,
        "training.checkpoint": "{every_steps: 24, keep_last: 1}",
    }
    recipe = str(REPO / "recipes" / "var_tiny.yaml")
    run_cli(
        ["train", recipe, *_sets(overrides), "--output-dir", str(tmp_path / "run")],
        processes=2,
        env={"CURRICURUN_SAMPLE_TRACE": str(trace)},
    )
    rank0, rank1 = _records(trace, 0), _records(trace, 1)
    assert [r["stage"]["scale_index"] for r in rank0] == [2] * 6 + [3] * 2 + [4] * 3 + [5] * 13
    ends = {2: 14, 3: 30, 4: 66, 5: 130}  # e_p = 1 + 4 + 9 (+ 16 (+ 36 (+ 64)))
    for a, b in zip(rank0, rank1, strict=True):
        assert a["stage"] == b["stage"] and a["model_inputs"] == b["model_inputs"]
        assert a["model_inputs"] == [[[8], [8, ends[a["stage"]["scale_index"]] - 1, 16]]]
        assert set(a["indices"]).isdisjoint(b["indices"])


@pytest.mark.parametrize(("ratios", "per_device", "counts"), [([1, 2, 1], 8, [2, 4, 2]), ([1, 1, 1], 6, [2, 2, 2])])
def test_the_stage_mix_splits_every_batch_into_its_stage_columns_on_two_ranks(tmp_path, ratios, per_device, counts):
    trace = tmp_path / "trace"
    overrides = {
        "data.max_train_samples": 96,
        "data.eval_split": "null",
        "batch.per_device": per_device,
        "schedule.warmup_steps": 1,
        "curriculum.0.ratios": json.dumps(ratios),
        "training.steps": 3,
        "training.checkpoint": "{every_steps: 3, keep_last: 1}",
        "setup.hidden_size": 32,
        "setup.depth": 1,
        "setup.num_heads": 2,
    }
    recipe = str(REPO / "recipes" / "pyramid_flow_tiny.yaml")
    run_cli(
        ["train", recipe, *_sets(overrides), "--output-dir", str(tmp_path / "run")],
        processes=2,
        env={"CURRICURUN_SAMPLE_TRACE": str(trace)},
    )
    rank0, rank1 = _records(trace, 0), _records(trace, 1)
    assert len(rank0) == len(rank1) == 3
    for a, b in zip(rank0, rank1, strict=True):
        assert a["stage"]["stage_ratios"] == ratios and a["model_inputs"] == b["model_inputs"]
        (call,) = a["model_inputs"]  # one forward per micro-batch
        segments = [shape for shape in call if len(shape) == 4]  # the per-stage latents [n_k, C, side, side]
        # stage k gets ratios[k] columns of every group of sum(ratios): n_k = per_device · r_k / Σr, at 8, 16, 32 px
        assert [s[0] for s in segments] == counts
        assert [s[-1] for s in segments] == [8, 16, 32]
