"""A full disk during a checkpoint write: one line, exit 2, the partial directory removed, the previous
checkpoints untouched, and ``--resume`` in place continues exactly once space is freed.

As root the run directory is a tiny tmpfs (``mount -t tmpfs -o size=...``) that fills up for real;
otherwise (and always, as a unit test) the write raises ``OSError(ENOSPC)`` from a mock.
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
import torch
from engine_helpers import needs_fashion_mnist, small_recipe
from reliability.fault_helpers import bitwise_equal, snapshot

from curricurun.cli import run
from curricurun.engine import checkpoint as checkpoint_module
from curricurun.engine.checkpoint import list_checkpoints, save_checkpoint
from curricurun.errors import UserError

TRAINING = {"epochs": 1, "log_every_steps": 10, "eval": {"every_epochs": 1}, "checkpoint": {"every_steps": 10}}


@pytest.fixture
def tiny_disk(tmp_path):
    """An 11 MB tmpfs: two 4.5 MB checkpoints fit, the third does not (it is written before pruning)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the mocked ENOSPC test covers the code path")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=11m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


@needs_fashion_mnist
def test_a_full_disk_is_one_line_keeps_the_previous_checkpoint_and_resumes_in_place(tmp_path, tiny_disk, capsys):
    recipe = small_recipe(tmp_path, training=TRAINING)
    reference, run_dir = tmp_path / "reference", tiny_disk / "run"
    assert run(["train", str(recipe), "--output-dir", str(reference)]) == 0
    capsys.readouterr()
    assert run(["train", str(recipe), "--output-dir", str(run_dir)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"checkpoint: no space left on {run_dir} (needed ~" in errors[0], errors
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")]
    kept = [p.name for p in list_checkpoints(run_dir)]
    assert kept == ["checkpoint-00000010", "checkpoint-00000020"]
    subprocess.run(["mount", "-o", "remount,size=40m", str(tiny_disk)], check=True)  # space freed
    assert run(["train", str(recipe), "--output-dir", str(run_dir), "--resume"]) == 0
    assert "at step 20" in capsys.readouterr().err
    assert bitwise_equal(reference, run_dir)  # the checkpoint resumed from was intact (manifest checked)


def test_enospc_from_the_writer_is_one_line_and_the_partial_directory_is_removed(tmp_path, monkeypatch):
    model, optimizer = {"w": torch.zeros(256, 1024)}, {"state": {}, "param_groups": []}
    save_checkpoint(tmp_path, 1, model, optimizer, {"step": 1})
    calls = []

    def full_disk(tensors, filename, *args, **kwargs):
        calls.append(filename)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", full_disk)
    with pytest.raises(UserError, match=rf"^checkpoint: no space left on {tmp_path} \(needed ~1 MB\)$"):
        save_checkpoint(tmp_path, 2, model, optimizer, {"step": 2})
    assert calls and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000001"]
    assert snapshot(tmp_path / "checkpoint-00000001")  # untouched and still listed
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000001"]


def test_another_write_error_names_the_directory(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(checkpoint_module, "save_file", denied)
    with pytest.raises(
        UserError, match=r"checkpoint: cannot write .*\.tmp-checkpoint-00000003-\d+ \(Permission denied\)"
    ):
        save_checkpoint(tmp_path, 3, {"w": torch.zeros(2)}, {"state": {}}, {"step": 3})
    assert list(tmp_path.iterdir()) == []
