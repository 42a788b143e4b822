"""Is ``inspect-schedule --measure`` right? Its forecast of the training loop against the same run, measured.

For each recipe — the demo (20 → 28 px), the EfficientTrain++ Fashion-MNIST recipe (low-frequency crop 12/20/28 px
and the RandAugment ramp, indexed by compute), var_tiny (VAR's progressive scales) and pyramid_flow_tiny (the
1:2:1 stage mix) — on short settings (``--set``, the same for every command of a recipe):

1. ``curricurun inspect-schedule RECIPE --measure --json --output-dir RUN``: the forecast, stored in ``RUN``;
2. ``curricurun train RECIPE --output-dir RUN``: the run it forecasts; the engine writes ``step_timing.json``
   (the seconds of every optimizer step, evaluation and checkpointing outside, as the forecast excludes them) and
   prints the forecast-vs-actual line;
3. ``curricurun train RECIPE --set curriculum=[] --output-dir RUN-without``: the same recipe without its
   curriculum, which is what the forecast's "without" predicts: ``build_plan(recipe, size, world, None)``'s
   steps at the full-size shape (the demo and ET++: 28 px throughout, ET++ then without RandAugment, which is
   part of its curriculum; VAR: all scales from step 0; Pyramid-Flow: the uniform 1:1:1 mix, the reference
   class's default).

The two training runs alternate ``--train-rounds`` times (default 2: with, without, then without, with) and each
arm's loop seconds are the median over its rounds, so that a slow spell of the machine does not land on one arm.

It reports per recipe the forecast and measured loop seconds (goal: within ±10 %) and the predicted and measured
saving of the curriculum in percent of the run without it (goal: within ±10 points), prints a table and writes
``bench/results/forecast_accuracy.json``. var_tiny needs a tokenizer: one with vqvae_tiny's configuration and
random weights is written first (the same cost per step as the trained one; nothing here judges samples).
Every command runs in its own process with the same ``OMP_NUM_THREADS`` (default 1, as the other benches: on a
shared 2-core machine two threads stall each other).

    make bench     # includes .venv/bin/python bench/forecast_accuracy.py (about 12 minutes on 2 cores)
    .venv/bin/python bench/forecast_accuracy.py --only demo --repeats 5
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
RESULTS = REPO / "bench" / "results" / "forecast_accuracy.json"
GOAL_LOOP_PERCENT = 10.0
GOAL_SAVING_POINTS = 10.0
TOKENIZER = "@tokenizer"  # replaced by the random tokenizer's directory
SHORT_CLASSIFIER = ["data.max_train_samples=2560", "data.max_eval_samples=256"]  # 20 steps per epoch at batch 128
SHORT_GENERATIVE = ["training.steps=120", "training.eval.every_steps=120", "training.checkpoint.every_steps=120",
                    "data.max_eval_samples=64", "setup.preview_classes=0"]  # fmt: skip
CASES = {
    "demo": ("recipes/demo.yaml", SHORT_CLASSIFIER),
    "efficienttrain_pp_fashion_mnist": ("recipes/efficienttrain_pp_fashion_mnist.yaml", SHORT_CLASSIFIER),
    "var_tiny": (
        "recipes/var_tiny.yaml",
        [*SHORT_GENERATIVE, f"setup.tokenizer={TOKENIZER}", "schedule.warmup_steps=10"],
    ),  # fmt: skip
    "pyramid_flow_tiny": ("recipes/pyramid_flow_tiny.yaml", [*SHORT_GENERATIVE, "schedule.warmup_steps=10"]),
}


def random_tokenizer(directory: Path) -> Path:
    """vqvae_tiny's configuration (recipes/vqvae_tiny.yaml) with random weights, exported as var_tiny reads it."""
    from curricurun.setups.vqvae.tokenizer import MultiScaleTokenizer, save_tokenizer
    from curricurun.setups.vqvae.vqvae import VQVAEConfig

    config = VQVAEConfig(
        in_channels=1, image_size=32, ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, norm_groups=8, z_channels=16,
        vocab_size=256, patch_nums=(1, 2, 3, 4, 6, 8), quant_resi=0.5, share_quant_resi=4,
    )  # fmt: skip
    return save_tokenizer(MultiScaleTokenizer(config), directory)


def _sets(values: list[str]) -> list[str]:
    return [part for value in values for part in ("--set", value)]


