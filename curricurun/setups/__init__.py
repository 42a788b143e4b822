"""Setup registry: a setup is a model family with its loss, metrics and batch handling (protocol: setups/base.py).

Recipes name a setup by its registered name. Built-ins are imported only when asked for (VAR's transformer
should not cost a classification run its import time). Third-party setups come in through the entry-point group
``curricurun.setups`` (never through dotted import paths inside a YAML file someone sent you).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points

from curricurun.errors import UserError
from curricurun.naming import unknown_name

# name -> "module:Class"
_BUILTIN: dict[str, str] = {
    "classification": "curricurun.setups.classification:ClassificationSetup",
    "pyramid_flow": "curricurun.setups.pyramid_flow.setup:PyramidFlowSetup",
    "var": "curricurun.setups.var.setup:VarSetup",
    "vqvae": "curricurun.setups.vqvae.setup:VqvaeSetup",
    "yolo_nas_pose": "curricurun.setups.yolo_nas_pose.setup:YoloNasPoseSetup",
}


def _load(target: str) -> type:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@functools.cache
def _installed() -> dict[str, object]:
    return {entry.name: entry for entry in entry_points(group="curricurun.setups") if entry.name not in _BUILTIN}


def names() -> list[str]:
    """Every setup name, built-in and installed, without importing any of them."""
    return sorted({*_BUILTIN, *_installed()})


class _LazySetups(Mapping[str, type]):
    """Setup classes by name, each imported on first lookup: loading a recipe imports only the setup it names."""

    def __getitem__(self, name: str) -> type:
        if name not in self:
            raise KeyError(name)
        return get(name)

    def __contains__(self, name: object) -> bool:
        return name in _BUILTIN or name in _installed()

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(names())


def available() -> Mapping[str, type]:
    """Built-in and installed setups by name (imported when looked up); each has ``Params`` and ``summary``."""
    return _LazySetups()


@functools.cache
def get(name: str) -> type:
    """The setup class called ``name``; an unknown name is a user error listing the known ones."""
    if name in _BUILTIN:
        return _load(_BUILTIN[name])
    installed = _installed()
    if name in installed:
        return installed[name].load()
    raise UserError(unknown_name("setup", name, names()))
