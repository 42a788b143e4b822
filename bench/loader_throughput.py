"""Loader throughput on real JPEGs: curricurun's named pipelines against timm's create_transform, side by side.

Builds ≥ 1,000 JPEGs at ImageNet-typical sizes (500×375 / 375×500, quality 90) from scikit-image's photos
(tests/photo_folder.py), then measures images per second per core for each arm with one DataLoader worker per
core, alternating arms round by round and taking medians:

- ``decode``: PIL open + RGB decode only (the floor);
- ``timm@224``: PIL decode + ``timm.data.create_transform(224, is_training=True,
  auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic")`` (the loop a user would write);
- ``curricurun@224``: the ``imagenet`` pipeline at 224, m = 9 (ET++'s exact order);
- ``curricurun@B`` for the ET++ stages B = 96 / 160: exact order (RandAugment at 224, then Lanczos to B), and
  ``stage`` (crop straight to B with the reduced-scale JPEG decode, RandAugment at B: the labelled deviation).

Then whole training runs side by side: ``curricurun train`` (the ``imagenet`` pipeline, m = 9, timm's
``test_convnext``, batch 16, mixup off) against bench/plain_timm_loop.py (torchvision ``ImageFolder`` + timm's
transform + ``DataLoader`` with the same model, batch and workers), each stopped after two numbers of steps:
wall-clock and CPU (the process and its loader workers) per sample, start-up removed by the difference.

CPU per image is the workers' CPU time (user + system of the worker processes) over the images they made, so
start-up is excluded by differencing two run lengths. The machine may be shared with other jobs: read the
ratios, which are measured in the same rounds, not the absolute numbers. Run: ``python bench/loader_throughput.py``
(``--images``, ``--rounds``, ``--workers``).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the shared photo-folder builder

from photo_folder import write_photo_folder  # noqa: E402

from curricurun.data import load_split, pipelines  # noqa: E402


class _TimmFolder(Dataset):
    """What a plain timm loop does per image: open, convert('RGB'), timm's transform, seeded like ours."""

    def __init__(self, paths: list[str], transform) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        random.seed(index)
        np.random.seed(index)
        torch.default_generator.manual_seed(index)
        with open(self.paths[index], "rb") as file:
            return self.transform(Image.open(file).convert("RGB"))


class _Decode(_TimmFolder):
    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        with open(self.paths[index], "rb") as file:
            picture = Image.open(file).convert("RGB")
        return torch.zeros(1) if picture.size else torch.ones(1)


class _Pipeline(Dataset):
    def __init__(self, data, pipeline, bandwidth: int | None) -> None:
        self.data, self.pipeline, self.bandwidth = data, pipeline, bandwidth

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.pipeline.train_sample(self.data, index, 224, 9.0, self.bandwidth, index)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(dataset: Dataset, count: int, workers: int) -> tuple[float, float]:
    """Wall seconds and worker CPU seconds to load ``count`` images (workers end inside the call)."""
    indices = list(range(count))
    loader = DataLoader(
        dataset, batch_size=16, sampler=indices, num_workers=workers, collate_fn=lambda batch: len(batch)
    )
    cpu, start = _children_cpu(), time.perf_counter()
    for _ in loader:
        pass
    del loader  # joins the workers, so their CPU is counted
    return time.perf_counter() - start, _children_cpu() - cpu


def _arms(root: Path, paths: list[str]) -> dict[str, Dataset]:
    from timm.data import auto_augment, create_transform

    timm_transform = create_transform(
        224, is_training=True, auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic"
    )
    from curricurun.data.pipelines.randaugment import posterize_keeping_zero_bits

    for op in timm_transform.transforms[2].ops:  # Pillow 13: timm's own posterize raises at 0 bits
        if op.aug_fn is auto_augment.posterize:
            op.aug_fn = posterize_keeping_zero_bits
    data = load_split("local", str(root), "train")
    exact = pipelines.build({"name": "imagenet"})
    stage = pipelines.build({"name": "imagenet", "augment_at": "stage"})
    return {
        "decode": _Decode(paths, None),
        "timm@224": _TimmFolder(paths, timm_transform),
        "curricurun@224": _Pipeline(data, exact, None),
        "curricurun@160 exact": _Pipeline(data, exact, 160),
        "curricurun@96 exact": _Pipeline(data, exact, 96),
        "curricurun@160 stage": _Pipeline(data, stage, 160),
        "curricurun@96 stage": _Pipeline(data, stage, 96),
    }


