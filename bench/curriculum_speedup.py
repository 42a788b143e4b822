"""Curriculum speed-up: does EfficientTrain++ reach the full-size baseline's accuracy sooner, in wall-clock time?

Arms, all from ``recipes/efficienttrain_pp_fashion_mnist.yaml`` through ``--set`` overrides and curricurun's own
``train()`` (timm ``test_resnet``, Fashion-MNIST, batch 128, AdamW, LR cosine indexed by compute):

- ``baseline``: N epochs at the full 28 px, no curriculum, RandAugment fixed at m = 9 (ET++'s last stage).
- ``et++``: the recipe: ET++'s table scaled to a 28-px base (B = 12, 12, 20×4, 28×4 per 10% of compute) and
  RandAugment m = 0..9, on a budget of 2/3·N equivalent full-size epochs (ET++'s 200 vs 300, research §4).
- ``gentle``: ET++'s ConvNeXt table (B = 20×6, 28×4: it starts at 20/28 = 0.71 of full size), same budget.
- positive control, labelled as such: the same images served at 56 px (bilinear up-sampling of the 28-px originals,
  written once as IDX files, so both arms read the same 56-px images and augment them at 56 px), ``baseline-56``
  vs ``et++-56`` (B = 24, 24, 40×4, 56×4). The images hold nothing above 28 px, so the 40-px stages lose nothing
  and the 24-px ones little, and at 56 px the model, not the loader, dominates a step: here the curriculum should
  pay, and if it does not the bench itself is broken.
- with ``--replay``: ``et++ +replay``, the ``et++`` arm with ET++'s replay buffer (replay ×4 in stages 0-1, ×2 in
  2-5, from buffers holding the reference's share of each stage's steps: 1920/33,974 and 256/12,231).

Every arm runs once per seed; the order rotates by one arm each seed, so slow drift of the machine hits every arm.

Timing. An optimizer step post-hook stamps the end of every step; ``Reporter.start`` (called just before the
loop) marks time 0; evaluation is timed by wrapping the engine's ``evaluate`` and its time is subtracted, so the
x-axis is training time only (data loading, forward, backward, step, logging). The last checkpoint is written
after the last stamp. A step's time is the span between two stamps; a stage's time per step is the median over
its steps. Speed fidelity: that median over the same arm's full-size median, against the pixel ratio (B/full)².

Floor. After the runs the bench times the two parts of a step separately at every size: the model (forward,
backward, AdamW step on a random batch) and the loader (transform and collate of one batch, RandAugment at
m = 5) so a stage that misses its pixel ratio shows where the floor comes from. With ``--num-workers 1`` (default)
loading overlaps compute, so a step costs about max(model, loader).

Time to accuracy. Each arm is compared with its group's baseline of the same seed: the target is that
baseline's final top-1; the time to reach it is interpolated linearly between the two evaluations that bracket
the first crossing ("never" if no evaluation reaches it); speed-up = baseline's time / arm's time.

    make bench     # runs bench/engine_overhead.py, then this with its defaults (about 25 min on 2 quiet cores)
    .venv/bin/python bench/curriculum_speedup.py --epochs 3 --seeds 3 --replay
    .venv/bin/python bench/curriculum_speedup.py --epochs 1 --seeds 1 --max-train-samples 1280 --eval-samples 200
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "efficienttrain_pp_fashion_mnist.yaml"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
BATCH = 128
FLOOR_MAGNITUDE = 5.0
FIDELITY_TOLERANCE = 0.10
MAX_OTHER_LOAD = 0.05  # cores busy with other work above which the times are not trusted (engine_overhead.py)
WARMUP_SHARE = 0.05  # LR warm-up of every arm: 5% of the baseline's steps, in compute-steps (same compute for all)
# Replay buffer as a share of one stage's steps in _ET_pp_wReplay_main_res50.py (research/efficienttrain.md §3):
# 1920 batches over the 33,974 steps of a 96-px stage, 256 over the 12,231 steps of a 160-px stage.
REPLAY_TIMES = (4, 4, 2, 2, 2, 2, 1, 1, 1, 1)
UPSAMPLED = "upsampled"  # placeholder in the 56-px arms' overrides for the folder of up-sampled IDX files
REPLAY_SHARE = {4: 1920 / 33_974, 2: 256 / 12_231}


@dataclass(frozen=True)
class Arm:
    """One training configuration: its overrides of the ET++ recipe and the baseline it is measured against."""

    name: str
    group: str
    baseline: str
    image_size: int
    overrides: tuple[str, ...]
    replay: bool = False


def select_arms(arms: list[Arm], names: set[str]) -> list[Arm]:
    """The named arms and the baselines they are measured against, in the usual order."""
    unknown = names - {arm.name for arm in arms}
    if unknown:
        raise SystemExit(f"--arms: unknown {sorted(unknown)}; arms are {[arm.name for arm in arms]}")
    needed = names | {arm.baseline for arm in arms if arm.name in names}
    return [arm for arm in arms if arm.name in needed]


def make_arms(epochs: float, with_replay: bool, include_diagnostics: bool = False) -> list[Arm]:
    budget = f"training.budget_epochs={2 * epochs / 3:.6g}"
    full_size = ("curriculum=[]", "training.budget_epochs=null", f"training.epochs={epochs:g}")
    fixed_m9 = ("data.augment.randaugment_magnitude=9",)
    at_56 = (f"data.path={{{UPSAMPLED}}}", "data.image_size=56")  # the folder is filled in by main()
    base_56 = ("curriculum.0.base_resolution=56", "curriculum.0.size_increment=8")
    arms = [
        Arm("baseline", "28 px", "baseline", 28, full_size + fixed_m9),
        Arm("et++", "28 px", "baseline", 28, (budget,)),
        Arm("gentle", "28 px", "baseline", 28, (budget, "curriculum.0.schedule=et++_convnext")),
        Arm("baseline-56", "56 px (positive control)", "baseline-56", 56, at_56 + full_size + fixed_m9),
        Arm("et++-56", "56 px (positive control)", "baseline-56", 56, at_56 + base_56 + (budget,)),
        # Diagnostics of the positive control (run them with --arms): the ConvNeXt table that never goes below
        # 40 of 56 px (nothing of the 28-px content lost), ET++ given the baseline's whole compute, and the
        # time-matched baseline (full size for 2/3·N epochs): does the curriculum beat equal time at full size?
        Arm(
            "gentle-56",
            "56 px (positive control)",
            "baseline-56",
            56,
            at_56 + base_56 + (budget, "curriculum.0.schedule=et++_convnext"),
        ),
        Arm(
            "et++-56 =N",
            "56 px (positive control)",
            "baseline-56",
            56,
            at_56 + base_56 + (f"training.budget_epochs={epochs:g}",),
        ),
        Arm(
            "baseline-56 2/3",
            "56 px (positive control)",
            "baseline-56",
            56,
            at_56 + full_size[:2] + (f"training.epochs={2 * epochs / 3:.6g}",) + fixed_m9,
        ),
    ]
    diagnostics = {"gentle-56", "et++-56 =N", "baseline-56 2/3"}
    if with_replay:
        arms.append(Arm("et++ +replay", "28 px", "baseline", 28, (budget,), replay=True))
    if not include_diagnostics:
        arms = [arm for arm in arms if arm.name not in diagnostics]
    return arms


@dataclass
class RunRecord:
    """What one run measured. Times are training seconds (evaluation excluded) since the loop started."""

    arm: str
    seed: int
    position: int
    total_steps: int
    step_seconds: list[float]
    step_sides: list[int]
    evals: list[tuple[int, float, float]]  # (step, training seconds, top-1)
    eval_seconds: float
    other_load: float | None
    replay_buffers: list[int] = field(default_factory=list)
    replay_times_by_side: dict[int, int] = field(default_factory=dict)

    @property
    def final_top1(self) -> float:
        return self.evals[-1][2]

    @property
    def train_seconds(self) -> float:
        return sum(self.step_seconds)


class RunClock:
    """Stamps the loop start (``Reporter.start``), the end of every optimizer step and each evaluation's span."""

    def __init__(self):
        self.start: float | None = None
        self.steps: list[float] = []
        self.evals: list[tuple[float, float]] = []

    @contextlib.contextmanager
    def attached(self):
        import curricurun.engine.trainer as trainer
        from curricurun.engine.reporting import Reporter

        original_evaluate, original_start = trainer.evaluate, Reporter.start

        def timed_evaluate(*args, **kwargs):
            begin = time.perf_counter()
            try:
                return original_evaluate(*args, **kwargs)
            finally:
                self.evals.append((begin, time.perf_counter()))

        def started(reporter, *args, **kwargs):
            original_start(reporter, *args, **kwargs)
            self.start = time.perf_counter()

        handle = register_optimizer_step_post_hook(
            lambda optimizer, args, kwargs: self.steps.append(time.perf_counter())
        )
        trainer.evaluate, Reporter.start = timed_evaluate, started
        try:
            yield self
        finally:
            handle.remove()
            trainer.evaluate, Reporter.start = original_evaluate, original_start

    def training_times(self) -> list[float]:
        """Training seconds at the end of each step: wall time since the start minus evaluations before it."""
        out, evals = [], sorted(self.evals)
        for stamp in self.steps:
            spent = sum(end - begin for begin, end in evals if end <= stamp)
            out.append(stamp - self.start - spent)
        return out


