"""Hostile YAML (curricurun/recipe/yaml_reader.py): alias bombs, deep nesting, recursive aliases, huge numbers.

Each is refused by ``curricurun validate`` with one line and exit 2, as a recipe file and as a ``--set`` value,
quickly: a 9-level "billion laughs" document stands for 10**10 values and once hung ``validate``; 10,000
nested lists overflowed PyYAML's recursive composer (a RecursionError traceback). The time bound here is loose
(a shared, loaded machine); on an idle one each case takes well under a second, start-up included.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from curricurun import cli

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def _bomb(levels: int) -> str:
    """A flow list whose last entry expands to 10**levels scalars through nested aliases."""
    parts = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    parts += [f"&a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]" for level in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


DEEP = "[" * 10_000 + "]" * 10_000

CASES = [
    ("alias_bomb", _bomb(9), "expands to more than 100,000 values"),
    ("nesting_10000", DEEP, "nested deeper than 64 levels"),
    ("alias_into_own_anchor", "&a [*a]", "an alias refers to its own anchor"),
    ("alias_mapping_cycle", "&a {x: *a}", "an alias refers to its own anchor"),
    ("aliases_nest_too_deep", "[&a0 [x]" + "".join(f", &a{i} [*a{i - 1}]" for i in range(1, 70)) + "]", "deeper"),
    ("int_5000_digits", "9" * 5000, "a number has more than 4,300 digits"),
    ("impossible_date", "2001-13-45", "cannot read a value: month must be in 1..12"),
]


def _validate(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[str], float]:
    start = time.perf_counter()
    code = cli.run(["validate", *args])
    elapsed = time.perf_counter() - start
    return code, capsys.readouterr().err.splitlines(), elapsed


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_hostile_yaml_file_is_one_line_exit_2(
    value: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    recipe = tmp_path / "hostile.yaml"
    recipe.write_text(f"seed: {value}\n", encoding="utf-8")
    code, lines, elapsed = _validate([str(recipe)], capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {recipe}:1:") and expected in lines[0]
    assert elapsed < 5.0


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_hostile_yaml_set_value_is_one_line_exit_2(value: str, expected: str, capsys: pytest.CaptureFixture) -> None:
    code, lines, elapsed = _validate([str(DEMO), "--set", f"setup.model={value}"], capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: --set setup.model=") and expected in lines[0]
    assert len(lines[0]) < 300  # the override is shortened, not echoed whole
    assert elapsed < 5.0


def test_a_bomb_inside_a_real_recipe_section_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The bomb as a value the loader would walk (a setup parameter), after a valid recipe's other sections."""
    recipe = tmp_path / "bomb_in_setup.yaml"
    model = "  model: test_resnet\n"
    text = DEMO.read_text(encoding="utf-8").replace(model, f"{model}  x: {_bomb(9)}\n")
    recipe.write_text(text, encoding="utf-8")
    code, lines, _ = _validate([str(recipe)], capsys)
    assert code == 2 and len(lines) == 1 and "expands to more than 100,000 values" in lines[0]


def test_within_the_limits_still_loads(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An anchor and an alias within the limits are ordinary YAML: no false refusal."""
    text = DEMO.read_text(encoding="utf-8").replace("seed: 0", "seed: &s 7")
    text = text.replace("  log_every_steps: 25", "  log_every_steps: *s")
    recipe = tmp_path / "aliases_ok.yaml"
    recipe.write_text(text, encoding="utf-8")
    code, lines, _ = _validate([str(recipe)], capsys)
    assert code == 0, lines


def test_a_base_name_too_long_for_the_file_system_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Found by tests/reliability/test_recipe_fuzzer.py: ``base: xxx...`` (10,000 chars) raised ENAMETOOLONG."""
    recipe = tmp_path / "long_base.yaml"
    recipe.write_text("base: " + "x" * 10_000 + "\n", encoding="utf-8")
    code, lines, _ = _validate([str(recipe)], capsys)
    assert code == 2 and len(lines) == 1 and "base: cannot use 'xxx" in lines[0] and len(lines[0]) < 300, lines
