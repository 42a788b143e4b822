"""Checkpoint directories that are never half-written and never unpickle anything.

Layout of ``<run>/checkpoint-<step>/``: ``model.safetensors``, ``ema.safetensors`` (when EMA is on),
``optimizer.pt`` (a plain tensor/number state dict, read back with ``weights_only=True``) and
``trainer_state.json`` (step, epoch, sampler position, LR rule, resolved recipe, and a manifest: size and sha256 of each
other file). The directory is written
under a temporary name and renamed when complete, so a crash mid-write leaves no directory that
:func:`latest_checkpoint` would pick.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
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
TEMPORARY_PREFIX = ".tmp-"


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
    """Write a complete checkpoint atomically, then prune all but the ``keep_last`` newest.

    ``trainer_state`` gains a ``manifest`` (size and sha256 of every other file) so a resume can tell a
    damaged file from a good one. A failed write (full disk, permissions) removes the partial directory and
    is a :class:`UserError`; the previous checkpoints are untouched (pruning only runs after the rename).
    """
    final = run_dir / checkpoint_name(step)
    temporary = run_dir / f"{TEMPORARY_PREFIX}{checkpoint_name(step)}-{os.getpid()}"
    try:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        save_file(_contiguous(model_state), str(temporary / "model.safetensors"))
        if ema_state is not None:
            save_file(_contiguous(ema_state), str(temporary / "ema.safetensors"))
        torch.save(optimizer_state, temporary / "optimizer.pt")
        state = {**trainer_state, "manifest": file_manifest(temporary)}
        # trainer_state.json last: a directory with it is complete even before the rename.
        (temporary / TRAINER_STATE).write_text(json.dumps(state, indent=2, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
    except (OSError, SafetensorError, RuntimeError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        needed = _state_bytes(model_state, optimizer_state, ema_state)
        raise UserError(_write_failure(run_dir, temporary, error, needed)) from None
    for stale in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _write_failure(run_dir: Path, temporary: Path, error: Exception, needed: int) -> str:
    """One line for a failed checkpoint write.

    Only some writers say ENOSPC: ``torch.save`` on a full disk raises a RuntimeError ("unexpected pos"),
    safetensors an I/O error string; so a failure with less free space than the checkpoint needs (measured
    after the partial directory is gone) is reported as a full disk too.
    """
    no_space = getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(error)
    with contextlib.suppress(OSError):
        no_space = no_space or shutil.disk_usage(run_dir).free < needed
    if no_space:
        return f"checkpoint: no space left on {run_dir} (needed ~{max(1, round(needed / 2**20))} MB)"
    reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
    return f"checkpoint: cannot write {temporary} ({reason}); the previous checkpoints are untouched"


def _state_bytes(*states: Any) -> int:
    """Bytes of all tensors in nested state dicts: the size a checkpoint needs, within a few percent."""
    total = 0
    for state in states:
        if isinstance(state, torch.Tensor):
            total += state.numel() * state.element_size()
        elif isinstance(state, dict):
            total += _state_bytes(*state.values())
        elif isinstance(state, (list, tuple)):
            total += _state_bytes(*state)
    return total


def file_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every checkpoint file but the trainer state (which holds the manifest)."""
    return {
        file.name: {"size": file.stat().st_size, "sha256": _sha256(file)}
        for file in sorted(directory.iterdir())
        if file.is_file() and file.name != TRAINER_STATE
    }


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_problem(path: Path, manifest: dict[str, Any]) -> str | None:
    """Why the files of checkpoint ``path`` do not match its manifest, or None when they all do."""
    for name, expected in manifest.items():
        file = path / name
        if not file.is_file():
            return f"{file}: missing (listed in the manifest of {TRAINER_STATE})"
        size = file.stat().st_size
        if size != expected["size"]:
            return f"{file}: damaged ({size} bytes, the manifest in {TRAINER_STATE} says {expected['size']})"
        if _sha256(file) != expected["sha256"]:
            return f"{file}: damaged (its sha256 differs from the manifest in {TRAINER_STATE})"
    return None


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Remove ``.tmp-checkpoint-*`` directories a crashed or killed run left behind; return them."""
    if not run_dir.is_dir():
        return []
    stale = [child for child in run_dir.iterdir() if child.name.startswith(TEMPORARY_PREFIX) and child.is_dir()]
    for child in stale:
        shutil.rmtree(child, ignore_errors=True)
    return stale


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
