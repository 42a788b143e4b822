"""The LR schedule shapes a recipe may name and the one parser of VAR's ``lin<T>``.

Read by the recipe schema (``schedule.shape``, which also accepts ``auto``) and by
:class:`curricurun.lr.schedule.LrSchedule`, so that both accept exactly the same names. Torch-free:
``curricurun validate`` imports it.
"""

from __future__ import annotations

import re

GENERIC_SHAPES = ("constant", "cosine", "linear", "step", "sg_cosine")
VAR_NAMED_SHAPES = ("lin", "lin0", "lin00", "cos", "exp")
"""VAR's named shapes (``utils/lr_control.py:10-43``); ``lin<T>`` with 0 < T < 1 is its two-slope decay."""
AUTO = "auto"
"""``schedule.shape: auto``: the curriculum's preferred shape (VAR's ``lin<pg>``), else ``cosine``."""
NAMED_SHAPES = GENERIC_SHAPES + VAR_NAMED_SHAPES
VALID_SHAPES_TEXT = ", ".join(NAMED_SHAPES[:-2]) + ", lin<T> with 0<T<1, " + ", ".join(NAMED_SHAPES[-2:])

_LIN_T = re.compile(r"lin(\d+\.?\d*|\.\d+)")


def lin_threshold(shape: str) -> float | None:
    """T of a ``lin<T>`` shape written as a plain decimal (``lin0.7``, ``lin.5``), or None for any other text.

    The value is not range-checked here: :func:`shape_problem` says when it is outside (0, 1).
    """
    match = _LIN_T.fullmatch(shape)
    return float(match.group(1)) if match else None


def shape_problem(shape: str, *, allow_auto: bool = False) -> str | None:
    """Why ``shape`` is not a valid shape (one phrase, for the recipe's error line), or None when it is."""
    names = NAMED_SHAPES + ((AUTO,) if allow_auto else ())
    if shape in names:
        return None
    threshold = lin_threshold(shape)
    if threshold is not None:
        return None if 0 < threshold < 1 else "expected lin<T> with 0 < T < 1"
    return f"expected one of {', '.join(repr(name) for name in names)} or lin<T> with 0 < T < 1"


def parse_shape(shape: str) -> str:
    """Validate a concrete LR schedule shape name (not ``auto``) and return it.

    Raises:
        ValueError: naming the valid shapes.
    """
    if shape_problem(shape) is None:
        return shape
    raise ValueError(f"unknown LR schedule shape '{shape}'; valid shapes: {VALID_SHAPES_TEXT}")


def is_var_shape(shape: str) -> bool:
    """VAR's shapes have no hold and count progress as ``pasd`` (``utils/lr_control.py:10-43``)."""
    return shape not in GENERIC_SHAPES


def resolve_auto(shape: str, preferred: str | None) -> str:
    """The concrete shape of ``schedule.shape``: ``auto`` becomes the curriculum's preference, else cosine."""
    return (preferred or "cosine") if shape == AUTO else shape
