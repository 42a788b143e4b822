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
    """Run ``curricurun`` as a user would: ``torchrun`` for more than one process; one process runs in this one
    (``cli.run``, the same entry point, its output captured) unless ``fresh`` asks for a new interpreter.

    In-process saves each run the ~5 s a fresh interpreter spends importing torch, timm and the engine; the run
    still sees what a subprocess would: ``OMP_NUM_THREADS`` as torch's thread count, the environment, the working
    directory, and Accelerate's process state reset (a recipe may ask for another precision than the last one).
    """
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    fresh = fresh or "PYTHONPATH" in (env or {})  # a plugin on the path: only a new interpreter discovers it
    if processes == 1 and not fresh:
        result = _run_in_this_process(args, full_env)
        command = ["curricurun", *args]
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
    from accelerate.state import AcceleratorState, GradientState

    from curricurun import cli

    saved_env, saved_cwd, saved_threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(REPO)
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.run(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        torch.set_num_threads(saved_threads)
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return subprocess.CompletedProcess(["curricurun", *args], code, out.getvalue(), err.getvalue())
