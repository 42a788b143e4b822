"""Setup registry: a setup is a model family with its loss, metrics and batch handling.

Recipes name a setup by its registered name. Third-party setups come in through the entry-point group
``curricurun.setups`` (never through dotted import paths inside a YAML file someone sent you).
"""

from __future__ import annotations

import difflib
import functools
from importlib.metadata import entry_points

from curricurun.errors import UserError


@functools.cache
def available() -> dict[str, type]:
    """Built-in and installed setups by name; each class has ``Params`` (pydantic) and ``summary``."""
    from curricurun.setups.classification import ClassificationSetup

    setups: dict[str, type] = {ClassificationSetup.name: ClassificationSetup}
    for entry in entry_points(group="curricurun.setups"):
        setups.setdefault(entry.name, entry.load())
    return setups


def get(name: str) -> type:
    """The setup class called ``name``; an unknown name is a user error listing the known ones."""
    setups = available()
    if name not in setups:
        close = difflib.get_close_matches(name, setups, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"unknown setup '{name}'{hint}; known: {', '.join(sorted(setups))}")
    return setups[name]
