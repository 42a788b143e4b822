"""Each data-side curriculum changes what the model sees, step by step, identically on every rank."""

from __future__ import annotations

import json

import pytest
import torch
from engine_helpers import FASHION_MNIST, needs_fashion_mnist, run_cli, small_recipe

from curricurun.curriculum.low_frequency_crop import fft_low_frequency_crop
from curricurun.data import load_split
from curricurun.data.sampler import sample_seed
from curricurun.data.transforms import StageTransform

pytestmark = [needs_fashion_mnist, pytest.mark.slow]

ET_PLUS_PLUS = [
    {"name": "low_frequency_crop", "schedule": "et++", "base_resolution": 28, "size_increment": 4},
    {"name": "randaugment_ramp", "schedule": "et++"},
]


def _trace(folder, rank):
    return [json.loads(line) for line in (folder / f"samples-rank{rank}.jsonl").read_text().splitlines()][:-1]


def _first_image(trace_line, seed, magnitude, bandwidth, fft=False):
    """Recompute the first image of a traced micro-batch with the transform the loader should have used."""
    data = load_split("idx", str(FASHION_MNIST), "train", max_samples=640)
    index = trace_line["indices"][0]
    epoch = trace_line["epoch_index"]
    image = StageTransform()(
        data.image(index), 28, magnitude, None if fft else bandwidth, sample_seed(seed, epoch, index)
    )
    if fft:
        image = fft_low_frequency_crop(image[None], bandwidth)[0]
    return float(image.double().sum())


def test_et_plus_plus_curricula_change_image_size_and_augmentation_per_step_on_two_ranks(tmp_path):
    # Budget 1 full-size epoch = 40 full-size steps of compute; ET++ table at base 28: B = 12,12,20x4,28x4 per
    # 10% of compute and m = 0..9. Cheap 12-px steps cost (12/28)^2 = 0.18, so the run has more than 40 steps.
    recipe = small_recipe(
        tmp_path,
        batch={"per_device": 8},
        curriculum=ET_PLUS_PLUS,
        training={"epochs": None, "budget_epochs": 1, "eval": {"every_epochs": 1}},
    )
    trace_dir = tmp_path / "trace"
    run_cli(
        ["train", str(recipe), "--output-dir", str(tmp_path / "run")],
        processes=2,
        env={"CURRICURUN_SAMPLE_TRACE": str(trace_dir)},
    )
    rank0, rank1 = _trace(trace_dir, 0), _trace(trace_dir, 1)
    assert len(rank0) == len(rank1) > 40
    for a, b in zip(rank0, rank1, strict=True):
        assert a["stage"] == b["stage"] and a["shape"] == b["shape"]
        assert a["shape"][-1] == a["shape"][-2] == a["stage"]["bandwidth"]
        assert a["model_inputs"] == [[a["shape"]]]  # measured at the model's forward: one call, the image batch
    assert sorted({line["stage"]["bandwidth"] for line in rank0}) == [12, 20, 28]
    assert sorted({line["stage"]["aug_magnitude"] for line in rank0}) == list(range(10))
    # The first batch is at B = 12 and m = 0; the last at B = 28 and m = 9.
    assert (rank0[0]["stage"]["bandwidth"], rank0[0]["stage"]["aug_magnitude"]) == (12, 0)
    assert (rank0[-1]["stage"]["bandwidth"], rank0[-1]["stage"]["aug_magnitude"]) == (28, 9)
    # The loader applied exactly the stage's bandwidth and magnitude to each sample.
    for line in (rank0[0], rank0[len(rank0) // 2], rank1[-1]):
        stage = line["stage"]
        assert line["first_image_sum"] == pytest.approx(
            _first_image(line, 1, stage["aug_magnitude"], stage["bandwidth"]), abs=1e-3
        )
    # timm-style RandAugment runs each op with p = 0.5, so a single image may pass unchanged: among the last
    # stage's batches (m = 9) some first images must differ from the un-augmented ones.
    late = [line for line in rank0[-6:] + rank1[-6:] if line["stage"]["aug_magnitude"] == 9]
    changed = [line["first_image_sum"] != pytest.approx(_first_image(line, 1, None, 28), abs=1e-3) for line in late]
    assert late and any(changed)


def test_fft_low_frequency_crop_runs_on_the_device_at_each_stage_bandwidth(tmp_path):
    curriculum = [
        {"name": "low_frequency_crop", "method": "fft", "schedule": "et++", "base_resolution": 28, "size_increment": 4}
    ]
    recipe = small_recipe(
        tmp_path, curriculum=curriculum, data={"max_eval_samples": 50}, training={"epochs": None, "budget_epochs": 0.5}
    )
    trace_dir = tmp_path / "trace"
    run_cli(
        ["train", str(recipe), "--output-dir", str(tmp_path / "run")], env={"CURRICURUN_SAMPLE_TRACE": str(trace_dir)}
    )
    lines = _trace(trace_dir, 0)
    assert sorted({line["shape"][-1] for line in lines}) == [12, 20, 28]
    for line in (lines[0], lines[-1]):
        bandwidth = line["stage"]["bandwidth"]
        # The loader delivered the full 28-px image; the crop of its spectrum to B happened on the device.
        expected = _first_image(line, 1, None, bandwidth, fft=True)
        assert line["first_image_sum"] == pytest.approx(expected, rel=1e-5, abs=1e-3)
    assert torch.is_tensor(fft_low_frequency_crop(torch.zeros(1, 1, 28, 28), 12))
