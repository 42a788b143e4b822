"""Generate an evaluation sample set in batches: the same images on any number of processes, resumable.

Sample ``i`` has class ``labels[i]`` (class by class with ``--per-class``, VAR's 50-per-class protocol, VAR#38).
Batch ``b`` holds samples ``[b·B, (b+1)·B)`` and is generated with its own seed ``seed·1_000_003 + b``, so its
images depend on nothing but ``b``: process ``r`` of ``W`` makes the batches with ``b % W == r``, and 1 or N
processes write the same files. Each batch is saved as ``batch-NNNNNN.npy`` in a work directory next to the
output; a killed run skips the batches already there. The final ``.npz`` is written by process 0 with fixed zip
timestamps, so two runs with the same seed give byte-identical files (same sha256).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from curricurun.metrics.npz import to_uint8_nhwc

SEED_STRIDE = 1_000_003


def class_labels(num_classes: int, per_class: int | None, num_samples: int | None) -> list[int]:
    """Class by class (``per_class`` each) or ``num_samples`` cycling through the classes."""
    if per_class is not None:
        return [c for c in range(num_classes) for _ in range(per_class)]
    return [i % num_classes for i in range(num_samples or 0)]


def batch_seed(seed: int, batch: int) -> int:
    return seed * SEED_STRIDE + batch


def batch_path(work_dir: Path, batch: int) -> Path:
    return work_dir / f"batch-{batch:06d}.npy"


def save_batch(path: Path, images: np.ndarray) -> None:
    """Atomic: a kill during the write leaves no batch file, so the batch is made again on resume."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        np.save(handle, images)
    os.replace(temporary, path)


def generate_batches(
    make: Callable[[list[int], int], torch.Tensor],
    labels: list[int],
    batch_size: int,
    seed: int,
    work_dir: Path,
    rank: int = 0,
    world_size: int = 1,
    advance: Callable[[int], None] | None = None,
) -> int:
    """Make this process's missing batches; ``make(classes, seed)`` returns images [n, C, H, W] in [0, 1].

    Returns the number of batches in the whole set. ``advance(n)`` reports progress (samples done or found).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    count = -(-len(labels) // batch_size)
    for batch in range(rank, count, world_size):
        classes = labels[batch * batch_size : (batch + 1) * batch_size]
        path = batch_path(work_dir, batch)
        if not path.is_file():
            with torch.no_grad():
                images = make(classes, batch_seed(seed, batch))
            save_batch(path, to_uint8_nhwc(images))
        if advance is not None:
            advance(len(classes))
    return count


def gather_batches(work_dir: Path, count: int) -> np.ndarray:
    """All batches in order as one uint8 NHWC array."""
    return np.concatenate([np.load(batch_path(work_dir, b), allow_pickle=False) for b in range(count)])


def claim_work_dir(work_dir: Path, description: dict, is_main: bool, wait: Callable[[], None]) -> None:
    """Keep a work directory for one request only: resuming with other settings would mix two sample sets.

    Process 0 records ``description`` (seed, batch size, sample count, sampling options, weights) on first use;
    every process then checks it, and a mismatch is one line naming the differing settings and the directory.
    """
    import json

    from curricurun.errors import UserError

    record = work_dir / "request.json"
    if is_main and not record.is_file():
        work_dir.mkdir(parents=True, exist_ok=True)
        temporary = record.with_name(f".{record.name}.tmp")
        temporary.write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, record)
    wait()
    stored = json.loads(record.read_text())
    differing = sorted(key for key in set(stored) | set(description) if stored.get(key) != description.get(key))
    if differing:
        raise UserError(
            f"--npz: {work_dir} holds batches made with other settings ({', '.join(differing)}); "
            "delete it or choose another --npz"
        )
