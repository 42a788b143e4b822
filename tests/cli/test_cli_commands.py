"""The commands a user types: help, version, the shipped recipes, and the model summary.

Most checks run the real entry point in-process (``curricurun.cli.run``), which is what the console script and
``python -m curricurun`` call; the help and version checks also run those two in fresh processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import timm
import yaml
from engine_helpers import REPO, small_recipe
from rich.console import Console

import curricurun
from curricurun import cli
from curricurun.curriculum import registry

COMMANDS = ("train", "validate", "recipes", "curricula", "inspect-model", "inspect-schedule", "sample",
            "import-weights", "export-weights", "evaluate")
SHIPPED = sorted((REPO / "recipes").glob("*.yaml"))
CONSOLE_SCRIPT = Path(sys.executable).parent / "curricurun"
LAUNCHERS = {"python -m": [sys.executable, "-m", "curricurun"], "console script": [str(CONSOLE_SCRIPT)]}


def _launch(launcher: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LAUNCHERS[launcher], *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def _listed_commands(help_text: str) -> set[str]:
    """The first word of each line of the help's ``Commands:`` section."""
    section = help_text.split("Commands:", 1)[1]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.strip()}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_help_from_a_fresh_process_lists_every_command(launcher, tmp_path):
    result = _launch(launcher, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: curricurun ")
    assert _listed_commands(result.stdout) == set(COMMANDS)
    assert "Example: curricurun train recipes/demo.yaml" in result.stdout


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_version_from_a_fresh_process_is_the_package_version(launcher, tmp_path):
    result = _launch(launcher, "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"curricurun {curricurun.__version__}\n"
    assert curricurun.__version__ == version("curricurun")  # the installed metadata agrees with the code


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example_of_itself(command, capsys):
    assert cli.run([command, "--help"]) == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"Usage: curricurun {command} ")
    assert f"Example: curricurun {command}" in help_text


def test_at_least_one_recipe_is_shipped():
    assert SHIPPED, f"no recipes/*.yaml under {REPO}"


@pytest.mark.parametrize("recipe", SHIPPED, ids=[path.name for path in SHIPPED])
def test_shipped_recipe_passes_validate(recipe, capsys):
    assert cli.run(["validate", str(recipe)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{recipe}: ok\n"
    assert captured.err == ""


def test_validate_reports_ok_for_each_of_several_recipes(capsys):
    assert cli.run(["validate", *map(str, SHIPPED)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{path}: ok" for path in SHIPPED]


def _wide_console(monkeypatch) -> None:
    """A console 400 columns wide, as a fresh process started with ``COLUMNS=400`` makes (rich reads the variable
    when the console is made: the module's own console was made with whatever this process had then)."""
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(cli, "out", Console(highlight=False, soft_wrap=True))


def test_recipes_lists_every_shipped_file_with_its_description(capsys, monkeypatch):
    _wide_console(monkeypatch)  # a table row per recipe, not wrapped
    assert cli.run(["recipes"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "recipes/" in line]
    assert len(rows) == len(SHIPPED)
    for path, row in zip(SHIPPED, rows, strict=True):  # the listing is sorted by file name
        description = yaml.safe_load(path.read_text())["description"]
        assert f"recipes/{path.name}" in row
        assert description and description in row


def test_curricula_lists_every_registered_curriculum_with_its_summary(capsys, monkeypatch):
    _wide_console(monkeypatch)
    assert cli.run(["curricula"]) == 0
    listing = capsys.readouterr().out
    for name, curriculum in registry.available().items():
        row = next(line for line in listing.splitlines() if f" {name} " in line)
        assert curriculum.summary in row


def _data_free_recipe(tmp_path: Path) -> Path:
    """test_resnet for 1-channel 10-class images, with a data folder that does not exist."""
    return small_recipe(
        tmp_path,
        setup={"name": "classification", "model": "test_resnet", "in_channels": 1, "num_classes": 10},
        data={"path": str(tmp_path / "no-such-data")},
    )


def _timm_counts() -> dict:
    """The summary expected for test_resnet built the usual way (real weights, all trainable)."""

    def counts(module) -> dict[str, int]:
        total = sum(parameter.numel() for parameter in module.parameters())
        return {"parameters": total, "trainable_parameters": total}

    model = timm.create_model("test_resnet", pretrained=False, in_chans=1, num_classes=10)
    return {**counts(model), "modules": {name: counts(child) for name, child in model.named_children()}}


def test_inspect_model_json_counts_match_timm_without_touching_the_data(tmp_path, capsys):
    recipe = _data_free_recipe(tmp_path)
    assert cli.run(["inspect-model", str(recipe), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == _timm_counts()
    # By hand (timm resnet.py test_resnet: deep stem of width 16 into 32 channels, 96 features at the end):
    # stem 1->16 3x3 = 144, BN 16 = 32, 16->16 3x3 = 2304, BN 32, 16->32 3x3 = 4608: 7120 (3 channels: 7408);
    # bn1 over 32 channels = 64; head 96 x 10 + 10 = 970.
    assert summary["modules"]["conv1"]["parameters"] == 144 + 32 + 2304 + 32 + 4608 == 7120
    assert summary["modules"]["bn1"]["parameters"] == 2 * 32
    assert summary["modules"]["fc"]["parameters"] == 96 * 10 + 10
    assert sum(counts["parameters"] for counts in summary["modules"].values()) == summary["parameters"]


def test_inspect_model_table_ends_with_total_and_trainable_counts(tmp_path, capsys):
    recipe = _data_free_recipe(tmp_path)
    assert cli.run(["inspect-model", str(recipe)]) == 0
    total = _timm_counts()["parameters"]
    assert capsys.readouterr().out.splitlines()[-1] == f"total {total:,} parameters, {total:,} trainable"


def test_inspect_model_needs_the_data_only_when_the_setup_leaves_out_channels_or_classes(tmp_path, capsys):
    recipe = small_recipe(tmp_path, data={"path": str(tmp_path / "no-such-data")})
    assert cli.run(["inspect-model", str(recipe)]) == 2
    assert capsys.readouterr().err == f"error: data.path: folder not found: {tmp_path / 'no-such-data'}\n"


def test_inspect_model_override_changes_the_counted_model(tmp_path, capsys):
    recipe = _data_free_recipe(tmp_path)
    assert cli.run(["inspect-model", str(recipe), "--json", "--set", "setup.num_classes=7"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["modules"]["fc"]["parameters"] == 96 * 7 + 7
    assert summary["parameters"] == _timm_counts()["parameters"] - 3 * 97  # three fewer rows of 96 weights + bias