_RECIPE = """description: bench/loader_throughput.py whole-run arm
seed: 0
setup: {{name: classification, model: test_convnext, label_smoothing: 0.1}}
data: {{source: local, path: {root}, eval_split: null, image_size: 224, num_workers: {workers},
        pipeline: {{name: imagenet, magnitude: 9}}}}
batch: {{global: {batch}}}
optim: {{name: adamw, lr: 1.0e-3, weight_decay: 0.05}}
schedule: {{shape: constant}}
training: {{epochs: 1, log_every_steps: 1000, eval: {{every_epochs: null}}, checkpoint: {{every_epochs: null}}}}
"""


def _timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (the process and every worker it waited for) of one command."""
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return time.perf_counter() - start, _children_cpu() - cpu


def _training_runs(root: Path, workers: int, batch: int, steps: tuple[int, int], rounds: int) -> None:
    """curricurun train vs the plain timm loop, alternated; per-sample costs from the two run lengths."""
    recipe = root / "bench.yaml"
    recipe.write_text(_RECIPE.format(root=root, workers=workers, batch=batch))
    bench = Path(__file__).resolve().parent
    arms = {
        "curricurun train": lambda n, out: [
            sys.executable, "-m", "curricurun", "train", str(recipe), "--output-dir", str(out), "--stop-after", str(n)
        ],
        "plain timm loop": lambda n, out: [
            sys.executable, str(bench / "plain_timm_loop.py"), str(root), str(n), str(workers), str(batch)
        ],
    }  # fmt: skip
    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(rounds):
        for name in list(arms) if round_ % 2 == 0 else list(reversed(arms)):
            runs = [_timed(arms[name](n, root / f"run-{round_}-{n}")) for n in steps]
            samples = (steps[1] - steps[0]) * batch
            wall[name].append((runs[1][0] - runs[0][0]) / samples)
            cpu[name].append((runs[1][1] - runs[0][1]) / samples)
    print(f"\nwhole training runs (test_convnext, batch {batch}, {workers} worker(s), steps {steps[1]} − {steps[0]})")
    print(f"{'arm':24s} {'wall ms/sample':>15s} {'CPU ms/sample':>14s}")
    for name in arms:
        print(f"{name:24s} {np.median(wall[name]) * 1e3:15.1f} {np.median(cpu[name]) * 1e3:14.1f}")
    ratio_wall = np.median(wall["curricurun train"]) / np.median(wall["plain timm loop"])
    ratio_cpu = np.median(cpu["curricurun train"]) / np.median(cpu["plain timm loop"])
    print(f"curricurun ÷ plain loop: wall {ratio_wall:.2f}, CPU {ratio_cpu:.2f} (≤ 1.0 is the goal)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--train-steps", type=int, nargs=2, default=(4, 36), help="the two run lengths (steps)")
    parser.add_argument("--train-rounds", type=int, default=3, help="0: skip the whole-run comparison")
    parser.add_argument("--train-only", action="store_true", help="only the whole-run comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        written = write_photo_folder(root, args.images, classes=8)
        paths = sorted(str(path) for path in written["train"])
        if args.train_only:
            return _training_runs(root, args.workers, 16, tuple(args.train_steps), args.train_rounds)
        arms = _arms(root, paths)
        short, long = args.images // 4, args.images
        cpu_per_image: dict[str, list[float]] = {name: [] for name in arms}
        rate: dict[str, list[float]] = {name: [] for name in arms}
        for round_ in range(args.rounds):
            order = list(arms) if round_ % 2 == 0 else list(reversed(arms))
            for name in order:
                wall_short, cpu_short = _run(arms[name], short, args.workers)
                wall_long, cpu_long = _run(arms[name], long, args.workers)
                cpu_per_image[name].append((cpu_long - cpu_short) / (long - short))
                rate[name].append((long - short) / max(wall_long - wall_short, 1e-9) / args.workers)
        print(f"{args.images} JPEGs (500×375 / 375×500, q90), {args.workers} worker(s), {args.rounds} rounds, medians")
        print(f"{'arm':24s} {'CPU ms/image':>13s} {'images/s/core':>14s} {'÷ timm@224 (CPU)':>17s}")
        timm_cpu = float(np.median(cpu_per_image["timm@224"]))
        for name in arms:
            cpu = float(np.median(cpu_per_image[name]))
            print(f"{name:24s} {cpu * 1e3:13.2f} {np.median(rate[name]):14.0f} {timm_cpu / cpu:17.2f}")
        base = float(np.median(cpu_per_image["curricurun@224"]))
        for name in ("curricurun@96 exact", "curricurun@96 stage"):
            print(f"CPU per image {name} ÷ curricurun@224: {float(np.median(cpu_per_image[name])) / base:.2f}")
        if args.train_rounds:
            _training_runs(root, args.workers, 16, tuple(args.train_steps), args.train_rounds)


if __name__ == "__main__":
    main()
