"""How deep should the training DataLoader prefetch? ``prefetch_factor`` 1 / 2 / 4, measured side by side.

The engine's loader (curricurun/engine/device.py ``loader_options``) feeds an accelerator: while the GPU runs a step
the host process only waits. This stands a ``time.sleep`` of a varying length in for that step (uniform between
``--step-ms`` ÷ 2 and × 1.5, seeded, the same sequence for every arm) and consumes ``--batches`` batches of the
``imagenet`` pipeline at 224 px (ET++'s order, RandAugment m 9) from the 256 photo JPEGs of ``make gpu-wheels``,
with ``--workers`` workers. Arms alternate round by round; each cell is the median over rounds of images/s.

``persistent_workers`` is not measured: the engine makes one training iterator for the whole run (its batch sampler
spans every step), so the workers would only outlive the last step; evaluation builds a new DataLoader each time,
where the flag cannot carry workers over either.

    .venv/bin/python bench/loader_prefetch.py            # ~2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


class Photos(Dataset):
    def __init__(self, root: Path, count: int):
        from curricurun.data import pipelines
        from curricurun.data.sources import ImageClassificationData

        files = sorted(root.glob("train/*/*.JPEG"))
        names = sorted({file.parent.name for file in files})
        labels = np.array([names.index(file.parent.name) for file in files], dtype=np.int64)
        self.data = ImageClassificationData(labels, len(names), 3, names, str(root), paths=[str(f) for f in files])
        self.pipeline, self.count = pipelines.build({"name": "imagenet"}), count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.pipeline.train_sample(self.data, index % len(self.data), 224, 9.0, None, index)


def images_per_s(dataset: Dataset, prefetch: int, workers: int, batch: int, steps_s: list[float]) -> float:
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, prefetch_factor=prefetch)
    iterator = iter(loader)
    next(iterator)  # worker start-up and the first batch are outside the timing
    start = time.perf_counter()
    for seconds in steps_s:
        next(iterator)
        time.sleep(seconds)  # the accelerator's step: the host waits
    rate = batch * len(steps_s) / (time.perf_counter() - start)
    del iterator, loader
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=REPO / ".gpu-wheels" / "photos")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--step-ms", type=float, default=0.0, help="mean step; default: the loader's own batch time")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.photos
        if not (root / "train").is_dir():
            from photo_folder import write_photo_folder

            root = Path(scratch) / "photos"
            write_photo_folder(root, 256)
        dataset = Photos(root, args.batch * (args.batches + 1 + args.workers * 4))
        mean_s = args.step_ms / 1000 or args.batch / images_per_s(dataset, 2, args.workers, args.batch, [0.0] * 8)
        draw = random.Random(0)
        steps_s = [draw.uniform(0.5, 1.5) * mean_s for _ in range(args.batches)]
        arms, rates = (1, 2, 4), {}
        for index in range(args.rounds):
            for prefetch in arms[index % 3 :] + arms[: index % 3]:
                rate = images_per_s(dataset, prefetch, args.workers, args.batch, steps_s)
                rates.setdefault(prefetch, []).append(rate)
    print(f"imagenet pipeline @224, {args.workers} workers, batch {args.batch}, {args.batches} batches, step"
          f" {1000 * mean_s:.0f} ms ± 50 % (sleep), {args.rounds} rounds: images/s (median; rounds)")  # fmt: skip
    for prefetch in arms:
        values = ", ".join(f"{value:.1f}" for value in rates[prefetch])
        print(f"prefetch_factor {prefetch}: {statistics.median(rates[prefetch]):7.1f}  ({values})")


if __name__ == "__main__":
    main()
