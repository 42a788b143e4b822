"""Do the generative curricula pay? Domain FID at EQUAL wall-clock, with and without each curriculum.

Arms: var_tiny with VAR's progressive scales vs all scales from step 0 (``curriculum: []``), and
pyramid_flow_tiny with the 1:2:1 stage mix of the released code vs 1:1:1. Each arm's seconds per step are
measured first by differencing two short runs (start-up removed), then every arm trains for the step count
that fills the same budget, for each seed, arms alternating. Samples (``--per-class`` per class, cfg 1.5) are
scored by ``curricurun evaluate`` against the test split with the demo classifier as the feature network
(``runs/demo`` from ``make demo``; a 1-epoch demo is trained if it is missing).

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
CLI = [sys.executable, "-m", "curricurun"]
ARMS = {
    "var progressive_scales": ("recipes/var_tiny.yaml", []),
    "var all scales": ("recipes/var_tiny.yaml", ["curriculum=[]"]),
    "pyramid_flow 1:2:1": ("recipes/pyramid_flow_tiny.yaml", []),
    "pyramid_flow 1:1:1": ("recipes/pyramid_flow_tiny.yaml", ["curriculum=[{name: stage_mixture, ratios: [1, 1, 1]}]"]),
}


def _sets(values: list[str]) -> list[str]:
    return [part for value in values for part in ("--set", value)]


def train(recipe: str, overrides: list[str], steps: int, seed: int, out: Path) -> float:
    """Wall-clock seconds of one training run of ``steps`` steps (one evaluation and checkpoint at the end)."""
    sets = [*overrides, f"seed={seed}", f"training.steps={steps}", f"training.eval.every_steps={steps}",
            f"training.checkpoint.every_steps={steps}", "schedule.warmup_steps=5"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run([*CLI, "train", recipe, "--output-dir", str(out), *_sets(sets)], cwd=REPO, check=True,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    return time.perf_counter() - start


def domain_fid(recipe: str, overrides: list[str], run: Path, extractor: Path, per_class: int) -> float:
    npz = run / "evaluate" / "samples.npz"
    sets = _sets([*overrides, "data.max_eval_samples=2000"])
    command = [*CLI, "evaluate", recipe, "--checkpoint", str(run), "--per-class", str(per_class), "--cfg", "1.5",
               "--feature-extractor", str(extractor), "--npz", str(npz), *sets]  # fmt: skip
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(npz.with_name("samples.metrics.json").read_text())["metrics"]["fid"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per arm and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--extractor", type=Path, default=REPO / "runs" / "demo")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="generative-curricula-"))
    if not args.extractor.is_dir():
        subprocess.run([*CLI, "train", "recipes/demo.yaml", "--output-dir", str(args.extractor), "--set",
                        "training.epochs=1"], cwd=REPO, check=True)  # fmt: skip
    steps = {}
    for name, (recipe, overrides) in ARMS.items():  # seconds per step: two lengths, start-up differenced out
        short = train(recipe, overrides, 10, 0, work / "calibrate" / f"{name}-10")
        long = train(recipe, overrides, 40, 0, work / "calibrate" / f"{name}-40")
        # On a shared machine the difference can come out near zero: never below a quarter of the plain mean.
        per_step = max((long - short) / 30, 0.25 * long / 40)
        steps[name] = max(10, int(args.budget / per_step))
        print(f"{name}: {per_step:.3f} s/step -> {steps[name]} steps in {args.budget:.0f} s", flush=True)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ARMS}
    for seed in args.seeds:
        for name, (recipe, overrides) in ARMS.items():  # arms alternate within each seed
            run = work / f"{name}-seed{seed}".replace(" ", "_").replace(":", "-")
            seconds = train(recipe, overrides, steps[name], seed, run)
            fid = domain_fid(recipe, overrides, run, args.extractor, args.per_class)
            results[name].append((fid, seconds))
            print(f"  seed {seed} {name}: fid {fid:.2f} in {seconds:.0f} s ({steps[name]} steps)", flush=True)
    print(f"\n| arm | steps | wall-clock s (median) | domain FID (mean ± sd over {len(args.seeds)} seeds) |")
    print("|---|---|---|---|")
    for name, values in results.items():
        fids = [fid for fid, _ in values]
        spread = statistics.stdev(fids) if len(fids) > 1 else 0.0
        wall = statistics.median(seconds for _, seconds in values)
        print(f"| {name} | {steps[name]} | {wall:.0f} | {statistics.mean(fids):.2f} ± {spread:.2f} |")
    for pair in (("var progressive_scales", "var all scales"), ("pyramid_flow 1:2:1", "pyramid_flow 1:1:1")):
        ratio = statistics.mean(f for f, _ in results[pair[0]]) / statistics.mean(f for f, _ in results[pair[1]])
        print(f"FID ratio {pair[0]} / {pair[1]}: {ratio:.3f} (below 1: the curriculum pays)")


if __name__ == "__main__":
    main()
