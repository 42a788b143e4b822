"""Checkpoint directories: atomic writes, latest-complete selection, pruning, corrupt files."""

from __future__ import annotations

import json

import pytest
import torch

from curricurun.engine.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resolve_resume_path,
    save_checkpoint,
)
from curricurun.errors import UserError


def _save(run_dir, step, keep_last=3):
    model = {"w": torch.full((2, 2), float(step))}
    optimizer = {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    return save_checkpoint(run_dir, step, model, optimizer, {"step": step}, keep_last=keep_last)


def test_checkpoint_round_trips_weights_optimizer_and_state(tmp_path):
    path = _save(tmp_path, 5)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.full((2, 2), 5.0))
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    state = loaded["trainer_state"]
    assert state["step"] == 5 and set(state["manifest"]) == {"model.safetensors", "optimizer.pt"}
    assert state["manifest"]["model.safetensors"]["size"] == (path / "model.safetensors").stat().st_size


def test_a_directory_interrupted_mid_write_is_never_picked_as_latest(tmp_path):
    _save(tmp_path, 10)
    # Simulate a crash while writing step 20: the temporary directory holds a partial model file.
    partial = tmp_path / ".tmp-checkpoint-00000020-999"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)
    # And a checkpoint-named directory without its trainer state (an older, non-atomic writer).
    broken = tmp_path / "checkpoint-00000030"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"\x00" * 10)
    assert latest_checkpoint(tmp_path).name == "checkpoint-00000010"
    assert resolve_resume_path("latest", tmp_path).name == "checkpoint-00000010"


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000003", "checkpoint-00000004"]


def test_corrupt_model_file_is_a_user_error_naming_the_file(tmp_path):
    path = _save(tmp_path, 1)
    (path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="model.safetensors: corrupt"):
        load_checkpoint(path)


def test_corrupt_optimizer_file_is_a_user_error_and_nothing_is_unpickled(tmp_path):
    path = _save(tmp_path, 1)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"x": Evil()}, path / "optimizer.pt")  # weights_only=True must refuse this
    with pytest.raises(UserError, match="optimizer.pt"):
        load_checkpoint(path)


def test_resume_without_checkpoints_and_from_a_missing_path_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no complete checkpoint"):
        resolve_resume_path("latest", tmp_path)
    with pytest.raises(UserError, match="not found"):
        resolve_resume_path(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "checkpoint-00000001").mkdir()
    (tmp_path / "checkpoint-00000001" / "trainer_state.json").write_text(json.dumps({}))
    with pytest.raises(UserError, match="not a complete checkpoint"):
        resolve_resume_path(str(tmp_path / "checkpoint-00000001"), tmp_path)
