"""``curricurun inspect-schedule``: JSON, terminal view, PNG and --measure, on tiny recipes worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from curricurun.cli import RECIPES_DIR, run

# 100 samples, per-device batch 8 on one process: 100 // 8 = 12 steps per epoch (96 samples, 4 dropped);
# 2 epochs = 24 steps. The resolution is 16 while step/24 < 0.25 (steps 0-5), 24 while < 0.5 (steps 6-11),
# then the full 32 (steps 12-23).
TINY = {
    "name": "tiny_progressive",
    "setup": {"name": "classification", "model": "test_resnet", "in_channels": 1, "num_classes": 10},
    "data": {"source": "idx", "path": "unused", "image_size": 32},
    "batch": {"per_device": 8},
    "optim": {"lr": 0.1, "lr_scaling": {"rule": "linear", "reference_batch": 8}},
    "schedule": {"shape": "cosine", "warmup_steps": 2},
    "curriculum": [
        {"name": "progressive_resolution", "mode": "steps", "full_resolution": 32, "steps": [[0.25, 16], [0.5, 24]]}
    ],
    "training": {"epochs": 2},
}
# Pixel cost (r/32)²: 6·(16/32)² + 6·(24/32)² + 12·1 = 1.5 + 3.375 + 12 = 16.875 full-size steps of 24.
TINY_COMPUTE = 16.875


def write(tmp_path: Path, recipe: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


def inspect(capsys, *args) -> tuple[int, str, str]:
    code = run(["inspect-schedule", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def inspect_json(capsys, *args) -> dict:
    code, out, err = inspect(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def table_rows(out: str) -> list[list[str]]:
    """The body rows of the rich tables printed in ``out``, as stripped cell texts."""
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in out.splitlines() if line.startswith("│")]


def test_json_gives_the_hand_derived_stages_sizes_lr_and_compute_of_a_progressive_resolution_recipe(tmp_path, capsys):
    report = inspect_json(capsys, write(tmp_path, TINY), "--dataset-size", 100)

    sizes = (report["total_steps"], report["steps_per_epoch"], report["world_size"], report["global_batch"])
    assert sizes == (24, 12, 1, 8)
    assert report["lr"] == {
        "rule": "linear",
        "base_lr": 0.1,
        "reference_batch": 8,
        "effective_lr": 0.1,
        "description": report["lr"]["description"],
    }
    assert report["relative_compute"] == pytest.approx(TINY_COMPUTE / 24)  # 0.703125
    stages = [(s["start_step"], s["end_step"], s["resolution"]) for s in report["stages"]]
    assert stages == [(0, 6, 16), (6, 12, 24), (12, 24, 32)]
    # Epochs: step 6 starts at 6·8/100 = 0.48; the run ends after 1 + 96/100, and only the dropped tail of 4
    # samples is left, so it ends at epoch 2.
    assert [s["start_epoch"] for s in report["stages"]] == pytest.approx([0, 0.48, 1.0])
    assert [s["end_epoch"] for s in report["stages"]] == pytest.approx([0.48, 1.0, 2.0])
    assert [s["relative_cost"] for s in report["stages"]] == pytest.approx([0.25, 0.5625, 1.0])
    assert [s["compute_share"] for s in report["stages"]] == pytest.approx([1.5 / 16.875, 3.375 / 16.875, 12 / 16.875])

    steps = report["steps"]
    assert len(steps) == 24 and set(steps[0]) == {"step", "epoch", "compute_fraction", "lr", "resolution"}
    step7 = steps[7]
    # Compute before step 7: 6·0.25 + 1·0.5625 = 2.0625 of 16.875. LR: cosine after a 2-step warm-up,
    # 0.1·(½ + ½cos(π·(7 − 2)/(24 − 2))).
    assert step7["step"] == 7 and step7["resolution"] == 24
    assert step7["epoch"] == pytest.approx(0.56)
    assert step7["compute_fraction"] == pytest.approx(2.0625 / 16.875)
    assert step7["lr"] == pytest.approx(0.1 * (0.5 + 0.5 * math.cos(math.pi * 5 / 22)))
    assert steps[1]["lr"] == pytest.approx(0.05)  # warm-up: 0.1 · 1/2


def test_every_k_keeps_one_step_entry_in_k(tmp_path, capsys):
    report = inspect_json(capsys, write(tmp_path, TINY), "--dataset-size", 100, "--every", 5)
    assert [entry["step"] for entry in report["steps"]] == [0, 5, 10, 15, 20]
    assert [entry["resolution"] for entry in report["steps"]] == [16, 16, 24, 32, 32]
    assert report["total_steps"] == 24  # the stages and totals do not depend on --every


def test_doubling_the_world_size_under_a_per_device_batch_halves_the_steps_and_doubles_the_linear_lr(tmp_path, capsys):
    path = write(tmp_path, TINY)
    one = inspect_json(capsys, path, "--dataset-size", 100, "--world-size", 1)
    two = inspect_json(capsys, path, "--dataset-size", 100, "--world-size", 2)
    # World 2: global batch 16, 100 // 16 = 6 steps per epoch, 12 steps; stages at 12·0.25 = 3 and 12·0.5 = 6.
    assert (two["global_batch"], two["steps_per_epoch"], two["total_steps"]) == (16, 6, 12)
    assert two["total_steps"] * 2 == one["total_steps"]
    assert [(s["start_step"], s["end_step"]) for s in two["stages"]] == [(0, 3), (3, 6), (6, 12)]
    assert two["lr"]["effective_lr"] == pytest.approx(0.2)  # 0.1 × linear(16 / 8)
    assert two["relative_compute"] == pytest.approx(one["relative_compute"])


def test_steps_per_epoch_sets_the_dataset_size_to_steps_times_the_global_batch(tmp_path, capsys):
    report = inspect_json(capsys, write(tmp_path, TINY), "--steps-per-epoch", 12)
    assert (report["dataset_size"], report["steps_per_epoch"], report["total_steps"]) == (96, 12, 24)


def test_without_a_size_flag_the_training_split_is_loaded_for_its_length(tmp_path, capsys):
    folder = tmp_path / "idx"
    folder.mkdir()
    count = 100
    images = np.zeros((count, 8, 8), dtype=np.uint8)
    (folder / "train-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + np.array([count, 8, 8], ">u4").tobytes() + images.tobytes()
    )
    (folder / "train-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + np.array([count], ">u4").tobytes() + bytes(count)
    )
    recipe = {**TINY, "data": {**TINY["data"], "path": str(folder)}}
    report = inspect_json(capsys, write(tmp_path, recipe))
    assert (report["dataset_size"], report["total_steps"]) == (100, 24)


def test_terminal_view_prints_stages_summary_and_lr_rule_and_writes_the_default_png(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = inspect(capsys, write(tmp_path, TINY), "--dataset-size", 100)
    assert code == 0, err
    assert "24 steps (12 per epoch at the full batch), global batch 8 = per-device 8 × world 1 × accumulation 1" in out
    assert "compute 0.703 × the same recipe without curriculum (saves 29.7%)" in out
    assert "learning rate: lr 0.1 = base 0.1 × linear(8 / 8) [reference_batch 8 given]" in out
    assert "LR schedule: cosine, warm-up 2 steps from ratio 0, final ratio 0, over 24 steps" in out
    assert table_rows(out) == [
        ["1", "0–6", "0.00–0.48", "16", "0.250", "8.9%"],
        ["2", "6–12", "0.48–1.00", "24", "0.562", "20.0%"],  # 3.375 / 16.875
        ["3", "12–24", "1.00–2.00", "32", "1.000", "71.1%"],
    ]
    png = tmp_path / "schedule-tiny_progressive.png"
    assert f"plot: {png.name}" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_json_writes_a_png_only_when_out_is_given(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, TINY)
    inspect_json(capsys, path, "--dataset-size", 100)
    assert not list(tmp_path.glob("*.png"))
    inspect_json(capsys, path, "--dataset-size", 100, "--out", tmp_path / "plots" / "mine.png")
    assert (tmp_path / "plots" / "mine.png").read_bytes()[:4] == b"\x89PNG"


# VAR-like: patch_nums 1,2,3,4 (tokens e = 1, 5, 14, 30), pg 0.5, pg0 1; 64 samples, per-device 4 × accumulation 2
# = global 8: 8 optimizer steps (16 micro-steps) per epoch, 10 epochs = 80 steps = 160 micro-steps.
# Warm-up 1 epoch = 16 micro-steps (wp_it). The plan evaluates VAR's prog_si at g = 2·step (VAR train.py:286-294):
# g ≤ 16: pg0 = 1; then 1 + round((g − 16)/(0.5·160 − 16)·2): g = 32 → round(0.5) = 0 (halves to even) → 1,
# g = 34 → round(0.5625) = 1 → 2, g = 64 → round(1.5) = 2 → 3 = K−1. So scale 1 for steps 0-16, 2 for 17-31,
# 3 for 32-79, i.e. micro-steps [0, 34), [34, 64), [64, 160).
VAR_LIKE = {
    "name": "var_like",
    "setup": {"name": "classification", "model": "test_resnet", "in_channels": 3, "num_classes": 10},
    "data": {"source": "idx", "path": "unused", "image_size": 32},
    "batch": {"per_device": 4, "accumulation": 2},
    "optim": {"lr": 1.0e-3},
    "schedule": {"shape": "auto", "warmup_epochs": 1, "unit": "micro_steps"},
    "curriculum": [{"name": "progressive_scales", "patch_nums": [1, 2, 3, 4], "pg": 0.5, "pg0": 1, "pgwp": 1}],
    "training": {"epochs": 10},
}
# Token cost e_p / 30: 17·5/30 + 15·14/30 + 48·1 = 57.8333… full-size steps of 80.
VAR_COMPUTE = 17 * 5 / 30 + 15 * 14 / 30 + 48


def test_var_like_recipe_counts_micro_steps_and_shows_the_weight_ramp_as_one_row_per_scale(tmp_path, capsys):
    report = inspect_json(capsys, write(tmp_path, VAR_LIKE), "--dataset-size", 64)
    assert (report["step_unit"], report["total_steps"], report["steps_per_epoch"], report["optimizer_steps"]) == (
        "micro_steps",
        160,
        16,
        80,
    )
    assert report["relative_compute"] == pytest.approx(VAR_COMPUTE / 80)
    rows = [(s["start_step"], s["end_step"], s["scale_index"], s["newest_scale_weight"]) for s in report["stages"]]
    # The scale-2 row ramps prog_wp from its first micro-step: stage 2 begins at g = 33 in VAR's formula, so at
    # g = 34 prog_wp = (34 − 33 + 1)/16 = 0.125 (pgwp 1 epoch = 16 micro-steps); it reaches 1 by g = 48.
    assert rows == [(0, 34, 1, 1.0), (34, 64, 2, {"from": 0.125, "to": 1.0}), (64, 160, 3, 1.0)]
    assert [s["relative_cost"] for s in report["stages"]] == pytest.approx([5 / 30, 14 / 30, 1.0])

    assert len(report["steps"]) == 160
    entry = report["steps"][35]  # optimizer step 17, micro-step 1
    assert (entry["step"], entry["scale_index"], entry["newest_scale_weight"]) == (35, 2, 0.125)
    # Epoch: step 17 is epoch 2, offset 1·8 samples; micro-step 1 adds 4 more: 2 + 12/64.
    assert entry["epoch"] == pytest.approx(2 + 12 / 64)
    before = 17 * 5 / 30
    assert entry["compute_fraction"] == pytest.approx((before + 0.5 * 14 / 30) / VAR_COMPUTE)
    # LR of optimizer step 17 = VAR's lin0.5 (forced by pg 0.5) at its last micro-step 35 (wpe 0): with W = 16,
    # pasd = (35 − 16)/(160 − 1 − 16) = 19/143 < T, m = (1 + 0 + 0.5)/2 = 0.75, ratio = 1 + (m − 1)·pasd/T.
    expected_lr = 1e-3 * (1 - 0.25 * (19 / 143) / 0.5)
    assert entry["lr"] == pytest.approx(expected_lr)
    assert report["steps"][34]["lr"] == pytest.approx(expected_lr)  # both micro-steps belong to step 17


def test_var_like_terminal_view_says_that_steps_are_micro_steps(tmp_path, capsys):
    code, out, err = inspect(capsys, write(tmp_path, VAR_LIKE), "--dataset-size", 64, "--out", tmp_path / "v.png")
    assert code == 0, err
    assert "160 micro-steps (16 per epoch at the full batch)" in out
    assert "2 per optimizer step (the gradient accumulation)" in out
    assert "LR schedule: lin0.5, warm-up 16 micro-steps" in out
    # Step 17 starts at epoch 2 + 8/64 = 2.125; scale 2's share is (15·14/30) / 57.83 = 12.1%.
    assert table_rows(out)[1] == ["2", "34–64", "2.12–4.00", "2", "0.125→1", "0.467", "12.1%"]


def test_a_ramp_that_changes_every_step_collapses_into_one_ranged_row(tmp_path, capsys):
    # randaugment_ramp 'linear': m = (step/100)·9 changes at each of the 100 steps, over the 24-row limit, so the
    # magnitude is shown as a range: 0 at step 0 to 99/100·9 = 8.91 at step 99.
    recipe = {
        **TINY,
        "curriculum": [{"name": "randaugment_ramp", "schedule": "linear", "indexed_by": "steps"}],
        "training": {"steps": 100},
    }
    report = inspect_json(capsys, write(tmp_path, recipe), "--dataset-size", 1000, "--every", 50)
    assert len(report["stages"]) == 1
    assert report["stages"][0]["aug_magnitude"] == {"from": 0.0, "to": pytest.approx(8.91)}
    assert [entry["aug_magnitude"] for entry in report["steps"]] == pytest.approx([0.0, 4.5])


def test_a_stage_mix_is_reported_as_a_list_with_its_token_saving(tmp_path, capsys):
    # stage_mixture [1, 2, 1] is constant: one row; each batch holds (1/16 + 2/4 + 1) / 4 = 0.391 of the tokens
    # of the same batch all at the final stage.
    recipe = {**TINY, "curriculum": [{"name": "stage_mixture", "ratios": [1, 2, 1]}]}
    path = write(tmp_path, recipe)
    report = inspect_json(capsys, path, "--dataset-size", 100, "--every", 12)
    assert [(s["start_step"], s["end_step"], s["stage_ratios"]) for s in report["stages"]] == [(0, 24, [1, 2, 1])]
    assert [entry["stage_ratios"] for entry in report["steps"]] == [[1, 2, 1], [1, 2, 1]]
    code, out, _ = inspect(capsys, path, "--dataset-size", 100, "--out", tmp_path / "mix.png")
    assert code == 0 and "compute 0.391 × the same recipe without curriculum" in out
    assert table_rows(out) == [["1", "0–24", "0.00–2.00", "1:2:1", "0.391", "100.0%"]]
    # the per-device batch of TINY is split by columns 0,1,1,2: a quarter, a half, a quarter
    per_device = report["per_device_batch"]
    composition = report["stages"][0]["batch_composition"]
    assert composition == {
        "per_device_samples": [per_device // 4, per_device // 2, per_device // 4],
        "column_pattern": [0, 1, 1, 2],
    }
    assert f"stage mix 1:2:1: per-device batch {per_device} = {per_device // 4} + {per_device // 2}" in out


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Fashion-MNIST IDX files missing")
FORECAST_KEYS = {
    "stages", "without_curriculum", "overlap", "startup_seconds", "with_curriculum_seconds",
    "with_curriculum_error_seconds", "without_curriculum_seconds", "without_curriculum_error_seconds",
    "saving_minutes", "saving_percent", "saving_error_minutes", "saves_time", "verdict", "excluded", "notes", "stored",
}  # fmt: skip
STAGE_KEYS = {
    "shape", "steps", "ms_per_step", "ms_per_step_error", "bound", "model_ms_per_step", "loader_ms_per_step",
    "first_step_extra_ms", "pixel_cost", "measured_cost", "seconds",
}  # fmt: skip


@needs_fashion_mnist
def test_measure_times_model_and_loader_per_shape_and_stores_the_forecast(tmp_path, capsys):
    recipe = {**TINY, "data": {"source": "idx", "path": str(FASHION_MNIST), "image_size": 32, "max_train_samples": 100}}
    path, run_dir = write(tmp_path, recipe), tmp_path / "run"
    common = ("--measure", "--repeats", 2, "--output-dir", run_dir, "--out", tmp_path / "m.png")
    report = inspect_json(capsys, path, *common)
    forecast = report["forecast"]
    assert set(forecast) == FORECAST_KEYS and report["relative_compute_basis"] == "pixel_ratio"
    # the 32-px stage is the full size without curriculum: its timing is reused for the run without it (24 steps)
    assert [(s["resolution"], s["steps"]) for s in forecast["stages"]] == [(16, 6), (24, 6), (32, 12)]
    assert all(set(s) >= STAGE_KEYS and s["bound"] in ("model", "loader") for s in forecast["stages"])
    assert [s["pixel_cost"] for s in forecast["stages"]] == pytest.approx([0.25, 0.5625, 1.0])
    assert forecast["without_curriculum"]["steps"] == 24 and forecast["overlap"] == "serial"
    full = forecast["stages"][2]
    assert forecast["without_curriculum"]["ms_per_step"] == full["ms_per_step"]
    assert full["ms_per_step"] == pytest.approx(full["model_ms_per_step"] + full["loader_ms_per_step"])  # serial
    stored = json.loads((run_dir / "forecast.json").read_text())
    assert stored["with_curriculum_seconds"] == forecast["with_curriculum_seconds"]
    assert len(stored["recipe_sha256"]) == 64

    code, out, err = inspect(capsys, path, *common)
    assert code == 0, err
    assert "pixel-ratio forecast: compute 0.703 ×" in out
    assert "measured forecast (median of repeats, warm-up excluded; step = loader + model" in out
    assert "resolution 16, batch 8" in out and "full size (no curriculum), batch 8 (without curriculum)" not in out
    assert "training loop forecast: " in out and " with the curriculum, " in out
    assert "the curriculum saves " in out or "the curriculum does not save time on this machine" in out
    assert "not timed (excluded): start-up before the first step" in out and "; checkpointing (" in out
    assert f"forecast stored: {run_dir / 'forecast.json'}" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--dataset-size", "100", "--steps-per-epoch", "12"],
            "error: give --dataset-size or --steps-per-epoch, not both",
        ),
        (["--dataset-size", "100", "--every", "0"], "error: --every: expected a positive number of steps, got 0"),
        (["--dataset-size", "100", "--world-size", "0"], "error: --world-size: expected at least 1 process, got 0"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, args, message):
    code, out, err = inspect(capsys, write(tmp_path, TINY), *args, "--json")
    assert code == 2 and err.strip() == message and out == ""


@pytest.mark.parametrize("recipe", sorted(RECIPES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_has_a_consistent_schedule(recipe, capsys):
    report = inspect_json(capsys, recipe, "--steps-per-epoch", 100, "--every", 1000)
    stages = report["stages"]
    assert stages[0]["start_step"] == 0 and stages[-1]["end_step"] == report["total_steps"]
    assert all(a["end_step"] == b["start_step"] for a, b in zip(stages, stages[1:], strict=False))
    assert report["relative_compute"] > 0
    assert len(report["steps"]) == math.ceil(report["total_steps"] / 1000)
    assert sum(s["compute_share"] for s in stages) == pytest.approx(1.0)


def test_a_batch_that_does_not_split_into_stage_columns_is_refused_before_training(tmp_path, capsys):
    recipe = {**TINY, "curriculum": [{"name": "stage_mixture", "ratios": [1, 2, 1]}], "batch": {"per_device": 6}}
    code, out, err = inspect(capsys, write(tmp_path, recipe), "--dataset-size", 100, "--out", tmp_path / "x.png")
    # 6 is not a multiple of 1 + 2 + 1 = 4
    assert code == 2 and "batch.per_device: per-device batch size 6 is not a multiple" in err
    assert not (tmp_path / "x.png").exists()