def write_upsampled_copy(folder: Path, train: int, test: int, side: int) -> None:
    """The first ``train`` / ``test`` Fashion-MNIST images, bilinearly up-sampled to ``side`` px, as raw IDX files."""
    import numpy as np
    import torch.nn.functional as F

    from curricurun.data.idx import load_idx_split

    for split, prefix, count in (("train", "train", train), ("test", "t10k", test)):
        images, labels = load_idx_split(FASHION_MNIST, split)
        pixels = torch.from_numpy(images[:count]).float()[:, None]
        bigger = F.interpolate(pixels, size=(side, side), mode="bilinear", align_corners=False)
        arrays = {
            "images-idx3": bigger.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy(),
            "labels-idx1": labels[:count],
        }
        for kind, array in arrays.items():
            header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header + array.astype(np.uint8).tobytes())


def load_arm_recipe(arm: Arm, seed: int, args, extra: tuple[str, ...] = ()):
    from curricurun.recipe import load_recipe

    warmup = max(1, round(WARMUP_SHARE * args.epochs * (args.max_train_samples // BATCH)))
    common = (
        f"seed={seed}",
        f"schedule.warmup_steps={warmup}",
        f"data.max_train_samples={args.max_train_samples}",
        f"data.max_eval_samples={args.eval_samples}",
        f"data.num_workers={args.num_workers}",
        "training.checkpoint={every_steps: 1000000000, every_epochs: null}",
    )
    overrides = [override.replace(f"{{{UPSAMPLED}}}", str(args.upsampled)) for override in arm.overrides]
    return load_recipe(RECIPE, [*overrides, *common, *extra])


def arm_schedule(recipe, args):
    from curricurun.commands.inspect_schedule.schedule import build_schedule

    return build_schedule(recipe, args.max_train_samples, 1, recipe.name or "bench")


def replay_overrides(schedule) -> tuple[tuple[str, ...], list[int], dict[int, int]]:
    """ET++'s replay lists with buffers sized as the reference's share of each stage's steps (at least 2), and the
    replay factor at each image size (the replay stages are the bandwidth stages, so each size has one)."""
    from curricurun.curriculum.low_frequency_crop import stage_index

    plan = schedule.plan
    counts = [0] * len(REPLAY_TIMES)
    times_by_side = {}
    for step in range(plan.total_steps):
        stage = stage_index(plan.compute_fraction_at(step), len(REPLAY_TIMES))
        counts[stage] += 1
        times_by_side[plan.states[step].bandwidth] = REPLAY_TIMES[stage]
    sizes = [
        0 if times == 1 else max(2, math.ceil(REPLAY_SHARE[times] * n))
        for times, n in zip(REPLAY_TIMES, counts, strict=True)
    ]
    setting = f"data.replay={{replay_times: {list(REPLAY_TIMES)}, buffer_size: {sizes}, chunks: 32}}"
    return (setting,), sizes, times_by_side


def run_once(arm: Arm, seed: int, position: int, args, scratch: Path) -> RunRecord:
    """Train one arm for one seed with the engine, timed by :class:`RunClock`."""
    from curricurun.engine.trainer import train

    if str(Path(__file__).parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).parent))
    from engine_overhead import OtherLoad  # other processes' CPU use, as bench/engine_overhead.py reports it

    recipe = load_arm_recipe(arm, seed, args)
    schedule = arm_schedule(recipe, args)
    extra, buffers, times_by_side = replay_overrides(schedule) if arm.replay else ((), [], {})
    every = max(1, round(schedule.plan.total_steps / args.evals))
    recipe = load_arm_recipe(arm, seed, args, (*extra, f"training.eval={{every_steps: {every}, every_epochs: null}}"))
    sides = [state.bandwidth or state.resolution or arm.image_size for state in schedule.plan.states]
    run_dir = Path(tempfile.mkdtemp(prefix=f"{arm.name.replace(' ', '_').replace('/', '_of_')}-{seed}-", dir=scratch))
    clock, load = RunClock(), OtherLoad()
    with clock.attached(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train(recipe, recipe.resolved, str(run_dir))
    if torch.get_num_threads() != args.threads:
        raise RuntimeError(f"a run changed torch's thread count from {args.threads} to {torch.get_num_threads()}")
    times = clock.training_times()
    durations = [times[0]] + [b - a for a, b in itertools.pairwise(times)]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["step"], times[r["step"] - 1], r["eval/top1"]) for r in records if "eval/top1" in r]
    return RunRecord(
        arm=arm.name,
        seed=seed,
        position=position,
        total_steps=schedule.plan.total_steps,
        step_seconds=durations,
        step_sides=sides,
        evals=evals,
        eval_seconds=sum(end - begin for begin, end in clock.evals),
        other_load=load.cores_used(),
        replay_buffers=buffers,
        replay_times_by_side=times_by_side,
    )


