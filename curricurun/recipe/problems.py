"""Turn validation failures into one-line messages a user can act on.

Every problem reads ``<where>: <dotted.path>: <what was expected>, got <what was found>``, e.g.
``recipe.yaml: optim.lr: expected a positive number, got 'abc'``. The expectation is worked out from the
field's own type and bounds (``float`` with ``gt=0`` → "a positive number"), so a value that fails to
parse and a value out of bounds get the same sentence. Unknown keys get a difflib suggestion, as
torchtune's ``tune validate`` reports every problem of a config at once (torchtune ``config/_validate.py``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ValidationError

from curricurun.naming import did_you_mean

Loc = tuple[str | int, ...]

# Pydantic error types whose message we rebuild from the field's type and bounds.
_EXPECTATION_ERRORS = frozenset(
    "bool_parsing bool_type dict_type enum finite_number float_parsing float_type greater_than greater_than_equal"
    " int_from_float int_parsing int_type less_than less_than_equal list_type literal_error model_attributes_type"
    " model_type string_type tuple_type".split()
)
_MAX_SHOWN = 60


def show_value(value: Any) -> str:
    """A found value as the user would write it: strings quoted, YAML spellings for null and booleans."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(show_value(item) for item in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def dotted(loc: Loc) -> str:
    """``('curriculum', 0, 'pg')`` → ``curriculum.0.pg``: the same spelling ``--set`` accepts."""
    return ".".join(str(part) for part in loc)


def format_problem(where: str, loc: Loc, message: str) -> str:
    """``where: dotted.loc: message``, leaving out the path when the problem is about the whole recipe."""
    return f"{where}: {dotted(loc)}: {message}" if loc else f"{where}: {message}"


def validation_problems(error: ValidationError, model: type[BaseModel], prefix: Loc = ()) -> list[tuple[Loc, str]]:
    """Each pydantic error of ``model.model_validate(...)`` as ``(location, message)``.

    Args:
        error: the exception pydantic raised.
        model: the model that was validated, used to find each failing field's type and bounds.
        prefix: where that model sits in the recipe (``('curriculum', 0)`` for a curriculum's Params).
    """
    problems: list[tuple[Loc, str]] = []
    for detail in error.errors(include_url=False):
        loc = tuple(detail["loc"])
        if detail["type"] == "missing" and loc and isinstance(loc[-1], int) and _is_tuple(_field_at(model, loc[:-1])):
            # A too-short fixed-length list: pydantic blames the first absent item; blame the list instead.
            loc, detail = loc[:-1], {**detail, "type": "too_short"}
        problem = (prefix + loc, _message(detail, model, loc))
        if problem not in problems:
            problems.append(problem)
    return problems


def _message(detail: Any, model: type[BaseModel], loc: Loc) -> str:
    kind, found = detail["type"], detail.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return _unknown_key(loc, model)
    if kind in ("value_error", "assertion_error"):
        return str(detail["ctx"]["error"])
    field = _field_at(model, loc)
    if kind in _EXPECTATION_ERRORS or _is_tuple(field):
        expected = _expectation(*field) if field else None
        if expected:
            suggestion = did_you_mean(found, _literal_strings(field[0])) if kind == "literal_error" else ""
            return f"expected {expected}, got {show_value(found)}{suggestion}"
    text = detail["msg"]
    lead = "Input should be "
    text = "expected " + text[len(lead) :] if text.startswith(lead) else text[0].lower() + text[1:]
    return f"{text}, got {show_value(found)}"


def _unknown_key(loc: Loc, model: type[BaseModel]) -> str:
    key = loc[-1]
    parent = _field_at(model, loc[:-1])
    inner = _unwrap(parent[0])[0] if parent else None
    if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
        return f"unknown key {show_value(key)}"
    known = [info.alias or name for name, info in inner.model_fields.items()]
    suggestion = did_you_mean(key, known) or f"; known: {', '.join(known)}"
    return f"unknown key {show_value(key)}{suggestion}"


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """Strip ``Annotated`` and ``| None``: the bare type, its constraint metadata, and whether null is allowed."""
    metadata: list[Any] = []
    nullable = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata.extend(extra)
        elif origin in (Union, types.UnionType) and type(None) in typing.get_args(annotation):
            rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(rest) != 1:
                return annotation, metadata, nullable
            annotation, nullable = rest[0], True
        else:
            return annotation, metadata, nullable


def _field_at(model: type[BaseModel], loc: Loc) -> tuple[Any, list[Any]] | None:
    """The annotation and constraint metadata of the field at ``loc`` inside ``model``, if it can be followed."""
    annotation: Any = model
    metadata: list[Any] = []
    for part in loc:
        inner, _, _ = _unwrap(annotation)
        origin, args = typing.get_origin(inner), typing.get_args(inner)
        if isinstance(part, str) and isinstance(inner, type) and issubclass(inner, BaseModel):
            info = next((i for n, i in inner.model_fields.items() if part in (n, i.alias)), None)
            if info is None:
                return None
            annotation, metadata = info.annotation, list(info.metadata)
        elif isinstance(part, int) and origin is list and args:
            annotation, metadata = args[0], []
        elif isinstance(part, int) and origin is tuple and args:
            annotation, metadata = (args[0] if args[-1] is Ellipsis else args[min(part, len(args) - 1)]), []
        else:
            return None
    return annotation, metadata


def _bounds(metadata: Sequence[Any]) -> dict[str, float]:
    bounds: dict[str, float] = {}
    for item in metadata:
        for constraint in [item, *getattr(item, "metadata", [])]:
            for name in ("gt", "ge", "lt", "le"):
                if getattr(constraint, name, None) is not None:
                    bounds[name] = getattr(constraint, name)
    return bounds


def _number(noun: str, article: str, bounds: dict[str, float]) -> str:
    if bounds == {"gt": 0}:
        return f"a positive {noun}"
    if bounds == {"ge": 0}:
        return f"a non-negative {noun}"
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    limits = " and ".join(f"{symbols[name]} {value:g}" for name, value in bounds.items())
    return f"{article} {noun} {limits}".rstrip()


def _literal_strings(annotation: Any) -> list[str]:
    inner = _unwrap(annotation)[0]
    return [str(arg) for arg in typing.get_args(inner)] if typing.get_origin(inner) is Literal else []


def _is_tuple(field: tuple[Any, list[Any]] | None) -> bool:
    return field is not None and typing.get_origin(_unwrap(field[0])[0]) is tuple


def _expectation(annotation: Any, metadata: list[Any]) -> str | None:
    """What a field accepts, in words: "a positive number", "one of 'no', 'fp16'", "a list of 2 numbers"."""
    inner, more, nullable = _unwrap(annotation)
    bounds = _bounds([*metadata, *more])
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is Literal:
        text = "one of " + ", ".join(show_value(arg) for arg in args)
    elif inner is bool:
        text = "true or false"
    elif inner is int:
        text = _number("integer", "an", bounds)
    elif inner is float:
        text = _number("number", "a", bounds)
    elif inner is str:
        text = "a string"
    elif origin is list:
        text = "a list"
    elif origin is tuple and args and args[-1] is not Ellipsis:
        numeric = all(_unwrap(arg)[0] in (int, float) for arg in args)
        text = f"a list of {len(args)} {'numbers' if numeric else 'values'}"
    elif origin is dict or (isinstance(inner, type) and issubclass(inner, BaseModel)):
        text = "a mapping"
    else:
        return None
    return f"{text} (or null)" if nullable else text
