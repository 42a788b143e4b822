"""Choose the checkpoint a ``--resume`` continues from, checking everything before anything is written.

Order of checks for each candidate (newest first): the trainer state parses and every field is valid
(:mod:`curricurun.engine.trainer_state`), every file matches the manifest's size and sha256, the weights
and optimizer state load, the EMA state is there when the recipe has EMA. A candidate that fails is
skipped with one line saying why and the previous complete checkpoint is tried (``--resume`` with a run
directory or alone); an explicit checkpoint directory is never replaced by another one. Then the stored
resolved recipe is compared with the current one: a change that breaks an exact continuation (world size,
batch, data, curriculum, optimizer, LR, schedule, seed, ...) is refused unless ``--resume-changed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curricurun.engine.checkpoint import (
    CHECKPOINT_PATTERN,
    TRAINER_STATE,
    list_checkpoints,
    load_checkpoint,
    manifest_problem,
    resolve_resume_path,
)
from curricurun.engine.trainer_state import trainer_state_problem
from curricurun.errors import UserError

# Resolved-recipe keys (dotted prefixes) whose change leaves the trained weights bit for bit the same.
SAFE_TO_CHANGE = (
    "description",
    "training.log_every_steps",
    "training.log_with",
    "training.output_dir",
    "training.checkpoint",
    "data.num_workers",
)
# Evaluation only changes what is measured, unless early stopping reads it.
SAFE_WITHOUT_EARLY_STOPPING = ("training.eval", "data.eval_split", "data.max_eval_samples")


@dataclass
class ResumePoint:
    """A checked checkpoint: its path, loaded contents and the recipe changes accepted with it."""

    path: Path
    loaded: dict[str, Any]
    changes: list[str] = field(default_factory=list)

    @property
    def state(self) -> dict[str, Any]:
        return self.loaded["trainer_state"]

    @property
    def optimizer_replaced(self) -> bool:
        """Another optimizer (``--resume-changed``): its state cannot be loaded from the old one's."""
        return any(change.startswith("optim.name:") for change in self.changes)


def _candidates(resume: str, run_dir: Path) -> tuple[list[Path], bool]:
    """Checkpoints to try, newest first, and whether falling back to an older one is allowed."""
    path = Path(resume)
    if resume != "latest" and CHECKPOINT_PATTERN.match(path.name):
        return [resolve_resume_path(resume, run_dir)], False
    directory = run_dir if resume == "latest" else path
    if resume != "latest" and not path.is_dir():
        raise UserError(f"--resume: checkpoint directory not found: {path}")
    found = list_checkpoints(directory)
    if not found:
        raise UserError(f"--resume: no complete checkpoint in {directory}")
    return found[::-1], True


def _check_candidate(path: Path, total_steps: int, needs_ema: bool) -> dict[str, Any]:
    """Load one checkpoint after checking its trainer state and manifest; UserError names the problem."""
    state_file = path / TRAINER_STATE
    try:
        state = json.loads(state_file.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{state_file}: not a readable trainer state ({str(error).splitlines()[0]})") from None
    match = CHECKPOINT_PATTERN.match(path.name)
    problem = trainer_state_problem(state, int(match.group(1)) if match else state.get("step", -1), total_steps)
    if problem is not None:
        raise UserError(f"{state_file}: {problem}")
    problem = manifest_problem(path, state["manifest"])
    if problem is not None:
        raise UserError(problem)
    if needs_ema and "ema.safetensors" not in state["manifest"]:
        raise UserError(f"{path}: the recipe has training.ema but the checkpoint has no ema.safetensors")
    return load_checkpoint(path)


def recipe_changes(stored: dict[str, Any], current: dict[str, Any], stored_world: int, world: int) -> list[str]:
    """``key: old -> new`` for every change between two resolved recipes that breaks exactness."""
    old, new = _flat(stored), _flat(json.loads(json.dumps(current)))
    early_stopping = any(key.startswith("training.early_stopping.") for key in (*old, *new))
    safe = SAFE_TO_CHANGE + (() if early_stopping else SAFE_WITHOUT_EARLY_STOPPING)
    changes = []
    if stored_world != world:
        changes.append(f"world size: {stored_world} -> {world}")
    for key in sorted(old.keys() | new.keys()):
        if old.get(key, "<unset>") == new.get(key, "<unset>"):
            continue
        if any(key == prefix or key.startswith(prefix + ".") for prefix in safe):
            continue
        changes.append(f"{key}: {_shown(old.get(key, '<unset>'))} -> {_shown(new.get(key, '<unset>'))}")
    return changes


def select_resume_point(
    resume: str,
    run_dir: Path,
    resolved: dict[str, Any],
    world_size: int,
    total_steps: int,
    needs_ema: bool,
    resume_changed: bool,
    say: Callable[[str], None],
) -> ResumePoint:
    """The checkpoint to continue from, fully checked; reads files only, writes nothing."""
    candidates, may_fall_back = _candidates(resume, run_dir)
    problems = []
    for path in candidates:
        try:
            loaded = _check_candidate(path, total_steps, needs_ema and not resume_changed)
        except UserError as error:
            if not may_fall_back or len(candidates) == 1:
                raise
            problems.append(str(error))
            say(f"resume: skipping {path}: {error}")
            continue
        point = ResumePoint(path, loaded)
        break
    else:
        raise UserError(
            f"--resume: no usable checkpoint left in {candidates[0].parent} ({len(problems)} damaged, listed above)"
        )
    changes = recipe_changes(point.state["recipe"], resolved, point.state["world_size"], world_size)
    if point.state["total_steps"] != total_steps and not changes:
        changes.append(f"plan length: {point.state['total_steps']} -> {total_steps} steps")
    if changes and not resume_changed:
        raise UserError(
            f"--resume: the recipe changed since {point.path.name}, so the run would not continue exactly"
            f" ({'; '.join(changes)}); pass --resume-changed to continue anyway"
        )
    point.changes = changes
    for change in changes:
        say(f"resume: continuing with a changed recipe: {change}")
    if point.optimizer_replaced:
        say("resume: optim.name changed: the new optimizer starts without state (moments, momentum)")
    if needs_ema and "ema" not in loaded:
        say(f"resume: {point.path.name} has no EMA state; the EMA starts from the model weights")
    return point


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix.rstrip("."): data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