def crossing_time(evals: list[tuple[int, float, float]], target: float) -> float | None:
    """Training seconds when top-1 first reaches ``target``, linear between the bracketing evaluations."""
    previous = (0.0, 0.0)
    for _, seconds, top1 in evals:
        if top1 >= target:
            (t0, a0), (t1, a1) = previous, (seconds, top1)
            return t1 if a1 == a0 else t0 + (t1 - t0) * (target - a0) / (a1 - a0)
        previous = (seconds, top1)
    return None


def stage_medians(record: RunRecord) -> dict[int, tuple[int, float]]:
    """Side → (steps, median seconds per step); the first two steps of the run (allocations) are left out."""
    by_side: dict[int, list[float]] = {}
    for step, (side, seconds) in enumerate(zip(record.step_sides, record.step_seconds, strict=True)):
        if step >= 2:
            by_side.setdefault(side, []).append(seconds)
    return {side: (len(values), statistics.median(values)) for side, values in sorted(by_side.items())}


def summarise(arms: list[Arm], records: list[RunRecord], floor: list[dict]) -> dict:
    """Per arm: final accuracy, training time, time to the same-seed baseline's final accuracy, speed-up."""
    by = {(r.arm, r.seed): r for r in records}
    seeds = sorted({r.seed for r in records})
    summary = {}
    for arm in arms:
        runs = [by[(arm.name, s)] for s in seeds if (arm.name, s) in by]
        reach, speedups = [], []
        for run in runs:
            base = by.get((arm.baseline, run.seed))
            if base is None:
                reach.append(None)
                continue
            mine = crossing_time(run.evals, base.final_top1)
            theirs = crossing_time(base.evals, base.final_top1)
            reach.append(mine)
            if mine and theirs:
                speedups.append(theirs / mine)
        finals = [run.final_top1 for run in runs]
        summary[arm.name] = {
            "group": arm.group,
            "baseline": arm.baseline,
            "final_top1": finals,
            "final_top1_mean": statistics.fmean(finals),
            "final_top1_sd": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "train_seconds": [run.train_seconds for run in runs],
            "seconds_to_baseline_final": reach,
            "speedup_at_equal_accuracy": speedups,
            "stage_time_per_step": fidelity(arm, runs, floor),
        }
    return summary


