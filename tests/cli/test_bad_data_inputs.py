"""Bad data and checkpoints through the real entry point: one line on stderr, exit 2, earlier work intact.

"Earlier work intact" is checked on a run folder that already holds files when the command starts (a previous
run's metrics and recipe, or a checkpoint): after the failure, the same paths exist with the same bytes, so
nothing was overwritten, appended to, deleted or added. stderr is captured at the file-descriptor level
(``capfd``) so that a library's progress bar or warning would count against the one line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import REPO, needs_fashion_mnist, small_recipe

from curricurun import cli

CHECKPOINT = "checkpoint-00000002"


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its content hash: equal snapshots mean nothing was written or changed."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def _argv(command: str, recipe: Path, run: Path) -> list[str]:
    """``train`` into ``run``; ``inspect-model`` writes nothing and takes no run folder."""
    return ["train", str(recipe), "--output-dir", str(run)] if command == "train" else [command, str(recipe)]


@pytest.fixture
def previous_run(tmp_path: Path) -> Path:
    """A run folder with what an earlier run left: metrics lines and its resolved recipe."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 10, "loss": 2.1}\n')
    (run / "recipe.resolved.yaml").write_text("name: earlier\n")
    return run


def _data_recipe(tmp_path: Path, **data) -> Path:
    """The engine's small recipe with its data section replaced; the setup leaves channels/classes to the data."""
    return small_recipe(tmp_path, data={"source": "local", "image_size": 28, "eval_split": None, **data})


@pytest.fixture
def img_target_dataset(tmp_path: Path, capfd) -> Path:
    """A 3-sample ``save_to_disk`` dataset whose columns are ``img`` and ``target``, not ``image``/``label``."""
    import datasets

    folder = tmp_path / "img-target"
    images = [np.full((4, 4), value, dtype=np.uint8) for value in (0, 100, 200)]
    datasets.Dataset.from_dict({"img": images, "target": [0, 1, 2]}).save_to_disk(str(folder))
    capfd.readouterr()  # the progress bar of save_to_disk belongs to the setup, not to the command
    return folder


@pytest.mark.parametrize("command", ["train", "inspect-model"])
def test_missing_local_folder_is_one_line_naming_data_path(command, tmp_path, previous_run, capfd):
    recipe = _data_recipe(tmp_path, path=str(tmp_path / "no-such-folder"))
    before = _snapshot(previous_run)
    assert cli.run(_argv(command, recipe, previous_run)) == 2
    line = _one_error_line(capfd.readouterr().err)
    assert line == f"error: data.path: folder not found: {tmp_path / 'no-such-folder'}"
    assert _snapshot(previous_run) == before


@pytest.mark.parametrize("command", ["train", "inspect-model"])
def test_missing_idx_folder_is_one_line_naming_data_path(command, tmp_path, previous_run, capfd):
    recipe = _data_recipe(tmp_path, source="idx", path=str(tmp_path / "no-idx"))
    before = _snapshot(previous_run)
    assert cli.run(_argv(command, recipe, previous_run)) == 2
    assert _one_error_line(capfd.readouterr().err) == f"error: data.path: folder not found: {tmp_path / 'no-idx'}"
    assert _snapshot(previous_run) == before


@pytest.mark.parametrize(
    ("columns", "field", "missing"),
    [({}, "data.image_column", "image"), ({"image_column": "img"}, "data.label_column", "label")],
    ids=["image_column", "label_column"],
)
def test_wrong_column_names_are_one_line_listing_the_columns(
    columns, field, missing, tmp_path, previous_run, img_target_dataset, capfd
):
    recipe = _data_recipe(tmp_path, path=str(img_target_dataset), **columns)
    before = _snapshot(previous_run)
    assert cli.run(["train", str(recipe), "--output-dir", str(previous_run)]) == 2
    line = _one_error_line(capfd.readouterr().err)
    assert line == (
        f"error: {field}: column '{missing}' not found in local dataset '{img_target_dataset}' split 'train';"
        " columns: img, target"
    )
    assert _snapshot(previous_run) == before


def test_wrong_column_names_in_parquet_files_are_one_line(tmp_path, previous_run, capfd):
    import datasets

    folder = tmp_path / "parquet"
    images = [np.full((4, 4), value, dtype=np.uint8) for value in (0, 100, 200)]
    datasets.Dataset.from_dict({"img": images, "target": [0, 1, 2]}).to_parquet(str(folder / "train-00000.parquet"))
    capfd.readouterr()
    recipe = _data_recipe(tmp_path, path=str(folder))
    assert cli.run(["train", str(recipe), "--output-dir", str(previous_run)]) == 2
    assert _one_error_line(capfd.readouterr().err).startswith("error: data.image_column: column 'image' not found")


def test_unknown_hub_id_offline_is_one_line_naming_the_id_and_the_offline_setting(tmp_path, previous_run):
    recipe = _data_recipe(tmp_path, source="hub", path="curricurun-tests/no-such-dataset")
    before = _snapshot(previous_run)
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    result = subprocess.run(
        [sys.executable, "-m", "curricurun", "train", str(recipe), "--output-dir", str(previous_run)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", **offline},
        timeout=120,
    )
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert line.startswith("error: data.path: could not load hub dataset 'curricurun-tests/no-such-dataset'")
    assert line.endswith("(HF_HUB_OFFLINE and HF_DATASETS_OFFLINE are set)")
    assert _snapshot(previous_run) == before


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> tuple[Path, Path]:
    """A real 2-step Fashion-MNIST run stopped with a checkpoint: (recipe, run folder). Shared; copy before use."""
    folder = tmp_path_factory.mktemp("stopped")
    recipe, run = small_recipe(folder), folder / "run"
    assert cli.run(["train", str(recipe), "--output-dir", str(run), "--stop-after", "2"]) == 0
    assert (run / CHECKPOINT / "model.safetensors").is_file()
    return recipe, run


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not a safetensors file\xff" * 4)


@needs_fashion_mnist
@pytest.mark.parametrize(
    ("file", "damage", "says"),
    [
        # caught by the checkpoint's manifest (size and sha256 in trainer_state.json) before anything is loaded
        ("model.safetensors", _garbage, "damaged (96 bytes, the manifest in trainer_state.json says"),
        ("model.safetensors", _truncate, "damaged ("),
        ("optimizer.pt", _truncate, "damaged ("),
        ("trainer_state.json", _truncate, "not a readable trainer state"),
    ],
    ids=["model_garbage", "model_truncated", "optimizer_truncated", "trainer_state_truncated"],
)
def test_resume_from_a_corrupt_checkpoint_is_one_line_and_leaves_the_run_untouched(
    file, damage, says, stopped_run, tmp_path, capfd
):
    recipe, original = stopped_run
    run = tmp_path / "run"
    shutil.copytree(original, run)
    damage(run / CHECKPOINT / file)
    before = _snapshot(run)
    capfd.readouterr()
    assert cli.run(["train", str(recipe), "--output-dir", str(run), "--resume"]) == 2
    line = _one_error_line(capfd.readouterr().err)
    assert line.startswith(f"error: {run / CHECKPOINT / file}: {says}")
    assert _snapshot(run) == before  # the damaged checkpoint, metrics and recipe as they were; nothing added
