"""Checks of every field of a checkpoint's ``trainer_state.json`` before a resume trusts it.

A damaged or hand-edited state must give one line naming the field, never a traceback halfway through
the resume (when the run directory may already have been written to). Only the shape is checked here;
whether the checkpoint fits the current recipe is :mod:`curricurun.engine.resume`'s job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _integer(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _sampler(value: Any) -> bool:
    keys = ("seed", "next_step", "epoch_index", "epoch_offset")
    return isinstance(value, dict) and all(_integer(value.get(key)) for key in keys)


def _early_stopping(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and (value.get("best") is None or _number(value.get("best")))
        and _integer(value.get("bad_evals"))
    )


def _eval_history(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(record, dict) and all(isinstance(key, str) and _number(v) for key, v in record.items())
        for record in value
    )


def _manifest(value: Any) -> bool:
    if not isinstance(value, dict) or not {"model.safetensors", "optimizer.pt"} <= value.keys():
        return False
    return all(
        isinstance(entry, dict) and _integer(entry.get("size")) and _SHA256.match(str(entry.get("sha256", "")))
        for entry in value.values()
    )


# field -> (check, what was expected). ``resume_changes`` and ``skipped_steps`` are optional.
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "step": (_integer, "a whole number >= 0"),
    "total_steps": (lambda v: _integer(v, 1), "a whole number >= 1"),
    "epoch": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "world_size": (lambda v: _integer(v, 1), "a whole number >= 1"),
    "sampler": (_sampler, "an object with whole numbers seed, next_step, epoch_index, epoch_offset"),
    "curriculum": (lambda v: isinstance(v, dict), "an object"),
    "lr_rule": (lambda v: isinstance(v, dict), "an object"),
    "early_stopping": (_early_stopping, "an object with best (number or null) and bad_evals (whole number)"),
    "eval_history": (_eval_history, "a list of objects of finite numbers"),
    "recipe": (lambda v: isinstance(v, dict), "an object (the resolved recipe)"),
    "manifest": (_manifest, "an object of file -> {size, sha256} including model.safetensors and optimizer.pt"),
}
OPTIONAL_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "resume_changes": (lambda v: isinstance(v, list), "a list"),
    "skipped_steps": (_integer, "a whole number >= 0"),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def trainer_state_problem(state: Any, directory_step: int, total_steps: int) -> str | None:
    """The first problem of a loaded trainer state, phrased as ``field 'x': expected ..., found ...``.

    Args:
        state: the parsed JSON.
        directory_step: the step in the checkpoint directory's name (must equal ``step``).
        total_steps: the current plan's length (a checkpoint past it cannot be resumed).
    """
    if not isinstance(state, dict):
        return f"expected a JSON object, found {type(state).__name__}"
    for name, (check, expected) in FIELDS.items():
        if name not in state:
            return f"field '{name}' is missing"
        if not check(state[name]):
            return f"field '{name}': expected {expected}, found {_shown(state[name])}"
    for name, (check, expected) in OPTIONAL_FIELDS.items():
        if name in state and not check(state[name]):
            return f"field '{name}': expected {expected}, found {_shown(state[name])}"
    step = state["step"]
    if step != directory_step:
        return f"field 'step': {step} but the directory is named for step {directory_step}"
    if step > min(state["total_steps"], total_steps):
        return f"field 'step': {step} is past the end of the plan ({min(state['total_steps'], total_steps)} steps)"
    return None