def fidelity(arm: Arm, runs: list[RunRecord], floor: list[dict]) -> list[dict]:
    """Per stage size: median time per step over the seeds, its ratio to full size against the pixel ratio, and
    the floor's parts at that size: the model alone, and the loader's work per step (÷ replay_times with replay).

    ``bound`` names the larger part: with a loader worker a step costs about the larger of the two.
    """
    per_run = [stage_medians(run) for run in runs]
    sides = sorted({side for medians in per_run for side in medians})
    medians = {side: statistics.median(m[side][1] for m in per_run if side in m) for side in sides}
    full = medians.get(arm.image_size)
    parts = {row["side"]: row for row in floor if row["base"] == arm.image_size}
    rows = []
    for side in sides:
        pixels = (side / arm.image_size) ** 2
        ratio = medians[side] / full if full else float("nan")
        part = parts[side]
        loader = part["loader_ms"] / runs[0].replay_times_by_side.get(side, 1)
        rows.append(
            {
                "side": side,
                "pixel_ratio": pixels,
                "ms_per_step": 1000 * medians[side],
                "measured_ratio": ratio,
                "within_10pct": abs(ratio / pixels - 1) <= FIDELITY_TOLERANCE,
                "model_alone_ratio": part["model_ratio"],
                "model_alone_ms": part["model_ms"],
                "loader_ms_per_step": loader,
                "bound": "loader" if loader > part["model_ms"] else "model",
            }
        )
    return rows


