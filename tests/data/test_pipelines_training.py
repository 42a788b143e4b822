"""Two real processes train through the ``imagenet`` and ``var`` pipelines on real JPEGs across a stage change.

Traced per-step image shapes are identical on both ranks, the stage changes size mid-run, and a run resumed in a
new process from the checkpoint the uninterrupted run wrote at the stage change (step 4) ends with that run's
weights. (Stopping itself, ``--stop-after`` and kill -9, is tested in tests/engine/test_resume.py and
tests/reliability/test_kill_and_resume.py; this file spends its two-process launches on the pipelines.)
"""

from __future__ import annotations

import json

import pytest
from engine_helpers import run_cli, small_recipe
from photo_folder import write_photo_folder

pytestmark = pytest.mark.slow


def _trace(folder, rank):
    lines = [json.loads(line) for line in (folder / f"samples-rank{rank}.jsonl").read_text().splitlines()]
    return lines[:-1], lines[-1]


def _recipe(tmp_path, name, pipeline, curriculum):
    write_photo_folder(tmp_path / "photos", 40, classes=4, splits={"train": 0.8, "test": 0.2})
    return small_recipe(
        tmp_path,
        name,
        data={
            "source": "local",
            "path": str(tmp_path / "photos"),
            "image_size": 64,
            "pipeline": pipeline,
            "num_workers": 1,
        },
        batch={"per_device": 4},  # global 8 on 2 ranks: 4 steps per epoch over 32 images
        curriculum=curriculum,
        training={"epochs": 2, "log_every_steps": 2, "eval": {"every_epochs": 1}, "checkpoint": {"every_steps": 4}},
    )


def _two_ranks_agree(trace_dir, sizes):
    (rank0, end0), (rank1, end1) = _trace(trace_dir, 0), _trace(trace_dir, 1)
    assert len(rank0) == len(rank1) == 8
    for a, b in zip(rank0, rank1, strict=True):
        assert a["step"] == b["step"] and a["stage"] == b["stage"] and a["shape"] == b["shape"]
    assert [line["shape"][-1] for line in rank0] == sizes
    assert end0["final_weights_sha256"] == end1["final_weights_sha256"]
    return end0["final_weights_sha256"]


def test_imagenet_pipeline_low_frequency_stages_on_two_ranks_resume_bitwise_across_the_change(tmp_path):
    curriculum = [
        {"name": "low_frequency_crop", "bandwidths": [96, 224], "base_resolution": 64, "indexed_by": "epochs"},
        {"name": "randaugment_ramp", "magnitudes": [2, 9], "indexed_by": "epochs"},
    ]
    recipe = _recipe(tmp_path, "imagenet_lfc", {"name": "imagenet"}, curriculum)
    whole = _two_ranks_agree(_run(recipe, tmp_path / "whole", tmp_path / "trace_whole"), [32] * 4 + [64] * 4)
    resumed, end = _resume_at_the_change(recipe, tmp_path / "whole", tmp_path)
    assert [line["shape"][-1] for line in resumed] == [64] * 4
    assert end["final_weights_sha256"] == whole


def test_var_pipeline_on_two_ranks_resumes_bitwise_across_a_resolution_change(tmp_path):
    curriculum = [{"name": "progressive_resolution", "mode": "steps", "full_resolution": 64, "steps": [[0.5, 32]]}]
    recipe = _recipe(tmp_path, "var_pipeline", {"name": "var"}, curriculum)
    whole = _two_ranks_agree(_run(recipe, tmp_path / "run", tmp_path / "trace"), [32] * 4 + [64] * 4)
    resumed, end = _resume_at_the_change(recipe, tmp_path / "run", tmp_path)
    assert [line["shape"][-1] for line in resumed] == [64] * 4  # the resumed half is the 64 px stage
    assert end["final_weights_sha256"] == whole


def _resume_at_the_change(recipe, whole_run, tmp_path):
    """Two new processes resume from the uninterrupted run's checkpoint at step 4 (the stage change)."""
    checkpoint = whole_run / "checkpoint-00000004"
    assert checkpoint.is_dir()
    trace = tmp_path / "trace_resumed"
    resumed_dir = tmp_path / "resumed"
    run_cli(
        ["train", str(recipe), "--output-dir", str(resumed_dir), "--resume", str(checkpoint)],
        processes=2,
        env={"CURRICURUN_SAMPLE_TRACE": str(trace)},
    )
    return _trace(trace, 0)


def _run(recipe, out, trace):
    run_cli(["train", str(recipe), "--output-dir", str(out)], processes=2, env={"CURRICURUN_SAMPLE_TRACE": str(trace)})
    return trace
