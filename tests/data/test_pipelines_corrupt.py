"""A truncated JPEG in the training folder, through ``curricurun train`` with a loader worker, as a user meets it.

Default: one line naming the file and its index in the split, exit code 2, no traceback (not the worker's, not
the main process's). ``data.corrupt_images: skip``: the run finishes and every skipped file is counted in its log.
"""

from __future__ import annotations

import pytest
from engine_helpers import run_forked, small_recipe
from photo_folder import write_photo_folder

from curricurun.data import load_split

pytestmark = pytest.mark.slow


def _recipe(tmp_path, corrupt_images: str):
    write_photo_folder(tmp_path / "photos", 16, classes=2, splits={"train": 0.75, "test": 0.25})
    victim = sorted((tmp_path / "photos" / "train").rglob("*.JPEG"))[5]
    victim.write_bytes(victim.read_bytes()[:3000])  # cut mid-scan, as an interrupted copy leaves it
    index = load_split("local", str(tmp_path / "photos"), "train")._paths.index(str(victim))
    recipe = small_recipe(
        tmp_path,
        f"corrupt_{corrupt_images}",
        data={
            "source": "local",
            "path": str(tmp_path / "photos"),
            "image_size": 32,
            "pipeline": {"name": "imagenet", "magnitude": 9},
            "num_workers": 2,
            "corrupt_images": corrupt_images,
        },
        batch={"per_device": 4},
        schedule={"shape": "cosine", "warmup_steps": 0},
        training={"epochs": 1, "log_every_steps": 1, "eval": {"every_epochs": 1}, "checkpoint": {"every_epochs": 1}},
    )
    return recipe, victim, index


def _train(recipe, out):
    """A process of its own (forked), so that its output is all its loader workers print too."""
    return run_forked(["train", str(recipe), "--output-dir", str(out)])


def test_truncated_jpeg_stops_training_with_one_line_naming_file_and_index_and_exit_2(tmp_path):
    recipe, victim, index = _recipe(tmp_path, "error")
    result = _train(recipe, tmp_path / "run")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "DataLoader worker" not in output, output
    naming = [line for line in output.splitlines() if str(victim) in line]
    assert len(naming) == 1 and f"image {index} ('{victim}') cannot be decoded" in naming[0], output


def test_skip_option_finishes_the_run_and_counts_the_skipped_file_in_the_log(tmp_path):
    recipe, victim, index = _recipe(tmp_path, "skip")
    result = _train(recipe, tmp_path / "run")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    skipped = [line for line in output.splitlines() if "skipped undecodable image" in line]
    assert len(skipped) == 1 and "(1 so far)" in skipped[0] and f"image {index} ('{victim}')" in skipped[0], output