def measure_floor(sides_by_base: dict[int, list[int]], args) -> list[dict]:
    """Model-only and loader-only time per batch at each size: where a stage's time per step comes from."""
    import timm
    import torch.nn.functional as F

    from curricurun.data import load_split
    from curricurun.data.sampler import SampleKey
    from curricurun.data.staged import StagedDataset, collate
    from curricurun.data.transforms import StageTransform

    model = timm.create_model("test_resnet", in_chans=1, num_classes=10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rows = []
    for base, sides in sorted(sides_by_base.items()):
        folder = FASHION_MNIST if base == 28 else args.upsampled
        data = load_split("idx", str(folder), "train", max_samples=4 * BATCH)
        dataset = StagedDataset(data, StageTransform(hflip=True), base)
        for side in sides:
            images, labels = torch.randn(BATCH, 1, side, side), torch.randint(0, 10, (BATCH,))
            model_times = []
            for _ in range(7):
                begin = time.perf_counter()
                F.cross_entropy(model(images), labels).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                model_times.append(time.perf_counter() - begin)
            bandwidth = None if side == base else side
            loader_times = []
            for repeat in range(3):
                keys = [SampleKey(i, None, FLOOR_MAGNITUDE, bandwidth, repeat * BATCH + i) for i in range(BATCH)]
                begin = time.perf_counter()
                collate([dataset[key] for key in keys])
                loader_times.append(time.perf_counter() - begin)
            rows.append(
                {
                    "base": base,
                    "side": side,
                    "pixel_ratio": (side / base) ** 2,
                    "model_ms": 1000 * statistics.median(model_times[2:]),
                    "loader_ms": 1000 * min(loader_times),
                }
            )
    for row in rows:
        full = next(r for r in rows if r["base"] == row["base"] and r["side"] == row["base"])
        row["model_ratio"] = row["model_ms"] / full["model_ms"]
    return rows


def print_report(arms: list[Arm], summary: dict, floor: list[dict], args) -> None:
    print()
    print(
        f"Fashion-MNIST, {args.max_train_samples} training images, top-1 on {args.eval_samples} test images;"
        f" baselines {args.epochs:g} epochs, curricula {2 * args.epochs / 3:.3g} equivalent epochs;"
        f" seeds {args.seeds}; torch threads {args.threads}, loader workers {args.num_workers}"
    )
    header = (
        f"{'arm':<14} {'group':<26} {'final top-1':>16} {'train s':>8}"
        f" {'s to baseline final (per seed)':>32}  speed-up (median over seeds that reach it)"
    )
    print(header)
    print("-" * len(header))
    for arm in arms:
        row = summary[arm.name]
        reach = ", ".join("never" if t is None else f"{t:.0f}" for t in row["seconds_to_baseline_final"])
        speedups = row["speedup_at_equal_accuracy"]
        speed = f"{statistics.median(speedups):.2f}×" if speedups else "-"
        if arm.name == arm.baseline:
            speed = "ref"
        elif speedups and len(speedups) < len(row["final_top1"]):
            speed += f" ({len(speedups)} of {len(row['final_top1'])} seeds)"
        final = f"{100 * row['final_top1_mean']:.2f} ± {100 * row['final_top1_sd']:.2f}"
        print(
            f"{arm.name:<14} {arm.group:<26} {final:>16} {statistics.fmean(row['train_seconds']):>8.1f}"
            f" {reach:>32}  {speed}"
        )
    print()
    print("speed fidelity: median time per step at each stage size / the same arm's full-size time, vs (B/full)²;")
    print("floor parts at that size, timed alone: the model, and the loader's work per step (÷ replay_times)")
    print(
        f"{'arm':<14} {'B':>4} {'pixel ratio':>12} {'ms/step':>9} {'measured':>9} {'within 10%':>11}"
        f" {'model alone':>12} {'model ms':>9} {'loader ms':>10} {'bound':>7}"
    )
    for arm in arms:
        for row in summary[arm.name]["stage_time_per_step"]:
            print(
                f"{arm.name:<14} {row['side']:>4} {row['pixel_ratio']:>12.3f} {row['ms_per_step']:>9.1f}"
                f" {row['measured_ratio']:>9.3f} {'yes' if row['within_10pct'] else 'NO':>11}"
                f" {row['model_alone_ratio']:>12.3f} {row['model_alone_ms']:>9.1f} {row['loader_ms_per_step']:>10.1f}"
                f" {row['bound']:>7}"
            )
    print()
    print(f"floor: the parts of a step timed alone (batch {BATCH}; loader = transform + collate, RandAugment m = 5)")
    print(f"{'base':>5} {'B':>4} {'pixel ratio':>12} {'model ms':>9} {'model ratio':>12} {'loader ms':>10}")
    for row in floor:
        print(
            f"{row['base']:>5} {row['side']:>4} {row['pixel_ratio']:>12.3f} {row['model_ms']:>9.1f}"
            f" {row['model_ratio']:>12.3f} {row['loader_ms']:>10.1f}"
        )


def plot(arms: list[Arm], records: list[RunRecord], summary: dict, floor: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({arm.group for arm in arms})
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    colours = dict(zip([arm.name for arm in arms], plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for axis, group in zip(axes[0], groups, strict=False):  # one group when --arms picks one
        for arm in [a for a in arms if a.group == group]:
            for index, run in enumerate(r for r in records if r.arm == arm.name):
                seconds = [t for _, t, _ in run.evals]
                top1 = [100 * a for _, _, a in run.evals]
                label = arm.name if index == 0 else None
                axis.plot(seconds, top1, marker=".", color=colours[arm.name], alpha=0.8, label=label)
            if arm.name == arm.baseline:
                mean = 100 * summary[arm.name]["final_top1_mean"]
                axis.axhline(mean, color=colours[arm.name], ls="--", lw=0.8, label=f"{arm.name} final (seed mean)")
        axis.set_title(f"{group}: top-1 vs training time (one line per seed)")
        axis.set_xlabel("training seconds (evaluation excluded)")
        axis.set_ylabel("test top-1 (%)")
        finals = [100 * summary[a.name]["final_top1_mean"] for a in arms if a.group == group]
        axis.set_ylim(max(0, min(finals) - 15), min(100, max(finals) + 3))
        axis.grid(alpha=0.3)
        axis.legend()
    axis = axes[1][0]
    for arm in arms:
        rows = summary[arm.name]["stage_time_per_step"]
        axis.scatter(
            [r["pixel_ratio"] for r in rows],
            [r["measured_ratio"] for r in rows],
            label=arm.name,
            color=colours[arm.name],
        )
    axis.scatter(
        [r["pixel_ratio"] for r in floor],
        [r["model_ratio"] for r in floor],
        facecolors="none",
        edgecolors="black",
        label="model alone (floor)",
    )
    line = [0, 1]
    axis.plot(line, line, color="black", lw=0.8, label="time ∝ pixels")
    axis.fill_between(line, [0, 1 - FIDELITY_TOLERANCE], [0, 1 + FIDELITY_TOLERANCE], color="grey", alpha=0.2)
    axis.set_title("speed fidelity: time per step vs pixel ratio (±10% band)")
    axis.set_xlabel("(B / full size)²")
    axis.set_ylabel("measured time per step / full size")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis = axes[1][1]
    labels = [f"{r['side']}/{r['base']}" for r in floor]
    positions = range(len(floor))
    axis.bar([p - 0.2 for p in positions], [r["model_ms"] for r in floor], width=0.4, label="model: fwd+bwd+step")
    axis.bar([p + 0.2 for p in positions], [r["loader_ms"] for r in floor], width=0.4, label="loader: one batch")
    axis.set_xticks(list(positions), labels)
    axis.set_title("floor: the parts of a step timed alone")
    axis.set_xlabel("B / base (px)")
    axis.set_ylabel(f"ms per batch of {BATCH}")
    axis.legend()
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=3, help="baseline epochs N; curricula get 2/3·N")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-train-samples", type=int, default=20_000)
    parser.add_argument("--eval-samples", type=int, default=4_000)
    parser.add_argument("--evals", type=int, default=8, help="evaluations per run, evenly spaced in steps")
    parser.add_argument("--arms", default="", help="comma-separated subset of arm names (default: all)")
    parser.add_argument("--replay", action="store_true", help="add the et++ arm with ET++'s replay buffer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one per core is quietest)")
    parser.add_argument("--num-workers", type=int, default=1, help="DataLoader workers (1: loading overlaps compute)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"Fashion-MNIST not found in {FASHION_MNIST}: run 'make data'")
    arms = make_arms(args.epochs, args.replay, include_diagnostics=bool(args.arms))
    if args.arms:
        arms = select_arms(arms, {name.strip() for name in args.arms.split(",")})
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"curriculum speed-up: {', '.join(arm.name for arm in arms)}; {args.seeds} seed(s), order rotating")
    records: list[RunRecord] = []
    with tempfile.TemporaryDirectory(prefix="curricurun-speedup-") as scratch:
        args.upsampled = Path(scratch) / "fashion-mnist-56"
        args.upsampled.mkdir()
        if any(arm.image_size == 56 for arm in arms):
            write_upsampled_copy(args.upsampled, max(args.max_train_samples, 4 * BATCH), args.eval_samples, 56)
        for index in range(args.seeds):
            order = arms[index % len(arms) :] + arms[: index % len(arms)]
            for position, arm in enumerate(order):
                record = run_once(arm, index, position, args, Path(scratch))
                records.append(record)
                load = "n/a" if record.other_load is None else f"{record.other_load:.2f}"
                print(
                    f"seed {index} {arm.name:<14} {record.total_steps:>6} steps  train {record.train_seconds:7.1f} s"
                    f"  eval {record.eval_seconds:5.1f} s  final top-1 {100 * record.final_top1:.2f}%"
                    f"  other load {load} cores",
                    flush=True,
                )
        sides_by_base: dict[int, set[int]] = {}
        for arm in arms:
            for record in (r for r in records if r.arm == arm.name):
                sides_by_base.setdefault(arm.image_size, set()).update(record.step_sides)
        floor = measure_floor({base: sorted(sides) for base, sides in sides_by_base.items()}, args)
    summary = summarise(arms, records, floor)
    print_report(arms, summary, floor, args)
    stem = "curriculum_speedup" + ("_replay" if args.replay else "") + ("_subset" if args.arms else "")
    png, report = args.out / f"{stem}.png", args.out / f"{stem}.json"
    plot(arms, records, summary, floor, png)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    payload = {"settings": settings, "summary": summary, "floor": floor, "runs": [asdict(r) for r in records]}
    report.write_text(json.dumps(payload, indent=1))
    loads = [r.other_load for r in records if r.other_load is not None]
    if loads and statistics.fmean(loads) > MAX_OTHER_LOAD:
        print(
            f"WARNING: other processes kept {statistics.fmean(loads):.2f} cores busy on average during the runs;"
            " the times above are not reliable: rerun on an idle machine"
        )
    print(f"\nplot: {png}\nresults: {report}")


if __name__ == "__main__":
    main()
