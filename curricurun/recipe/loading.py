"""Load a recipe: read YAML, follow ``base:`` files, apply ``--set`` overrides, validate, report every problem.

Each value in the merged recipe remembers which file or override wrote it, so a problem is reported
where the user can fix it: ``base.yaml: optim.lr: ...`` when a base file wrote the bad value,
``--set optim.lr=abc: optim.lr: ...`` when an override did. The rule, for a problem at a location:

- a value exists there: the source that last wrote anything under it (for a leaf, its writer; for a
  section that failed a rule tying its fields together, the latest file or override that touched it);
- nothing exists there (a required field is missing): the source that introduced the nearest enclosing
  section, or the loaded recipe file itself for a missing top-level section.

Merging follows the issue: mappings merge key by key, lists and scalars replace, a base may have a base.
``recipe/`` imports no torch: the component registries are imported only when a recipe names a component.
"""

from __future__ import annotations

import copy
import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from curricurun.errors import RecipeError
from curricurun.naming import unknown_name
from curricurun.recipe.problems import Loc, dotted, format_problem, show_value, validation_problems
from curricurun.recipe.schema import Recipe
from curricurun.recipe.yaml_reader import YamlLimitError, parse_yaml

_SETUP_REGISTRY = "curricurun.setups"
_SETUP_BASE = "curricurun.setups.base"
_CURRICULUM_REGISTRY = "curricurun.curriculum.registry"
_PIPELINE_REGISTRY = "curricurun.data.pipelines"


@dataclass(frozen=True)
class _Source:
    """Where values came from: a file (as the user would name it) or ``--set key=value``; later ranks win."""

    label: str
    rank: int


class _BadPath(Exception):
    def __init__(self, loc: Loc, message: str):
        super().__init__(message)
        self.loc, self.message = loc, message


