"""Fault injection for the reliability tests: kill -9 a run (every process of it), compare final states.

Runs are the real CLI in fresh processes on the small Fashion-MNIST recipe of ``engine_helpers``.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch
from engine_helpers import REPO, small_recipe
from safetensors.torch import load_file

from curricurun.engine.checkpoint import latest_checkpoint

CURRICULUM = [
    {"name": "progressive_resolution", "mode": "steps", "full_resolution": 28, "steps": [[0.3, 16], [0.75, 20]]}
]


def reliability_recipe(directory: Path, processes: int) -> Path:
    """40 steps of global batch 16 (one epoch) through two resolution stages, EMA, a checkpoint every 5 steps
    (2 kept, so pruning runs), a log line every 5 (``metrics.jsonl`` appears at step 5: training has begun)."""
    return small_recipe(
        directory,
        name=f"reliability-{processes}",
        batch={"per_device": 8 // processes, "accumulation": 2},
        curriculum=CURRICULUM,
        training={
            "epochs": 1,
            "log_every_steps": 5,
            "eval": {"every_epochs": 1},
            "checkpoint": {"every_steps": 5, "keep_last": 2},
            "ema": {"decay": 0.9, "schedule": "threshold"},
        },
    )


def command(args: list[str], processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "curricurun", *args]
    port = str(29500 + (os.getpid() + random.randrange(400)) % 1000)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    return [*launcher, "--master_port", port, "-m", "curricurun", *args]


def start(args: list[str], processes: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command(args, processes), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def kill9(process: subprocess.Popen) -> None:
    """SIGKILL the launcher and every descendant (torchrun's workers run in sessions of their own)."""
    try:
        family = [*psutil.Process(process.pid).children(recursive=True), psutil.Process(process.pid)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.communicate()


def wait_for(predicate, process: subprocess.Popen, timeout: float = 120.0, poll: float = 0.0005) -> bool:
    """Poll ``predicate`` until it holds (True) or the process ended (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return bool(predicate())
        time.sleep(poll)
    raise AssertionError("timed out waiting for the run")


def writing_checkpoint(run_dir: Path):
    return lambda: run_dir.is_dir() and any(name.startswith(".tmp-") for name in os.listdir(run_dir))


def training_started(run_dir: Path):
    return lambda: (run_dir / "metrics.jsonl").exists()


def final_state(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Model, EMA and optimizer tensors of the newest checkpoint, flattened by name."""
    path = latest_checkpoint(run_dir)
    names = [name for name in ("model.safetensors", "ema.safetensors") if (path / name).exists()]
    state = {name: load_file(str(path / name)) for name in names}
    optimizer = torch.load(path / "optimizer.pt", weights_only=True)
    state["optimizer.pt"] = {
        f"{index}.{key}": value
        for index, entries in optimizer["state"].items()
        for key, value in entries.items()
        if isinstance(value, torch.Tensor)
    }
    return state


def bitwise_equal(left: Path, right: Path) -> bool:
    a, b = final_state(left), final_state(right)
    return a.keys() == b.keys() and all(
        a[file].keys() == b[file].keys() and all(torch.equal(a[file][k], b[file][k]) for k in a[file]) for file in a
    )


def snapshot(run_dir: Path) -> dict[str, str]:
    """Every file of a run directory by relative path -> sha256 (to show a refused resume changed nothing)."""
    return {
        str(file.relative_to(run_dir)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(run_dir.rglob("*"))
        if file.is_file()
    }
