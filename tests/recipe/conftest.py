"""Fixtures for the recipe tests: a minimal valid recipe, a file writer, and fake component registries.

The fake registries stand in for ``curricurun.curriculum.registry`` and ``curricurun.setups`` so these
tests exercise the recipe layer alone; ``test_recipe_real_registries.py`` checks the real ones.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from curricurun.curriculum.base import CurriculumParams

MINIMAL: dict[str, Any] = {
    "setup": {"name": "classification", "model": "resnet18"},
    "data": {"source": "hub", "path": "uoft-cs/cifar10", "image_size": 32},
    "batch": {"global": 64},
    "optim": {"lr": 0.001},
    "training": {"epochs": 2},
}
DROP = "<drop>"
"""As a value in ``recipe_text`` changes: remove this key."""


class ScalesParams(CurriculumParams):
    pg: float = Field(0.0, ge=0, lt=1)
    pgwp: float = Field(0.0, ge=0)


class ResolutionParams(CurriculumParams):
    start: int = Field(gt=0)
    until_fraction: float = 0.5


class RampParams(CurriculumParams):
    max_magnitude: float = 9.0


class ClassificationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    num_classes: int = Field(10, gt=0)
    pretrained: bool = False


class VarParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = 16


def _component(name: str, params: type[BaseModel]) -> type:
    return type(name.title().replace("_", ""), (), {"name": name, "Params": params})


FAKE_CURRICULA = {
    cls.name: cls
    for cls in (
        _component("progressive_scales", ScalesParams),
        _component("progressive_resolution", ResolutionParams),
        _component("randaugment_ramp", RampParams),
    )
}
FAKE_SETUPS = {
    cls.name: cls for cls in (_component("classification", ClassificationParams), _component("var", VarParams))
}


@pytest.fixture
def fake_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace both registry modules, as the loader imports them by name, with the fakes above.

    The loader also imports ``curricurun.setups.base`` (the optional-hook check): imported for real first, so the
    fake ``curricurun.setups`` (a plain module, not a package) does not hide it when this file runs alone.
    """
    importlib.import_module("curricurun.setups.base")
    for module_name, classes in (
        ("curricurun.curriculum.registry", FAKE_CURRICULA),
        ("curricurun.setups", FAKE_SETUPS),
    ):
        module = types.ModuleType(module_name)
        module.available = lambda classes=classes: dict(classes)
        monkeypatch.setitem(sys.modules, module_name, module)


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """Write a file under a fresh working directory, so problems name it by its short relative path."""
    monkeypatch.chdir(tmp_path)

    def write_file(name: str, text: str) -> Path:
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def recipe_text() -> Callable[..., str]:
    """``recipe_text(changes, base=None)``: see :func:`make_recipe_text`."""
    return make_recipe_text


def make_recipe_text(changes: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> str:
    """YAML for ``base`` (default: the minimal recipe) with dotted-key ``changes`` (``"<drop>"`` removes a key)."""
    data = yaml.safe_load(yaml.safe_dump(MINIMAL if base is None else base))
    for dotted, value in (changes or {}).items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value == DROP:
            del node[last]
        else:
            node[last] = value
    return yaml.safe_dump(data, sort_keys=False)
