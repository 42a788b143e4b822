"""Checkpoint directories that are never half-written and never unpickle anything.

Layout of ``<run>/checkpoint-<step>/``: ``model.safetensors``, ``ema.safetensors`` (when EMA is on),
``optimizer.pt`` (a plain tensor/number state dict, read back with ``weights_only=True``) and
``trainer_state.json`` (step, epoch, sampler position, LR rule, resolved recipe). The directory is written
under a temporary name and renamed when complete, so a crash mid-write leaves no directory that
:func:`latest_checkpoint` would pick.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from curricurun.errors import UserError

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
REQUIRED_FILES = ("model.safetensors", "optimizer.pt", TRAINER_STATE)


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:08d}"


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone keeps the file self-contained.
    return {name: tensor.detach().contiguous().clone() for name, tensor in state.items()}


def save_checkpoint(
    run_dir: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    trainer_state: dict[str, Any],
    ema_state: dict[str, torch.Tensor] | None = None,
    keep_last: int = 2,
) -> Path:
    """Write a complete checkpoint atomically, then prune all but the ``keep_last`` newest."""
    final = run_dir / checkpoint_name(step)
    temporary = run_dir / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_file(_contiguous(model_state), str(temporary / "model.safetensors"))
    if ema_state is not None:
        save_file(_contiguous(ema_state), str(temporary / "ema.safetensors"))
    torch.save(optimizer_state, temporary / "optimizer.pt")
    # trainer_state.json last: a directory with it is complete even before the rename.
    (temporary / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2, sort_keys=True))
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    for stale in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint directories in ``run_dir``, oldest first (temporary ones are never listed)."""
    if not run_dir.is_dir():
        return []
    found = []
    for child in run_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(child.name)
        if match and child.is_dir() and all((child / name).is_file() for name in REQUIRED_FILES):
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_resume_path(resume: str, run_dir: Path) -> Path:
    """``--resume`` with no value (``latest``) picks the newest complete checkpoint of the run directory."""
    if resume == "latest":
        latest = latest_checkpoint(run_dir)
        if latest is None:
            raise UserError(f"--resume: no complete checkpoint in {run_dir}")
        return latest
    path = Path(resume)
    if not path.is_dir():
        raise UserError(f"--resume: checkpoint directory not found: {path}")
    if CHECKPOINT_PATTERN.match(path.name) is None and latest_checkpoint(path) is not None:
        return latest_checkpoint(path)  # a run directory was given: take its newest checkpoint
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise UserError(f"--resume: {path} is not a complete checkpoint (missing {', '.join(missing)})")
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; any unreadable file is a user error naming it. Nothing is unpickled."""
    loaded: dict[str, Any] = {}
    try:
        loaded["trainer_state"] = json.loads((path / TRAINER_STATE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{path / TRAINER_STATE}: not a readable trainer state ({error})") from None
    for key, name in (("model", "model.safetensors"), ("ema", "ema.safetensors")):
        file = path / name
        if key == "ema" and not file.exists():
            continue
        try:
            loaded[key] = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as error:
            raise UserError(f"{file}: corrupt or unreadable safetensors file ({error})") from None
    try:
        loaded["optimizer"] = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged zip/pickle stream
        raise UserError(
            f"{path / 'optimizer.pt'}: corrupt or unreadable optimizer state ({type(error).__name__})"
        ) from None
    return loaded