class _SourcedTree:
    """The recipe being assembled, with the source of every node (section, list entry or value)."""

    def __init__(self, main_label: str):
        self.main_label = main_label
        self.data: dict[Any, Any] = {}
        self.origins: dict[Loc, _Source] = {}

    def merge(self, incoming: Mapping[Any, Any], source: _Source) -> None:
        """Lay ``incoming`` over the tree: mappings merge recursively, anything else replaces."""
        self._merge_into(self.data, incoming, (), source)

    def _merge_into(self, target: dict[Any, Any], incoming: Mapping[Any, Any], loc: Loc, source: _Source) -> None:
        for key, value in incoming.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                self._merge_into(target[key], value, (*loc, key), source)
            else:
                self._replace(target, key, value, (*loc, key), source)

    def _replace(self, container: Any, key: Any, value: Any, loc: Loc, source: _Source) -> None:
        self.origins = {path: origin for path, origin in self.origins.items() if path[: len(loc)] != loc}
        container[key] = copy.deepcopy(value)
        self._mark(loc, value, source)

    def _mark(self, loc: Loc, value: Any, source: _Source) -> None:
        self.origins[loc] = source
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            self._mark((*loc, key), child, source)

    def set(self, parts: Sequence[str], value: Any, source: _Source) -> None:
        """Set the value at a dotted path, creating missing sections; digits index into lists."""
        container: Any = self.data
        loc: Loc = ()
        for depth, part in enumerate(parts):
            key = self._key(container, part, loc)
            loc = (*loc, key)
            if depth == len(parts) - 1:
                existing = container[key] if isinstance(container, list) else container.get(key)
                if isinstance(value, dict) and isinstance(existing, dict):
                    # A mapping merges like a base file does: `--set data='{source: hub, path: x}'` keeps image_size.
                    self._merge_into(existing, value, loc, source)
                else:
                    self._replace(container, key, value, loc, source)
                return
            child = container[key] if isinstance(container, list) else container.get(key)
            if child is None:
                if parts[depth + 1].isdigit():
                    message = f"{dotted(loc)} is not set, so it has no entry {parts[depth + 1]}"
                    raise _BadPath((*loc, parts[depth + 1]), message)
                self._replace(container, key, {}, loc, source)
                child = container[key]
            elif not isinstance(child, dict | list):
                message = f"{dotted(loc)} is {show_value(child)}, not a section or a list"
                raise _BadPath((*loc, parts[depth + 1]), message)
            container = child

    @staticmethod
    def _key(container: Any, part: str, loc: Loc) -> str | int:
        if isinstance(container, dict):
            return part
        if not part.isdigit():
            message = f"{dotted(loc)} is a list: address an entry by its index, e.g. {dotted((*loc, 0))}"
            raise _BadPath((*loc, part), message)
        if int(part) >= len(container):
            entries = "1 entry" if len(container) == 1 else f"{len(container)} entries"
            raise _BadPath((*loc, part), f"index {part} is out of range: the list has {entries}")
        return int(part)

    def source_for(self, loc: Loc) -> str:
        """Who to name for a problem at ``loc`` (see the module docstring for the rule)."""
        if loc and loc in self.origins:
            within = [origin for path, origin in self.origins.items() if path[: len(loc)] == loc]
            return max(within, key=lambda origin: origin.rank).label
        for depth in range(len(loc) - 1, 0, -1):
            if loc[:depth] in self.origins:
                return self.origins[loc[:depth]].label
        return self.main_label


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read, inherit, override and validate a recipe file.

    Args:
        path: the recipe's YAML file; problems name it as given here, and ``name`` defaults to its stem.
        overrides: ``a.b.c=value`` strings (the CLI's ``--set``), applied in order after inheritance. Each
            replaces the value at its path (a mapping value merges into a section, like a base file), creating missing
            sections; a number in the path indexes a list (``curriculum.0.pg``). Values are YAML
            (``1e-3``, ``true``, ``[1, 2]``, ``null``; an empty value is null).

    Raises:
        RecipeError: with every problem found, one line each.
    """
    path = Path(path)
    chain = _read_chain(path, str(path))
    tree = _SourcedTree(str(path))
    for rank, (label, data) in enumerate(reversed(chain)):
        tree.merge(data, _Source(label, rank))
    applied = (_apply_override(tree, text, rank) for rank, text in enumerate(overrides, start=len(chain)))
    problems = [problem for problem in applied if problem is not None]
    if tree.data.get("name") is None:
        tree.set(["name"], path.stem, _Source(str(path), len(chain) - 1))
    return _validate(tree, problems)


def recipe_from_dict(data: Mapping[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate an already resolved recipe, e.g. the one stored with a checkpoint; problems name ``source``."""
    tree = _SourcedTree(source)
    tree.merge(data, _Source(source, 0))
    return _validate(tree, [])


def dump_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML that :func:`load_recipe` reads back to an equal recipe."""
    return yaml.safe_dump(recipe.resolved, sort_keys=False, allow_unicode=True)


def _read_chain(path: Path, label: str) -> list[tuple[str, dict[Any, Any]]]:
    """The recipe file and its bases, nearest first; a base is found relative to the file naming it."""
    chain: list[tuple[str, dict[Any, Any]]] = []
    visited: list[Path] = []
    while True:
        data = _read_yaml_mapping(path, label)
        chain.append((label, data))
        visited.append(path.resolve())
        base = data.pop("base", None)
        if base is None:
            return chain
        if not isinstance(base, str) or not base.strip():
            raise RecipeError([f"{label}: base: expected a file path, got {show_value(base)}"])
        base_path = path.parent / base
        base_label = os.path.normpath(os.path.join(os.path.dirname(label), base))
        try:
            found = base_path.is_file()
        except OSError as error:  # e.g. a name past the file system's length limit (ENAMETOOLONG)
            raise RecipeError([f"{label}: base: cannot use {show_value(base)}: {error.strerror}"]) from None
        if not found:
            raise RecipeError([f"{label}: base: file not found: {base}"])
        if base_path.resolve() in visited:
            cycle = " -> ".join([name for name, _ in chain] + [base_label])
            raise RecipeError([f"{label}: base: inheritance cycle: {cycle}"])
        path, label = base_path, base_label


def _read_yaml_mapping(path: Path, label: str) -> dict[Any, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"{label}: file not found"]) from None
    except IsADirectoryError:
        raise RecipeError([f"{label}: is a directory, expected a YAML file"]) from None
    except UnicodeDecodeError:
        raise RecipeError([f"{label}: not UTF-8 text, expected a YAML file"]) from None
    except OSError as error:
        raise RecipeError([f"{label}: cannot read: {error.strerror}"]) from None
    try:
        data = parse_yaml(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        kind = "" if isinstance(error, YamlLimitError) else "malformed YAML: "
        raise RecipeError([f"{label}:{mark.line + 1}:{mark.column + 1}: {kind}{error.problem}"]) from None
    except yaml.YAMLError as error:
        raise RecipeError([f"{label}: malformed YAML: {error}"]) from None
    if not isinstance(data, dict):
        found = "an empty file" if data is None else "a list" if isinstance(data, list) else show_value(data)
        raise RecipeError([f"{label}: expected a mapping of sections (setup:, data:, ...) at the top, got {found}"])
    return data


def _apply_override(tree: _SourcedTree, text: str, rank: int) -> str | None:
    """Apply one ``key=value`` override; return its problem, or None if it applied."""
    where = f"--set {text if len(text) <= 80 else text[:77] + '...'}"  # a 20,000-character value stays one short line
    key, equals, raw_value = text.partition("=")
    if not equals:
        return f"{where}: expected KEY=VALUE, e.g. --set optim.lr=0.001"
    parts = [part.strip() for part in key.strip().split(".")]
    if not key.strip():
        return f"{where}: the key before '=' is empty"
    if not all(parts):
        return f"{where}: empty segment in the key {key.strip()!r}"
    try:
        value = parse_yaml(raw_value)
    except YamlLimitError as error:
        return f"{where}: {error.problem}"
    except yaml.YAMLError as error:
        return f"{where}: malformed YAML value: {getattr(error, 'problem', None) or error}"
    try:
        tree.set(parts, value, _Source(where, rank))
    except _BadPath as bad:
        return format_problem(where, bad.loc, bad.message)
    return None


def _validate(tree: _SourcedTree, problems: list[str]) -> Recipe:
    """Validate the sections and the components together, so that one run reports every problem."""
    recipe = None
    found: list[tuple[Loc, str]] = []
    try:
        recipe = Recipe.model_validate(tree.data)
    except ValidationError as error:
        found += validation_problems(error, Recipe)
    setup_params, curriculum_params, component_problems = _validate_components(tree.data)
    found += component_problems
    problems += [format_problem(tree.source_for(loc), loc, message) for loc, message in found]
    if problems or recipe is None or setup_params is None:
        raise RecipeError(problems)
    recipe.attach_components(setup_params, curriculum_params)
    conflicts = importlib.import_module(_PIPELINE_REGISTRY).augment_conflicts(recipe.data)
    if conflicts:
        raise RecipeError([format_problem(tree.source_for(loc), loc, message) for loc, message in conflicts])
    setup_class = importlib.import_module(_SETUP_REGISTRY).available()[recipe.setup.name]
    setup_checks = importlib.import_module(_SETUP_BASE).optional_hooks(setup_class).recipe_checks
    if setup_checks is not None:  # fields the setup would otherwise ignore (setups/base.py SetupWithRecipeChecks)
        cross = setup_checks.recipe_problems(recipe)
        if cross:
            raise RecipeError([format_problem(tree.source_for(loc), loc, message) for loc, message in cross])
    return recipe


def _validate_components(data: Mapping[Any, Any]) -> tuple[BaseModel | None, list[BaseModel], list[tuple[Loc, str]]]:
    """Check ``setup`` and each ``curriculum`` entry against its registered class's ``Params`` model.

    Entries that are not ``{name: <string>, ...}`` mappings are left to the schema's own messages.
    """
    problems: list[tuple[Loc, str]] = []
    registries: dict[str, dict[str, type]] = {}

    def params_of(spec: Any, loc: Loc, kind: str, registry: str) -> BaseModel | None:
        if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)):
            return None
        if registry not in registries:
            registries[registry] = importlib.import_module(registry).available()
        known = registries[registry]
        name = spec["name"]
        if name not in known:
            problems.append(((*loc, "name"), unknown_name(kind, name, known, show_value(name))))
            return None
        params_model = known[name].Params
        try:
            return params_model.model_validate({key: value for key, value in spec.items() if key != "name"})
        except ValidationError as error:
            problems.extend(validation_problems(error, params_model, loc))
            return None

    setup_params = params_of(data.get("setup"), ("setup",), "setup", _SETUP_REGISTRY)
    entries = data.get("curriculum")
    curriculum_params = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        params = params_of(entry, ("curriculum", index), "curriculum", _CURRICULUM_REGISTRY)
        if params is not None:
            curriculum_params.append(params)
    data_section = data.get("data")
    if isinstance(data_section, dict) and "pipeline" in data_section:  # named image pipeline (data/pipelines/)
        params_of(data_section["pipeline"], ("data", "pipeline"), "pipeline", _PIPELINE_REGISTRY)
    return setup_params, curriculum_params, problems
