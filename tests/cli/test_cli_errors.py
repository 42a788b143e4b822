"""Bad recipes, overrides and options through the real entry point: exit 2, one line per problem, no traceback.

Every recipe case runs through each command that reads a recipe (validate, train, inspect-model and
inspect-schedule with --dataset-size), in-process through ``curricurun.cli.run``, the function the console script
calls. A handful also run in fresh processes, as a user would meet them. Each line must name the file (or
``--set`` override) and the field, and a failed command must leave the working directory as it found it.
"""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from curricurun import cli
from curricurun.errors import RecipeError

DROP = object()
"""As a value in ``changed(...)``: remove this key."""

BASE: dict[str, Any] = {
    "description": "cli error tests",
    "setup": {"name": "classification", "model": "test_resnet", "in_channels": 1, "num_classes": 10},
    "data": {"source": "idx", "path": "no-such-data", "image_size": 28},
    "batch": {"per_device": 16},
    "optim": {"lr": 0.001},
    "curriculum": [{"name": "progressive_resolution", "mode": "steps", "full_resolution": 28, "steps": [[0.5, 20]]}],
    "training": {"epochs": 1},
}
"""Valid, and usable by every command without data: the setup states channels and classes."""

COMMAND_OPTIONS = {
    "validate": [],
    "train": ["--output-dir", "run"],
    "inspect-model": [],
    "inspect-schedule": ["--dataset-size", "640"],
}


def changed(changes: dict[str, Any]) -> dict[str, Any]:
    """BASE with dotted-key changes (a digit indexes a list); ``DROP`` removes the key."""
    recipe = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node: Any = recipe
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is DROP:
            del node[last]
        else:
            node[last] = value
    return recipe


@dataclass(frozen=True)
class Case:
    """One bad input: the files written, the arguments after the recipe, and the one line expected.

    ``starts`` is how the line begins (``error: <file or --set override>: <field>``) and ``says`` a part of
    the explanation that the user needs to fix it.
    """

    id: str
    starts: str
    says: str
    files: dict[str, Any] = field(default_factory=lambda: {"recipe.yaml": BASE})
    args: tuple[str, ...] = ()
    recipe: str = "recipe.yaml"


def in_recipe(id: str, changes: dict[str, Any], starts: str, says: str) -> Case:
    return Case(id, starts, says, files={"recipe.yaml": changed(changes)})


def raw(id: str, text: str, starts: str, says: str) -> Case:
    return Case(id, starts, says, files={"recipe.yaml": text})


def override(id: str, text: str, starts: str, says: str) -> Case:
    return Case(id, starts, says, args=("--set", text))


