"""Engine overhead: curricurun's ``train()`` against the minimal Accelerate loop a user would write by hand.

Both arms train the same model (timm ``test_resnet``, 1 input channel, 10 classes) on the same data
(Fashion-MNIST train, 28 px, decoded uint8 images normalised to ``(x/255 − 0.5)/0.5``), with batch 128,
AdamW, no curriculum, no evaluation, no augmentation, ``num_workers`` 0, in one process with the same
``torch.set_num_threads``. The goal (issue "engine overhead"): engine throughput ≥ 0.98 of the hand loop's.

Method. A global optimizer step post-hook (``torch.optim.optimizer.register_optimizer_step_post_hook``)
stamps the time at the end of every optimizer step in both arms, without touching the engine. The time
between two stamps is one whole loop iteration: data loading, forward, backward, step, and whatever else
the loop does (the engine's LR/WD write, seeding, loss accumulation, logging). Start-up, data loading, model
building and the final checkpoint ``train()`` always writes lie outside the stamps. After
``WARMUP_STEPS`` steps, the stamps are cut into windows of ``log_every_steps`` (50) steps, so that every
window holds exactly one engine logging step; an arm's rate in a run is the median of its window rates,
which drops the short slow-downs a shared VM has. The arms alternate run by run, the first one swapping
every round, so drift hits both; the result is the median over rounds of engine / hand-written with a 90 %
bootstrap interval, and the goal counts as met or missed only when the whole interval lies on one side.

Threads. The default is one torch thread in both arms: on the 2-core VM this was written on, two threads
made a round's ratio vary by ±8 % (every stall of either core holds up torch's thread barrier), one thread
by ±2 %, and the goal needs about 1 %. The engine's extra cost is Python work per step, nearly independent
of the thread count, so the script also prints it in ms per step: divide by a step's time at another
thread count (``--threads 2``: about 58 ms for this model and batch) to get the overhead there.

    make bench                                         # = .venv/bin/python bench/engine_overhead.py
    .venv/bin/python bench/engine_overhead.py --threads 2 --rounds 16 --windows 3
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import itertools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import DataLoader, Dataset, RandomSampler

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
MODEL = "test_resnet"
BATCH = 128
LR, WEIGHT_DECAY = 2e-3, 0.05
LOG_EVERY_STEPS = 50  # the engine's default; also the window length, so each window logs once
WARMUP_STEPS = 10  # steps left out at the start of each run (first-iteration allocations)
STEPS_PER_EPOCH = 60_000 // BATCH  # Fashion-MNIST train; a run stays inside one epoch
GOAL = 0.98
MAX_OTHER_LOAD = 0.05  # cores busy with other work above which the numbers are not trusted


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


def run_hand_written(steps: int) -> None:
    """The minimal hand-written Accelerate loop: prepare, then forward, backward, step, zero_grad."""
    import timm
    from accelerate import Accelerator

    from curricurun.data import load_split
    from curricurun.engine.device import optimizer_options

    accelerator = Accelerator(cpu=True)
    split = load_split("idx", FASHION_MNIST, "train")
    torch.manual_seed(0)  # the recipe's seed: both arms start from the same weights
    model = timm.create_model(MODEL, pretrained=False, in_chans=1, num_classes=10)
    # The engine's optimizer options on CPU (foreach AdamW): the arms differ by the engine only.
    options = optimizer_options("adamw", cuda=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, **options)
    model, optimizer = accelerator.prepare(model, optimizer)
    dataset = NormalisedImages(split)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=RandomSampler(dataset), drop_last=True)
    model.train()
    for images, labels in itertools.islice(loader, steps):
        loss = F.cross_entropy(model(images), labels)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all processes, all cores), from Linux's /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """How busy other processes kept the CPU: machine busy time minus this process's and its children's CPU time.

    Children count once they have exited and been waited for (``os.times`` fields 2-3): DataLoader workers are,
    when their loader is closed at the end of a run, so call :meth:`cores_used` after the run's loader is gone.

    Two torch threads on two cores stall at every barrier when anything else runs, so a round measured
    beside other work is not a measurement of the loop; the bench prints this next to every round.
    """

    def __init__(self):
        self.available = Path("/proc/stat").exists()
        self.machine = busy_cpu_seconds() if self.available else 0.0
        self.own = sum(os.times()[:4])
        self.wall = time.perf_counter()

    def cores_used(self) -> float | None:
        """Average number of cores used by other processes since construction; None off Linux."""
        if not self.available:
            return None
        others = busy_cpu_seconds() - self.machine - (sum(os.times()[:4]) - self.own)
        return max(others, 0.0) / (time.perf_counter() - self.wall)


def step_stamps(run: Callable[[], None], threads: int) -> list[float]:
    """``perf_counter`` at the end of every optimizer step of one run; checks the thread count held."""
    stamps: list[float] = []
    gc.collect()
    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: stamps.append(time.perf_counter()))
    try:
        run()
    finally:
        handle.remove()
    if torch.get_num_threads() != threads:
        raise RuntimeError(f"a run changed torch's thread count from {threads} to {torch.get_num_threads()}")
    return stamps


def window_rates(stamps: list[float]) -> list[float]:
    """Samples/s in each window of ``LOG_EVERY_STEPS`` steps after the warm-up steps of a run."""
    kept = stamps[WARMUP_STEPS:]
    return [
        LOG_EVERY_STEPS * BATCH / (kept[start + LOG_EVERY_STEPS] - kept[start])
        for start in range(0, len(kept) - LOG_EVERY_STEPS, LOG_EVERY_STEPS)
    ]


def median_interval(values: list[float], resamples: int = 2000) -> tuple[float, float]:
    """90 % bootstrap interval of the median: how far the rounds' noise leaves the result uncertain."""
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples))
    return medians[resamples // 20], medians[resamples - 1 - resamples // 20]


def show_load(cores: float | None) -> str:
    return "n/a" if cores is None else f"{cores:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=2, help=f"timed windows of {LOG_EVERY_STEPS} steps per run")
    parser.add_argument("--rounds", type=int, default=10, help="each round runs both arms once")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, both arms (see the docstring)")
    args = parser.parse_args()
    if not Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"Fashion-MNIST not found in {FASHION_MNIST}: run 'make data'")
    steps = WARMUP_STEPS + args.windows * LOG_EVERY_STEPS + 1  # + 1: n windows need n·L + 1 stamps
    if args.windows < 1 or steps > STEPS_PER_EPOCH:
        raise SystemExit(f"--windows must be 1 to {(STEPS_PER_EPOCH - WARMUP_STEPS - 1) // LOG_EVERY_STEPS}")
    torch.set_num_threads(args.threads)
    recipe = engine_recipe(steps)

    print(f"engine overhead: curricurun train() vs a hand-written Accelerate loop, {args.rounds} rounds")
    print(
        f"{MODEL} on Fashion-MNIST 28 px, batch {BATCH}, AdamW, no curriculum/eval/augmentation, "
        f"num_workers 0, torch threads {args.threads}"
    )
    print(
        f"each run: {steps} steps; its samples/s = median over {args.windows} windows of {LOG_EVERY_STEPS} steps"
        f" (after {WARMUP_STEPS}), timed between optimizer steps, so start-up and the final checkpoint are out"
    )
    with tempfile.TemporaryDirectory(prefix="curricurun-bench-") as scratch:
        runs = {
            "engine": lambda length: run_engine(recipe, length, Path(tempfile.mkdtemp(dir=scratch))),
            "hand-written": run_hand_written,
        }
        for name, run in runs.items():  # warm-up: imports, first-call initialisation, page cache
            step_stamps(lambda run=run: run(5), args.threads)
            print(f"warm-up: {name} done")

        print(
            f"{'round':>5}  {'first':<12}  {'engine samples/s':>16}  {'hand-written samples/s':>22}  {'ratio':>6}"
            f"  {'other load (cores)':>18}"
        )
        ratios, extra_ms, hand_rates, whole_run = [], [], [], OtherLoad()
        for index in range(args.rounds):
            load = OtherLoad()
            order = list(runs) if index % 2 == 0 else list(reversed(runs))
            rate = {
                name: statistics.median(window_rates(step_stamps(lambda name=name: runs[name](steps), args.threads)))
                for name in order
            }
            ratios.append(rate["engine"] / rate["hand-written"])
            extra_ms.append(1000 * BATCH * (1 / rate["engine"] - 1 / rate["hand-written"]))
            hand_rates.append(rate["hand-written"])
            print(
                f"{index + 1:>5}  {order[0]:<12}  {rate['engine']:>16.1f}  {rate['hand-written']:>22.1f}"
                f"  {ratios[-1]:>6.3f}  {show_load(load.cores_used()):>18}"
            )

    others = whole_run.cores_used()
    if others is not None and others > MAX_OTHER_LOAD:
        print(
            f"WARNING: other processes kept {others:.2f} cores busy during the measurement; with "
            f"{args.threads} torch threads the rates above are not reliable: rerun on an idle machine"
        )
    print(
        f"engine time per step beyond the hand-written loop's, median: {statistics.median(extra_ms):.2f} ms"
        f" (a hand-written step takes {1000 * BATCH / statistics.median(hand_rates):.1f} ms here)"
    )
    median = statistics.median(ratios)
    low, high = median_interval(ratios)
    if low >= GOAL:
        verdict = "met"
    elif high < GOAL:
        verdict = "NOT met"
    else:
        verdict = "undecided at this noise level: rerun with more --rounds"
    print(
        f"median throughput ratio engine / hand-written: {median:.3f}, 90% interval {low:.3f} to {high:.3f}"
        f" (goal >= {GOAL}: {verdict}); rounds ranged {min(ratios):.3f} to {max(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