def _run(command: list[str], threads: int) -> tuple[str, str, float]:
    """stdout, stderr and wall-clock seconds of one CLI command in its own process (both shown when it fails)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([*CLI, *command], cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout, done.stderr, time.perf_counter() - start


def measure_case(recipe: str, sets: list[str], work: Path, repeats: int, threads: int, train_rounds: int) -> dict:
    """Forecast, then the runs with and without the curriculum, alternated ``train_rounds`` times (with, without;
    then without, with; ...): loop seconds from step_timing.json, the median over rounds of each."""
    with_dir = work / "with"
    out, _, forecast_wall = _run(
        ["inspect-schedule", recipe, "--measure", "--json", "--repeats", str(repeats), "--output-dir", str(with_dir),
         "--out", str(work / "schedule.png"), *_sets(sets)], threads)  # fmt: skip
    forecast = json.loads(out)["forecast"]
    arms = {"with": _sets(sets), "without": _sets([*sets, "curriculum=[]"])}
    loops: dict[str, list[float]] = {"with": [], "without": []}
    walls: dict[str, list[float]] = {"with": [], "without": []}
    timings: dict[str, dict] = {}
    line = ""
    for round_index in range(train_rounds):
        for arm in ("with", "without") if round_index % 2 == 0 else ("without", "with"):
            run_dir = with_dir if arm == "with" and round_index == 0 else work / f"{arm}-{round_index}"
            _, log, wall = _run(["train", recipe, "--output-dir", str(run_dir), *arms[arm]], threads)
            if run_dir == with_dir:  # the run the stored forecast is for: the engine logs its line on stderr
                line = next((text for text in log.splitlines() if text.startswith("forecast")), "")
            timing = json.loads((run_dir / "step_timing.json").read_text())
            timings.setdefault(arm, timing)
            loops[arm].append(timing["loop_seconds"])
            walls[arm].append(wall)
    with_timing, without_timing = timings["with"], timings["without"]
    predicted, measured = forecast["with_curriculum_seconds"], statistics.median(loops["with"])
    predicted_without, measured_without = forecast["without_curriculum_seconds"], statistics.median(loops["without"])
    measured_saving = 100 * (measured_without - measured) / measured_without
    with_wall, without_wall = walls["with"], walls["without"]
    return {
        "recipe": recipe,
        "sets": sets,
        "forecast_seconds": predicted,
        "forecast_error_seconds": forecast["with_curriculum_error_seconds"],
        "measured_seconds": measured,
        "measured_seconds_rounds": loops["with"],
        "measured_without_seconds_rounds": loops["without"],
        "loop_error_percent": 100 * (predicted - measured) / measured,
        "forecast_without_seconds": predicted_without,
        "measured_without_seconds": measured_without,
        "loop_without_error_percent": 100 * (predicted_without - measured_without) / measured_without,
        "predicted_saving_percent": forecast["saving_percent"],
        "measured_saving_percent": measured_saving,
        "saving_error_points": forecast["saving_percent"] - measured_saving,
        "verdict": forecast["verdict"],
        "stages": [
            {
                k: s[k]
                for k in (
                    "shape",
                    "steps",
                    "ms_per_step",
                    "ms_per_step_error",
                    "bound",
                    "model_ms_per_step",
                    "loader_ms_per_step",
                    "first_step_extra_ms",
                )
            }  # fmt: skip
            for s in forecast["stages"]
        ],
        "measured_shapes": with_timing["shapes"],
        "measured_without_shapes": without_timing["shapes"],
        "engine_line": line,
        "process_wall_seconds": {
            "inspect_schedule": forecast_wall,
            "train_with": with_wall,
            "train_without": without_wall,
        },  # fmt: skip
    }


def load_average() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def print_table(results: dict[str, dict]) -> None:
    header = (f"{'recipe':34} {'loop fc s':>9} {'meas s':>8} {'err %':>7} {'w/o fc s':>9} {'w/o meas':>9}"
              f" {'err %':>7} {'save fc %':>9} {'meas %':>7} {'Δ pts':>6}")  # fmt: skip
    print(header)
    for name, r in results.items():
        loop_ok = abs(r["loop_error_percent"]) <= GOAL_LOOP_PERCENT
        saving_ok = abs(r["saving_error_points"]) <= GOAL_SAVING_POINTS
        print(
            f"{name:34} {r['forecast_seconds']:9.1f} {r['measured_seconds']:8.1f} {r['loop_error_percent']:+7.1f}"
            f" {r['forecast_without_seconds']:9.1f} {r['measured_without_seconds']:9.1f}"
            f" {r['loop_without_error_percent']:+7.1f} {r['predicted_saving_percent']:9.1f}"
            f" {r['measured_saving_percent']:7.1f} {r['saving_error_points']:+6.1f}"
            f"  {'ok' if loop_ok else 'MISS'}/{'ok' if saving_ok else 'MISS'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="run these recipes only")
    parser.add_argument("--repeats", type=int, default=5, help="inspect-schedule --repeats (timed steps per shape)")
    parser.add_argument("--train-rounds", type=int, default=2, help="alternated rounds of the two training runs")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every command")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="forecast-accuracy-"))
    tokenizer = str(random_tokenizer(work / "tokenizer"))
    load_before, results = load_average(), {}
    for name in args.only or CASES:
        recipe, sets = CASES[name]
        sets = [value.replace(TOKENIZER, tokenizer) for value in sets]
        print(f"{name}: forecast, train with, train without the curriculum ...", flush=True)
        results[name] = measure_case(recipe, sets, work / name, args.repeats, args.threads, args.train_rounds)
        print(f"  {results[name]['engine_line']}", flush=True)
    print_table(results)
    payload = {
        "goal": {"loop_percent": GOAL_LOOP_PERCENT, "saving_points": GOAL_SAVING_POINTS},
        "threads": args.threads,
        "repeats": args.repeats,
        "train_rounds": args.train_rounds,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cpu_count": os.cpu_count(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"load average before {load_before}, after {payload['load_average_after']}; written: {args.out}")


if __name__ == "__main__":
    main()
