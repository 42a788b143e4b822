"""Engine overhead: curricurun's ``train()`` against the minimal Accelerate loop a user would write by hand.

Both arms train the same model (timm ``test_resnet``, 1 input channel, 10 classes) on the same data
(Fashion-MNIST train, 28 px, decoded uint8 images normalised to ``(x/255 − 0.5)/0.5``), with batch 128,
AdamW, no curriculum, no evaluation, no augmentation, ``num_workers`` 0, in one process with the same
``torch.set_num_threads``. The goal (issue "engine overhead"): engine throughput ≥ 0.98 of the hand loop's.

Method: a whole run of an arm costs ``fixed + steps × per_step``; the fixed part (data loading, model
building, Accelerate set-up, the final checkpoint ``train()`` always writes) differs between the arms and
says nothing about the loop. Each round therefore times a run of N steps and a run of 2N steps of each
arm, and ``(t(2N) − t(N)) / N`` is the arm's steady-state step time: everything that recurs per step
counts (sampling, per-sample transform, collate, forward/backward/step, the engine's LR/WD writes, seeding,
logging every ``log_every_steps``), nothing paid once does. Arms alternate (the first arm swaps every
round) so machine drift hits both; the result is the median over rounds of engine / hand-written.

    make bench                                         # = .venv/bin/python bench/engine_overhead.py
    .venv/bin/python bench/engine_overhead.py --steps 100 --rounds 5 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
MODEL = "test_resnet"
BATCH = 128
LR, WEIGHT_DECAY = 2e-3, 0.05
LOG_EVERY_STEPS = 50  # the engine's default
GOAL = 0.98


def engine_recipe(total_steps: int):
    """The bench recipe: no curriculum, evaluation off, no periodic checkpoint (only the final one)."""
    from curricurun.recipe import recipe_from_dict

    return recipe_from_dict(
        {
            "name": "engine-overhead",
            "seed": 0,
            "setup": {"name": "classification", "model": MODEL},
            "data": {"source": "idx", "path": FASHION_MNIST, "eval_split": None, "image_size": 28},
            "batch": {"per_device": BATCH},
            "optim": {"name": "adamw", "lr": LR, "weight_decay": WEIGHT_DECAY},
            "schedule": {"shape": "constant"},
            "training": {
                "steps": total_steps,
                "log_every_steps": LOG_EVERY_STEPS,
                "eval": {"every_epochs": None},
                "checkpoint": {"every_steps": 10**9},
            },
        },
        source="bench/engine_overhead.py",
    )


def run_engine(recipe, steps: int, output_dir: Path) -> None:
    """``train()`` for ``steps`` steps; its console output (and so rich's live bar) goes to a buffer."""
    from curricurun.engine.trainer import train

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train(recipe, recipe.resolved, str(output_dir), stop_after_steps=steps)


class NormalisedImages(Dataset):
    """What a user writes over the decoded images: uint8 → ``(x/255 − 0.5)/0.5``, the engine's default."""

    def __init__(self, split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.split.image(index).float().div_(255.0).sub_(0.5).div_(0.5), self.split.label(index)


def run_hand_written(steps: int, seed: int = 0) -> None:
    """The minimal hand-written Accelerate loop: prepare, then forward, backward, step, zero_grad."""
    import timm
    from accelerate import Accelerator

    from curricurun.data import load_split

    accelerator = Accelerator(cpu=True)
    split = load_split("idx", FASHION_MNIST, "train")
    torch.manual_seed(seed)
    model = timm.create_model(MODEL, pretrained=False, in_chans=1, num_classes=10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    model, optimizer = accelerator.prepare(model, optimizer)
    dataset = NormalisedImages(split)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=RandomSampler(dataset), drop_last=True)
    model.train()
    done = 0
    while done < steps:
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if done == steps:
                break


def timed(run: Callable[[], None], threads: int) -> float:
    """Seconds of one whole run, after a garbage collection; checks nothing changed the thread count."""
    gc.collect()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    if torch.get_num_threads() != threads:
        raise RuntimeError(f"a run changed torch's thread count from {threads} to {torch.get_num_threads()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="N: each round times N and 2N steps per arm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads, both arms")
    args = parser.parse_args()
    if not Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"Fashion-MNIST not found in {FASHION_MNIST}: run 'make data'")
    if 2 * args.steps > 60_000 // BATCH:
        raise SystemExit(f"--steps must be at most {60_000 // BATCH // 2}: 2N steps stay inside one epoch")
    torch.set_num_threads(args.threads)
    short, long = args.steps, 2 * args.steps
    recipe = engine_recipe(long)  # one plan for both run lengths: only stop_after_steps differs

    with tempfile.TemporaryDirectory(prefix="curricurun-bench-") as scratch:
        runs = {
            "engine": lambda steps: run_engine(recipe, steps, Path(scratch, f"engine-{steps}")),
            "hand-written": run_hand_written,
        }
        print(f"engine overhead: curricurun train() vs a hand-written Accelerate loop, {args.rounds} rounds")
        print(
            f"{MODEL} on Fashion-MNIST 28 px, batch {BATCH}, AdamW, no curriculum/eval/augmentation, "
            f"num_workers 0, torch threads {args.threads}"
        )
        print(
            f"per round and arm: whole runs of N={short} and 2N={long} steps; samples/s = {BATCH}·N / (t(2N) − t(N)),"
            " so start-up, data loading and the final checkpoint cancel out"
        )
        for name, run in runs.items():  # warm-up: imports, first-call initialisation, page cache
            timed(lambda run=run: run(5), args.threads)
            print(f"warm-up: {name} done")

        header = f"{'round':>5}  {'first':<12}  {'engine samples/s':>16}  {'hand-written samples/s':>22}  {'ratio':>6}"
        print(header)
        ratios, fixed = [], {name: [] for name in runs}
        for index in range(args.rounds):
            order = list(runs) if index % 2 == 0 else list(reversed(runs))
            seconds: dict[str, dict[int, float]] = {name: {} for name in runs}
            for steps in (short, long):
                for name in order:
                    seconds[name][steps] = timed(lambda name=name, steps=steps: runs[name](steps), args.threads)
            rate = {}
            for name in runs:
                per_step = (seconds[name][long] - seconds[name][short]) / short
                rate[name] = BATCH / per_step
                fixed[name].append(seconds[name][short] - short * per_step)
            ratio = rate["engine"] / rate["hand-written"]
            ratios.append(ratio)
            print(
                f"{index + 1:>5}  {order[0]:<12}  {rate['engine']:>16.1f}  {rate['hand-written']:>22.1f}  {ratio:>6.3f}"
            )

    median = statistics.median(ratios)
    print(
        "fixed cost per run (start-up, data, model; the engine's includes its final checkpoint), median: "
        + ", ".join(f"{name} {statistics.median(values):.2f} s" for name, values in fixed.items())
    )
    verdict = "met" if median >= GOAL else "NOT met"
    print(f"median throughput ratio engine / hand-written: {median:.3f} (goal >= {GOAL}: {verdict})")


if __name__ == "__main__":
    main()
