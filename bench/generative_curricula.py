"""Do the generative curricula pay? Domain FID at EQUAL wall-clock, with and without each curriculum.

Arms: var_tiny with VAR's progressive scales vs all scales from step 0 (``curriculum: []``), and
pyramid_flow_tiny with the 1:2:1 stage mix of the released code vs 1:1:1. Each arm's seconds per step are
measured first by differencing two short runs (start-up removed), then every arm trains for the step count
that fills the same budget, for each seed, arms alternating. Samples (``--per-class`` per class, cfg 1.5) of the
checkpoints at 1/``--points`` .. all of the budget are scored by ``curricurun evaluate`` against the test split
with the demo classifier as the feature network (``runs/demo`` from ``make demo``; a 1-epoch demo is trained if
it is missing). The checkpoint at step ``s`` is placed at ``s`` × the arm's calibrated seconds per step.

Tokens processed are the schedule's own count (``inspect-schedule``'s plan, built as ``train`` builds it): VAR's
tokens per sample are the sum of ``p²`` over the scales trained at that step (14 of 130 for scales 1,2,3 of
var_tiny), times the batch, summed over the steps; Pyramid-Flow's are the latent tokens of the sample's stage
((side / patch)² = 4, 16, 64 for var 8, 16, 32 px), weighted by the stage mix. The table prints them, and
``bench/results/generative_curricula.png`` plots domain FID against wall-clock per arm.

    .venv/bin/python bench/generative_curricula.py --budget 120 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PNG = REPO / "bench" / "results" / "generative_curricula.png"
FASHION_MNIST_TRAIN = 60_000  # training images of the recipes' data (the plan's epoch length)
CLI = [sys.executable, "-m", "curricurun"]
ARMS = {
    "var progressive_scales": ("recipes/var_tiny.yaml", []),
    "var all scales": ("recipes/var_tiny.yaml", ["curriculum=[]"]),
    "pyramid_flow 1:2:1": ("recipes/pyramid_flow_tiny.yaml", []),
    "pyramid_flow 1:1:1": ("recipes/pyramid_flow_tiny.yaml", ["curriculum=[{name: stage_mixture, ratios: [1, 1, 1]}]"]),
}


def _sets(values: list[str]) -> list[str]:
    return [part for value in values for part in ("--set", value)]


def _run_sets(overrides: list[str], steps: int, seed: int, points: int) -> list[str]:
    every = max(1, steps // points)
    return [*overrides, f"seed={seed}", f"training.steps={steps}", f"training.eval.every_steps={steps}",
            f"training.checkpoint.every_steps={every}", f"training.checkpoint.keep_last={points + 1}",
            "schedule.warmup_steps=5"]  # fmt: skip


def full_tokens_per_sample(recipe) -> int:
    """Tokens of one full-size sample: VAR's whole scale pyramid, or Pyramid-Flow's last-stage latent grid."""
    if recipe.setup.name == "var":
        return sum(side * side for side in recipe.setup.patch_nums)
    return (recipe.data.image_size // recipe.setup.patch_size) ** 2


def tokens_processed(recipe_path: str, sets: list[str]) -> float:
    """Tokens the run's plan trains on: per-step cost relative to a full-size step × full tokens × batch."""
    from curricurun.commands.inspect_schedule.schedule import build_schedule
    from curricurun.recipe import load_recipe

    recipe = load_recipe(REPO / recipe_path, sets)
    schedule = build_schedule(recipe, FASHION_MNIST_TRAIN, 1, recipe_path)
    full_step = full_tokens_per_sample(recipe) * schedule.sizes.global_batch
    return full_step * sum(schedule.step_cost(step) for step in range(schedule.plan.total_steps))


