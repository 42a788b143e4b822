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


def run_cli(args: list[str], processes: int = 1, env: dict[str, str] | None = None, timeout: int = 300):
    """Run ``curricurun`` in fresh processes (torchrun for more than one), as a user would."""
    if processes == 1:
        command = [sys.executable, "-m", "curricurun", *args]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(processes),
            "--master_port",
            str(29500 + os.getpid() % 1000),
            "-m",
            "curricurun",
            *args,
        ]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=full_env, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}"
        )
    return result
