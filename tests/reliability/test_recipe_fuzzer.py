"""A seeded recipe fuzzer: random mutations of every shipped recipe and random ``--set`` strings through ``validate``.

Every result must be exit 0 or exit 2 with ``error:`` lines only: never a traceback (an exception out of
``curricurun.cli.run``), never a timeout (5 s a case, counted with an interval timer), and never exit 0 for a
value the schema calls invalid (the oracle cases: a bool, zero or a negative number in a positive field, an
empty split name, a non-finite number, a seed past 2**32 - 1). Sizes: ``CURRICURUN_FUZZ_MUTANTS`` recipe mutants
(default 40) and ``CURRICURUN_FUZZ_SETS`` ``--set`` strings (default 20); ``CURRICURUN_FUZZ_SEED`` picks the run.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from curricurun import cli

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SHIPPED = sorted(RECIPES.glob("*.yaml"))
MUTANTS = int(os.environ.get("CURRICURUN_FUZZ_MUTANTS", "40"))
SETS = int(os.environ.get("CURRICURUN_FUZZ_SETS", "20"))
SEED = int(os.environ.get("CURRICURUN_FUZZ_SEED", "0"))
CASE_SECONDS = 5.0

HOSTILE_VALUES: list[Any] = [
    True,
    False,
    None,
    "",
    " ",
    "ü漢字🙂",
    "\u202e",
    "x" * 10_000,
    0,
    -1,
    1,
    2**31,
    2**32,
    2**64,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    5e-324,
    float("inf"),
    float("-inf"),
    float("nan"),
    0.5,
    [],
    {},
    [[[[[[1]]]]]],
    {"name": None},
    {"a": {"b": {"c": {"d": {}}}}},
    [1, "a", None, True],
    "../../etc/passwd",
    "/dev/zero",
    "null",
    "~",
]
HOSTILE_TEXT = [
    "&a [*a]",
    "[&a0 [x,x,x,x,x,x,x,x,x,x]"
    + "".join(f", &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9))
    + "]",
    "[" * 3000 + "]" * 3000,
    "{" * 100,
    "9" * 6000,
    "2001-13-45",
    "!!python/object:os.system ls",
    "!!binary AAAA",
    "*undefined",
    "{a: 1, a: 2}",
    "'unterminated",
    "\t",
    "- - -",
    ".inf",
    ".nan",
    "-.inf",
    "0x10",
    "0o17",
    "1_000",
    "yes",
    "no",
    "on",
    "1e-3",
    "[1, 2",
    "{name: classification, model: {x: 1}}",
    "\x00",
    "\ufeff1",
]
# (dotted path, value): invalid by the schema's own field types, so never exit 0 where the path exists.
ORACLE = [
    ("batch.per_device", True),
    ("batch.per_device", 0),
    ("batch.global", -8),
    ("batch.global", False),
    ("optim.lr", True),
    ("optim.lr", 0),
    ("optim.lr", float("inf")),
    ("optim.lr", float("nan")),
    ("data.image_size", 0),
    ("data.image_size", True),
    ("data.eval_split", ""),
    ("data.train_split", ""),
    ("seed", -1),
    ("seed", 2**32),
    ("seed", True),
    ("training.log_every_steps", True),
    ("training.epochs", float("inf")),
    ("training.steps", 0),
    ("optim.weight_decay", -0.1),
]


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expired(*_args: Any) -> None:
        raise TimeoutError(f"validate took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _outcome(args: list[str], capsys: pytest.CaptureFixture) -> tuple[str, int | None, list[str]]:
    """('ok', code, lines), ('traceback', None, [repr]) or ('timeout', None, [])."""
    try:
        with _time_limit(CASE_SECONDS):
            code = cli.run(["validate", *args])
    except TimeoutError:
        capsys.readouterr()
        return "timeout", None, []
    except BaseException as error:  # noqa: BLE001 - any escape from cli.run is the bug being hunted
        capsys.readouterr()
        return "traceback", None, [f"{type(error).__name__}: {error}"[:300]]
    return "ok", code, capsys.readouterr().err.splitlines()


def _leaves(tree: Any, prefix: tuple = ()) -> list[tuple]:
    children = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    paths = [prefix] if prefix else []
    for key, child in children:
        paths += _leaves(child, (*prefix, key))
    return paths


def _set_at(tree: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _mutate(data: dict, rng: random.Random) -> str:
    """One to three random edits of the parsed recipe, dumped back to YAML (or a hostile text edit)."""
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        paths = _leaves(data)
        if not paths:
            break
        path = rng.choice(paths)
        action = rng.random()
        if action < 0.15:
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        elif action < 0.25 and isinstance(data, dict):
            data[rng.choice(["extra", "trainning", "ü", "0"])] = rng.choice(HOSTILE_VALUES)
        else:
            _set_at(data, path, copy.deepcopy(rng.choice(HOSTILE_VALUES)))
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    if rng.random() < 0.2:
        text += f"hostile: {rng.choice(HOSTILE_TEXT)}\n"
    if rng.random() < 0.1:
        text = text[: rng.randrange(len(text))]
    return text


def _check(outcome: tuple[str, int | None, list[str]], case: str, failures: list[str]) -> None:
    kind, code, lines = outcome
    if kind != "ok":
        failures.append(f"{case}: {kind} {lines}")
    elif code not in (0, 2) or (code == 2 and (not lines or not all(line.startswith("error: ") for line in lines))):
        failures.append(f"{case}: exit {code}, stderr {lines[:3]}")


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    """Mutants are written next to a copy of recipes/, so a mutant that keeps its ``base:`` still finds it."""
    shutil.copytree(RECIPES, tmp_path / "recipes")
    return tmp_path / "recipes"


def test_recipe_mutants_never_traceback_or_hang(recipe_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rng = random.Random(SEED)
    parsed = {path.name: yaml.safe_load(path.read_text(encoding="utf-8")) for path in SHIPPED}
    failures: list[str] = []
    counts = {"exit 0": 0, "exit 2": 0}
    for index in range(MUTANTS):
        name = SHIPPED[index % len(SHIPPED)].name
        mutant = recipe_dir / f"mutant_{index}_{name}"
        mutant.write_text(_mutate(parsed[name], rng), encoding="utf-8")
        outcome = _outcome([str(mutant)], capsys)
        _check(outcome, f"mutant {index} of {name} (seed {SEED})", failures)
        if outcome[0] == "ok":
            counts[f"exit {outcome[1]}"] += 1
    print(f"recipe mutants: {MUTANTS}, {counts}, failures {len(failures)}")  # shown with pytest -s
    assert not failures, "\n".join(failures)


def test_set_strings_never_traceback_or_hang(capsys: pytest.CaptureFixture) -> None:
    rng = random.Random(SEED + 1)
    demo = yaml.safe_load((RECIPES / "demo.yaml").read_text(encoding="utf-8"))
    keys = [".".join(str(part) for part in path) for path in _leaves(demo)] + ["", ".", "a..b", "seed.x", "0", "ü"]
    failures: list[str] = []
    for _ in range(SETS):
        key = rng.choice(keys)
        value = rng.choice(HOSTILE_TEXT) if rng.random() < 0.5 else yaml.safe_dump(rng.choice(HOSTILE_VALUES))
        text = f"{key}={value.strip()}" if rng.random() < 0.9 else value.strip()
        _check(_outcome([str(RECIPES / "demo.yaml"), "--set", text], capsys), f"--set {text[:80]!r}", failures)
    print(f"--set strings: {SETS}, failures {len(failures)}")  # shown with pytest -s
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("path", "value"), ORACLE, ids=[f"{path}={value}" for path, value in ORACLE])
def test_values_the_schema_calls_invalid_are_refused(
    path: str, value: Any, recipe_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """Every shipped recipe where the field exists (or its section does): the bad value gives exit 2."""
    tried = 0
    for recipe in SHIPPED:
        data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
        section = data
        parts = path.split(".")
        for part in parts[:-1]:
            section = section.get(part) if isinstance(section, dict) else None
        if not isinstance(section, dict) or (parts[-1] not in section and len(parts) > 1 and parts[0] == "batch"):
            continue
        section[parts[-1]] = value
        mutant = recipe_dir / f"oracle_{recipe.name}"
        mutant.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        kind, code, lines = _outcome([str(mutant)], capsys)
        assert kind == "ok" and code == 2, f"{recipe.name} with {path}={value!r}: {kind}, exit {code}, {lines}"
        assert all(line.startswith("error: ") for line in lines) and any(path in line for line in lines), lines
        tried += 1
    assert tried > 0