def train(recipe: str, overrides: list[str], steps: int, seed: int, out: Path, points: int = 1) -> float:
    """Wall-clock seconds of one run of ``steps`` steps (checkpoints every steps/points, one evaluation at the end)."""
    sets = _run_sets(overrides, steps, seed, points)
    start = time.perf_counter()
    subprocess.run([*CLI, "train", recipe, "--output-dir", str(out), *_sets(sets)], cwd=REPO, check=True,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    return time.perf_counter() - start


def domain_fid(recipe: str, overrides: list[str], checkpoint: Path, extractor: Path, per_class: int) -> float:
    npz = checkpoint.parent / "evaluate" / f"samples-{checkpoint.name}.npz"
    sets = _sets([*overrides, "data.max_eval_samples=2000"])
    command = [*CLI, "evaluate", recipe, "--checkpoint", str(checkpoint), "--per-class", str(per_class),
               "--cfg", "1.5", "--feature-extractor", str(extractor), "--npz", str(npz), *sets]  # fmt: skip
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(npz.with_name(f"{npz.stem}.metrics.json").read_text())["metrics"]["fid"]


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = sorted(run.glob("checkpoint-*"))
    return [(int(path.name.split("-")[1]), path) for path in found if path.name.split("-")[1].isdigit()]


def plot(curves: dict[str, list[tuple[int, list[tuple[float, float]]]]], budget: float, out: Path) -> Path:
    """Domain FID against training seconds: one line per arm and seed (checkpoint at s × calibrated s/step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    colours = dict(zip(curves, ("tab:blue", "tab:cyan", "tab:red", "tab:orange"), strict=False))
    for name, runs in curves.items():
        for index, (_seed, points) in enumerate(runs):
            seconds, fids = zip(*points, strict=True)
            axis.plot(seconds, fids, marker="o", color=colours[name], linestyle="-" if index == 0 else "--",
                      label=name if index == 0 else None, alpha=0.9)  # fmt: skip
    axis.set_xlabel(f"training wall-clock, s (calibrated s/step x step; budget {budget:.0f} s)")
    axis.set_ylabel("domain FID (demo classifier), lower is better")
    axis.set_title("Generative curricula at equal wall-clock (one line per seed)")
    axis.grid(alpha=0.3)
    axis.legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def calibrate(work: Path, budget: float) -> dict[str, tuple[float, int]]:
    """Each arm's seconds per step (two lengths, start-up differenced out) and the steps that fill the budget."""
    calibrated = {}
    for name, (recipe, overrides) in ARMS.items():
        short = train(recipe, overrides, 10, 0, work / "calibrate" / f"{name}-10")
        long = train(recipe, overrides, 40, 0, work / "calibrate" / f"{name}-40")
        # On a shared machine the difference can come out near zero: never below a quarter of the plain mean.
        per_step = max((long - short) / 30, 0.25 * long / 40)
        calibrated[name] = (per_step, max(10, int(budget / per_step)))
        print(f"{name}: {per_step:.3f} s/step -> {calibrated[name][1]} steps in {budget:.0f} s", flush=True)
    return calibrated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per arm and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--points", type=int, default=3, help="checkpoints scored per run (FID vs wall-clock)")
    parser.add_argument("--extractor", type=Path, default=REPO / "runs" / "demo")
    parser.add_argument("--png", type=Path, default=PNG)
    parser.add_argument("--tokenizer", type=Path, default=REPO / "runs" / "vqvae_tiny" / "tokenizer",
                        help="the var arms' tokenizer (make generative-demo trains it)")  # fmt: skip
    args = parser.parse_args()
    if not (args.tokenizer / "tokenizer.json").is_file():
        sys.exit(f"--tokenizer: no tokenizer.json in {args.tokenizer} (train recipes/vqvae_tiny.yaml first)")
    for name in ARMS:
        if ARMS[name][0].endswith("var_tiny.yaml"):
            ARMS[name] = (ARMS[name][0], [f"setup.tokenizer={args.tokenizer.resolve()}", *ARMS[name][1]])
    work = Path(tempfile.mkdtemp(prefix="generative-curricula-"))
    if not args.extractor.is_dir():
        subprocess.run([*CLI, "train", "recipes/demo.yaml", "--output-dir", str(args.extractor), "--set",
                        "training.epochs=1"], cwd=REPO, check=True)  # fmt: skip
    calibrated = calibrate(work, args.budget)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ARMS}
    curves: dict[str, list] = {name: [] for name in ARMS}
    for seed in args.seeds:
        for name, (recipe, overrides) in ARMS.items():  # arms alternate within each seed
            per_step, steps = calibrated[name]
            run = work / f"{name}-seed{seed}".replace(" ", "_").replace(":", "-")
            seconds = train(recipe, overrides, steps, seed, run, args.points)
            points = [(step * per_step, domain_fid(recipe, overrides, path, args.extractor, args.per_class))
                      for step, path in checkpoints(run)]  # fmt: skip
            curves[name].append((seed, points))
            results[name].append((points[-1][1], seconds))
            print(f"  seed {seed} {name}: fid {points[-1][1]:.2f} in {seconds:.0f} s ({steps} steps)", flush=True)
    tokens = {name: tokens_processed(recipe, _run_sets(overrides, calibrated[name][1], 0, args.points))
              for name, (recipe, overrides) in ARMS.items()}  # fmt: skip
    header = f"domain FID (mean ± sd, {len(args.seeds)} seeds)"
    print(f"\n| arm | steps | tokens processed | wall-clock s (median) | {header} |")
    print("|---|---|---|---|---|")
    for name, values in results.items():
        fids = [fid for fid, _ in values]
        spread = statistics.stdev(fids) if len(fids) > 1 else 0.0
        wall = statistics.median(seconds for _, seconds in values)
        print(f"| {name} | {calibrated[name][1]} | {tokens[name] / 1e6:.2f} M | {wall:.0f} | "
              f"{statistics.mean(fids):.2f} ± {spread:.2f} |")  # fmt: skip
    for pair in (("var progressive_scales", "var all scales"), ("pyramid_flow 1:2:1", "pyramid_flow 1:1:1")):
        ratio = statistics.mean(f for f, _ in results[pair[0]]) / statistics.mean(f for f, _ in results[pair[1]])
        print(f"FID ratio {pair[0]} / {pair[1]}: {ratio:.3f} (below 1: the curriculum pays)")
    print(f"wrote {plot(curves, args.budget, args.png)}")


if __name__ == "__main__":
    main()