CASES = [
    # wrong types and values in the recipe file
    in_recipe("lr_not_a_number", {"optim.lr": "abc"}, "recipe.yaml: optim.lr: ", "expected a positive number"),
    in_recipe("lr_negative", {"optim.lr": -0.1}, "recipe.yaml: optim.lr: ", "expected a positive number, got -0.1"),
    in_recipe("seed_fractional", {"seed": 2.5}, "recipe.yaml: seed: ", "expected a non-negative integer"),
    in_recipe("image_size_zero", {"data.image_size": 0}, "recipe.yaml: data.image_size: ", "positive integer"),
    in_recipe("epochs_zero", {"training.epochs": 0}, "recipe.yaml: training.epochs: ", "positive number"),
    in_recipe("betas_one_value", {"optim.betas": [0.9]}, "recipe.yaml: optim.betas: ", "a list of 2 numbers"),
    in_recipe("setup_not_a_mapping", {"setup": "resnet"}, "recipe.yaml: setup: ", "expected a mapping"),
    in_recipe("precision_unknown", {"training.precision": "fp32"}, "recipe.yaml: training.precision: ", "'bf16'"),
    in_recipe("schedule_typo", {"schedule": {"shape": "cosin"}}, "recipe.yaml: schedule.shape: ", "mean 'cosine'"),
    in_recipe("data_source_unknown", {"data.source": "s3"}, "recipe.yaml: data.source: ", "'hub', 'local', 'idx'"),
    in_recipe("ema_decay_one", {"training.ema": {"decay": 1.0}}, "recipe.yaml: training.ema.decay: ", "< 1"),
    in_recipe("description_two_lines", {"description": "one\ntwo"}, "recipe.yaml: description: ", "expected one line"),
    # unknown keys and missing fields
    in_recipe("unknown_section", {"optimizer": {"lr": 1}}, "recipe.yaml: optimizer: ", "did you mean 'optim'"),
    in_recipe("unknown_optim_key", {"optim.learning_rate": 1}, "recipe.yaml: optim.learning_rate: ", "known: name, lr"),
    in_recipe("lr_missing", {"optim.lr": DROP}, "recipe.yaml: optim.lr: ", "required field is missing"),
    in_recipe("data_missing", {"data": DROP}, "recipe.yaml: data: ", "required field is missing"),
    in_recipe("model_missing", {"setup.model": DROP}, "recipe.yaml: setup.model: ", "required field is missing"),
    # rules that tie fields together
    in_recipe("two_batch_sizes", {"batch.global": 64}, "recipe.yaml: batch: ", "found 'per_device' and 'global'"),
    in_recipe("no_batch_size", {"batch": {}}, "recipe.yaml: batch: ", "set exactly one of 'per_device' and 'global'"),
    in_recipe("two_lengths", {"training.steps": 10}, "recipe.yaml: training: ", "found 'epochs' and 'steps'"),
    in_recipe(
        "scaling_without_reference",
        {"optim.lr_scaling": {"rule": "linear"}},
        "recipe.yaml: optim.lr_scaling: ",
        "'reference_batch' and 'reference_world_size'",
    ),
    # components: unknown names and bad parameters
    in_recipe("unknown_setup", {"setup.name": "classifcation"}, "recipe.yaml: setup.name: ", "unknown setup"),
    in_recipe("unknown_setup_key", {"setup.depth": 3}, "recipe.yaml: setup.depth: ", "unknown key 'depth'"),
    in_recipe(
        "label_smoothing_above_one", {"setup.label_smoothing": 1.5}, "recipe.yaml: setup.label_smoothing: ", "< 1"
    ),
    in_recipe(
        "unknown_curriculum",
        {"curriculum.0.name": "progresive_resolution"},
        "recipe.yaml: curriculum.0.name: ",
        "did you mean 'progressive_resolution'",
    ),
    in_recipe(
        "curriculum_resolution_zero",
        {"curriculum.0.full_resolution": 0},
        "recipe.yaml: curriculum.0.full_resolution: ",
        "positive integer",
    ),
    in_recipe(
        "curriculum_steps_decrease",
        {"curriculum.0.steps": [[0.5, 20], [0.4, 24]]},
        "recipe.yaml: curriculum.0: ",
        "strictly increasing",
    ),
    in_recipe(
        "curriculum_key_of_other_mode", {"curriculum.0.min_res": 20}, "recipe.yaml: curriculum.0: ", "mode 'steps'"
    ),
    in_recipe("unknown_timm_model", {"setup.model": "resnet_nope"}, "recipe.yaml: setup.model: ", "resnet_nope"),
    # files that are not recipes, and inheritance
    raw("malformed_yaml", "setup: [unclosed\ndata: 1\n", "recipe.yaml:2:5: ", "malformed YAML"),
    raw("duplicate_key", "optim: {lr: 1}\noptim: {lr: 2}\n", "recipe.yaml:2:1: ", "duplicate key 'optim'"),
    raw("tab_indent", "setup:\n\tname: x\n", "recipe.yaml:2:1: ", "malformed YAML"),
    raw("empty_file", "", "recipe.yaml: ", "got an empty file"),
    raw("top_level_list", "- a\n- b\n", "recipe.yaml: ", "got a list"),
    Case("recipe_missing", "nope.yaml: ", "file not found", recipe="nope.yaml"),
    Case("recipe_is_a_folder", "folder: ", "is a directory", files={"folder/recipe.yaml": BASE}, recipe="folder"),
    Case(
        "base_missing",
        "recipe.yaml: base: ",
        "file not found: nowhere.yaml",
        files={"recipe.yaml": {"base": "nowhere.yaml", **BASE}},
    ),
    Case(
        "base_cycle",
        "second.yaml: base: ",
        "inheritance cycle: recipe.yaml -> second.yaml -> recipe.yaml",
        files={"recipe.yaml": {"base": "second.yaml", **BASE}, "second.yaml": {"base": "recipe.yaml"}},
    ),
    Case(
        "bad_value_in_base",
        "base.yaml: optim.lr: ",
        "expected a positive number, got -1",
        files={"base.yaml": changed({"optim.lr": -1}), "recipe.yaml": {"base": "base.yaml", "seed": 3}},
    ),
    # --set overrides
    override("set_bad_value", "optim.lr=abc", "--set optim.lr=abc: optim.lr: ", "expected a positive number"),
    override("set_negative_lr", "optim.lr=-1", "--set optim.lr=-1: optim.lr: ", "expected a positive number"),
    override("set_second_batch_size", "batch.global=64", "--set batch.global=64: batch: ", "'per_device' and 'global'"),
    override("set_unknown_key", "optim.learning_rate=1", "--set optim.learning_rate=1: optim.learning_rate: ", "known"),
    override("set_without_equals", "optim.lr", "--set optim.lr: ", "expected KEY=VALUE"),
    override("set_empty_key", "=3", "--set =3: ", "the key before '=' is empty"),
    override("set_empty_segment", "optim..lr=1", "--set optim..lr=1: ", "empty segment"),
    override("set_malformed_value", "optim.lr=[1,", "--set optim.lr=[1,: ", "malformed YAML value"),
    override("set_list_by_name", "curriculum.name=x", "--set curriculum.name=x: curriculum.name: ", "curriculum.0"),
    override("set_index_out_of_range", "curriculum.3.mode=steps", "--set curriculum.3.mode=steps: ", "out of range"),
    override("set_into_a_number", "optim.lr.x=1", "--set optim.lr.x=1: optim.lr.x: ", "not a section or a list"),
]


