"""Shared helpers for engine tests: a small real-data recipe and a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
REPO = Path(__file__).resolve().parents[1]

# Threads for a test that runs the CLI alone while it waits: two serially (what the pose learning bars were
# measured with), one under pytest-xdist, where each worker has one core (tests/conftest.py).
SOLO_TEST_THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"

needs_fashion_mnist = pytest.mark.skipif(
    not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST IDX files missing: apt-get install dataset-fashion-mnist (make test does it)",
)


def small_recipe(tmp_path: Path, name: str = "small", **sections) -> Path:
    """A real-data recipe that trains in seconds: 640 Fashion-MNIST images, timm's test_resnet."""
    recipe = {
        "description": "engine test recipe",
        "seed": 1,
        "setup": {"name": "classification", "model": "test_resnet"},
        "data": {
            "source": "idx",
            "path": str(FASHION_MNIST),
            "image_size": 28,
            "max_train_samples": 640,
            "max_eval_samples": 200,
        },
        "batch": {"per_device": 16},
        "optim": {
            "name": "adamw",
            "lr": 0.002,
            "weight_decay": 0.05,
            "lr_scaling": {"rule": "linear", "reference_batch": 16},
        },
        "schedule": {"shape": "cosine", "warmup_steps": 5},
        "training": {
            "epochs": 2,
            "log_every_steps": 10,
            "eval": {"every_epochs": 1},
            "checkpoint": {"every_epochs": 1, "keep_last": 5},
        },
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(recipe.get(section), dict):
            recipe[section] = {**recipe[section], **values}
        else:
            recipe[section] = values
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_cli(
    args: list[str], processes: int = 1, env: dict[str, str] | None = None, timeout: int = 300, fresh: bool = False
):
    """Run ``curricurun`` through its entry point (``cli.run``): one process in this one, more as ranks forked
    from this one; ``fresh`` asks for new interpreters instead (``python -m curricurun``, ``torchrun`` for more
    than one process), as a user starts them.

    Each fresh interpreter spends ~5 s importing torch, timm and the engine (two ranks at once on two cores, after
    torchrun's own ~2 s). In-process and forked runs skip that and still see what a subprocess would:
    ``OMP_NUM_THREADS`` as torch's thread count, the environment, the working directory, Accelerate's process state
    reset (a recipe may ask for another precision than the last one); forked ranks get the environment torchrun
    gives its workers and form the same gloo world (tests/test_forked_world.py checks it against torchrun's).
    """
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    fresh = fresh or "PYTHONPATH" in (env or {})  # a plugin on the path: only a new interpreter discovers it
    if processes == 1 and not fresh:
        result = _run_in_this_process(args, full_env)
        command = ["curricurun", *args]
    elif not fresh:
        result = _run_forked_ranks(args, full_env, processes, timeout)
        command = ["curricurun (forked ranks)", *args]
    else:
        command = [sys.executable, "-m", "curricurun", *args]
        if processes > 1:
            command[2:3] = ["torch.distributed.run", "--nproc_per_node", str(processes),
                            "--master_port", str(29500 + os.getpid() % 1000), "-m", "curricurun"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=full_env, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}"
        )
    return result


def _run_in_this_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    import contextlib
    import io

    import torch

    from curricurun import cli

    saved_env, saved_cwd, saved_threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        _enter_run_environment(env, REPO, int(env["OMP_NUM_THREADS"]))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.run(list(args))
    finally:
        _enter_run_environment(saved_env, saved_cwd, saved_threads)
    return subprocess.CompletedProcess(["curricurun", *args], code, out.getvalue(), err.getvalue())


def _enter_run_environment(env: dict[str, str], cwd, threads: int) -> None:
    """What a new process would start with: this environment, directory and thread count, and no Accelerate state
    left from an earlier run (a recipe may ask for another precision than the last one)."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    torch.set_num_threads(threads)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_forked(args: list[str], env: dict[str, str] | None = None, processes: int = 1, timeout: int = 300):
    """The CLI in ``processes`` forked processes, whatever its exit code: for tests of failures, whose output
    must be everything the process and its loader workers write to stdout/stderr (file descriptors 1 and 2),
    as a fresh ``python -m curricurun`` would show it, without its interpreter start-up."""
    return _run_forked_ranks(args, {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, processes, timeout)


def _run_forked_ranks(args: list[str], env: dict[str, str], processes: int, timeout: int):
    """``processes`` ranks forked from this interpreter, each with torchrun's worker environment (RANK,
    LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR/PORT; none for a single process), output to files; as
    torchrun, the first rank to fail stops the others, and the world's exit code is that failure's."""
    import shutil
    import signal
    import tempfile
    import time

    logs, port = Path(tempfile.mkdtemp(prefix="curricurun-ranks-")), _free_port()
    ranks = {}
    for rank in range(processes):
        world = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(processes),
                 "LOCAL_WORLD_SIZE": str(processes), "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(port)}  # fmt: skip
        world = world if processes > 1 else {}
        pid = os.fork()
        if pid == 0:  # the rank: never returns into pytest
            os._exit(_rank_main(args, {**env, **world}, logs / f"out{rank}", logs / f"err{rank}"))
        ranks[pid] = rank
    code, deadline = 0, time.monotonic() + timeout
    while ranks:
        if time.monotonic() >= deadline:
            code = code or 124
        for pid in list(ranks):  # only our ranks: never reap another child of this interpreter
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                ranks.pop(pid)
                code = code or os.waitstatus_to_exitcode(status)
        if code:  # stop the rest, as torchrun does when a worker fails
            for other in ranks:
                os.kill(other, signal.SIGKILL)
            for other in list(ranks):
                os.waitpid(other, 0)
            ranks.clear()
        time.sleep(0.01)
    read = [(logs / f"{kind}{rank}").read_text() for kind in ("out", "err") for rank in range(processes)]
    shutil.rmtree(logs, ignore_errors=True)
    stdout, stderr = "".join(read[:processes]), "".join(read[processes:])
    return subprocess.CompletedProcess(["curricurun", *args], code, stdout, stderr)


def _rank_main(args: list[str], env: dict[str, str], out: Path, err: Path) -> int:
    """One forked rank: its environment, its own stdout/stderr files, a fresh Accelerate state, ``cli.run``."""
    import io
    import traceback

    try:
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        from curricurun import cli

        _enter_run_environment(env, REPO, int(env["OMP_NUM_THREADS"]))
        code = cli.run(list(args))
    except BaseException:  # noqa: BLE001 (the rank reports everything and exits; nothing returns into pytest)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code if isinstance(code, int) else 1