def _case_id(case: Any) -> str:
    return (case.values[0] if hasattr(case, "values") else case).id


def _with_commands() -> list[Any]:
    params = []
    for command in COMMAND_OPTIONS:
        for case in CASES:
            inner, marks = (case.values[0], case.marks) if hasattr(case, "values") else (case, ())
            params.append(pytest.param(inner, command, marks=marks, id=f"{command}-{inner.id}"))
    return params


def _write(files: dict[str, Any]) -> None:
    for name, content in files.items():
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its content hash: equal snapshots mean nothing was written or changed."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder, so that messages name files by short relative paths and writes are visible."""
    monkeypatch.chdir(tmp_path)


def test_there_are_at_least_thirty_bad_inputs():
    assert len(CASES) >= 30
    assert len({_case_id(case) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("command", COMMAND_OPTIONS)
def test_the_base_recipe_is_accepted_by_every_command_that_reads_no_data(command, tmp_path, capsys):
    _write({"recipe.yaml": BASE})
    code = cli.run([command, "recipe.yaml", *COMMAND_OPTIONS[command]])
    err = capsys.readouterr().err
    if command == "train":  # reads the recipe, then fails on the data: the recipe itself was fine
        assert (code, err) == (2, "error: data.path: folder not found: no-such-data\n")
    else:
        assert (code, err) == (0, "")


@pytest.mark.parametrize(("case", "command"), _with_commands())
def test_bad_input_exits_2_with_one_line_naming_file_and_field(case, command, tmp_path, capsys):
    _write(case.files)
    before = _snapshot(tmp_path)
    code = cli.run([command, case.recipe, *case.args, *COMMAND_OPTIONS[command]])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"error: {case.starts}")
    assert case.says in line
    assert _snapshot(tmp_path) == before  # no run folder, no schedule plot, nothing else


def test_validate_reports_every_problem_of_a_recipe_at_once(capsys):
    _write({"recipe.yaml": changed({"optim.lr": -1, "batch.global": 64, "setup.depth": 3})})
    assert cli.run(["validate", "recipe.yaml"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert sorted(line.split(": ")[2] for line in lines) == ["batch", "optim.lr", "setup.depth"]
    assert all(line.startswith("error: recipe.yaml: ") for line in lines)


def test_validate_checks_every_file_and_fails_if_any_is_bad(capsys):
    _write({"good.yaml": BASE, "bad.yaml": changed({"optim.lr": -1})})
    assert cli.run(["validate", "good.yaml", "bad.yaml"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "good.yaml: ok\n"
    assert captured.err == "error: bad.yaml: optim.lr: expected a positive number, got -1\n"


OPTION_CASES = [
    (["inspect-schedule", "recipe.yaml", "--dataset-size", "0"], "error: --dataset-size: ", "got 0"),
    (["inspect-schedule", "recipe.yaml", "--dataset-size", "640", "--world-size", "0"], "error: --world-size: ", "0"),
    (["inspect-schedule", "recipe.yaml", "--dataset-size", "640", "--json", "--every", "0"], "error: --every: ", "0"),
    (["train", "recipe.yaml", "--output-dir", "run", "--resume", "missing"], "error: --resume: ", "not found: missing"),
    (["train", "recipe.yaml", "--output-dir", "run", "--resume"], "error: --resume: ", "no complete checkpoint in run"),
    (
        ["train", "recipe.yaml", "--output-dir", "run", "--resume", "old/checkpoint-00000005"],
        "error: --resume: old/checkpoint-00000005 ",
        "not a complete checkpoint (missing model.safetensors, optimizer.pt)",
    ),
]


@pytest.mark.parametrize(("argv", "starts", "says"), OPTION_CASES, ids=lambda value: None)
def test_bad_option_value_exits_2_with_one_line_naming_the_option(argv, starts, says, tmp_path, capsys):
    _write({"recipe.yaml": BASE, "old/checkpoint-00000005/trainer_state.json": "{}"})
    before = _snapshot(tmp_path)
    assert cli.run(argv) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(starts) and says in line
    assert _snapshot(tmp_path) == before  # --resume is checked before the run folder is made


USAGE_CASES = [
    (["train"], "Missing argument"),
    (["validate", "recipe.yaml", "--bogus"], "No such option: --bogus"),
    (["train", "recipe.yaml", "--stop-after", "0"], "'--stop-after'"),
    (["inspect-schedule", "recipe.yaml", "--dataset-size", "many"], "'--dataset-size'"),
    (["frobnicate"], "No such command 'frobnicate'"),
]


@pytest.mark.parametrize(("argv", "says"), USAGE_CASES, ids=lambda value: None)
def test_command_line_usage_error_exits_2_with_usage_and_no_traceback(argv, says, capsys):
    _write({"recipe.yaml": BASE})
    assert cli.run(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("Usage: curricurun")
    assert err.splitlines()[-1].startswith("Error: ") and says in err.splitlines()[-1]


def test_debug_raises_the_user_error_instead_of_printing_one_line(capsys):
    with pytest.raises(RecipeError, match="^nope.yaml: file not found$"):
        cli.run(["--debug", "validate", "nope.yaml"])


def _fresh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "curricurun", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_debug_in_a_fresh_process_shows_the_traceback(tmp_path):
    result = _fresh("--debug", "validate", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "curricurun/recipe/loading.py" in result.stderr  # where the problem was found, not only the CLI
    assert result.stderr.splitlines()[-1] == "curricurun.errors.RecipeError: nope.yaml: file not found"


def test_validate_in_a_fresh_process_prints_ok_and_one_line_per_bad_file(tmp_path):
    _write({"good.yaml": BASE, "broken.yaml": "setup: [unclosed\n", "negative.yaml": changed({"optim.lr": -1})})
    result = _fresh("validate", "good.yaml", "broken.yaml", "negative.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == "good.yaml: ok\n"
    assert result.stderr.splitlines() == [
        "error: broken.yaml:2:1: malformed YAML: expected ',' or ']', but got '<stream end>'",
        "error: negative.yaml: optim.lr: expected a positive number, got -1",
    ]


def test_train_in_a_fresh_process_rejects_a_second_batch_size_before_writing(tmp_path):
    _write({"recipe.yaml": BASE})
    result = _fresh("train", "recipe.yaml", "--set", "batch.global=64", "--output-dir", "run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: --set batch.global=64: batch: set exactly one of 'per_device' and 'global', "
        "found 'per_device' and 'global'\n"
    )
    assert not (tmp_path / "run").exists()
