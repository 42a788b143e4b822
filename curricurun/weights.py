"""Loading model weights from safetensors files only: never a pickle, and one clear line when a file is wrong."""

from __future__ import annotations

from pathlib import Path

import torch

from curricurun.errors import UserError


def load_safetensors_weights(model: torch.nn.Module, path: Path, field: str = "setup.weights") -> None:
    """Load weights from a safetensors file only (never a pickle); a bad file is a user error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.suffix != ".safetensors":
        raise UserError(f"{field}: expected a .safetensors file, got '{path}'")
    if not path.is_file():
        raise UserError(f"{field}: file not found: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{field}: {path} is not a readable safetensors file ({error})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(
            f"{field}: {path} does not match the model: {len(missing)} missing"
            f" and {len(unexpected)} unexpected keys"
            f" (e.g. {(missing or unexpected)[0]})"
        )


NESTED_LAYOUT = ("trainer", "var_wo_ddp")
"""Where VAR's training checkpoints (``ar-ckpt-*.pth``) keep the transformer's weights (VAR#144, ``trainer.py``)."""


def load_plain_state_dict(path: Path, field: str) -> dict[str, torch.Tensor]:
    """A plain state dict from a ``.safetensors`` file or a PyTorch file read with ``weights_only=True``.

    Never a full unpickle: an object the safe loader refuses is a user error. VAR's nested training checkpoints
    (``['trainer']['var_wo_ddp']``) are unwrapped. An empty, HTML (a saved download page: ``invalid load key '<'``,
    VAR#149) or truncated file is named as such.
    """
    if not path.is_file():
        raise UserError(f"{field}: file not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"{field}: {path} is empty (0 bytes): the download did not finish")
    with path.open("rb") as handle:
        head = handle.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        raise UserError(f"{field}: {path} is an HTML page, not weights (a web page was saved: download the file)")
    if path.suffix == ".safetensors":
        return _read_safetensors(path, field)
    state = _read_torch(path, field)
    if isinstance(state, dict) and NESTED_LAYOUT[0] in state:
        trainer = state[NESTED_LAYOUT[0]]
        if not isinstance(trainer, dict) or NESTED_LAYOUT[1] not in trainer:
            raise UserError(f"{field}: {path} is a training checkpoint without ['trainer']['var_wo_ddp']")
        state = trainer[NESTED_LAYOUT[1]]
    if not isinstance(state, dict) or not state:
        raise UserError(f"{field}: {path} holds a {type(state).__name__}, expected a state dict (names → tensors)")
    bad = [str(key) for key, value in state.items() if not isinstance(key, str) or not torch.is_tensor(value)]
    if bad:
        raise UserError(f"{field}: {path} is not a plain state dict: {len(bad)} values are not tensors (e.g. {bad[0]})")
    return state


def _read_safetensors(path: Path, field: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{field}: {path} is not a readable safetensors file, truncated? ({error})") from None


def _read_torch(path: Path, field: str):
    import pickle
    import zipfile

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = str(error).strip().splitlines()
        if detail and detail[0].startswith("Weights only load failed"):
            reason = next((line.strip() for line in detail[1:] if "nsupported" in line), "objects other than tensors")
            raise UserError(
                f"{field}: {path} was refused by the safe loader (torch.load weights_only=True: {reason});"
                " curricurun never unpickles arbitrary objects: save a plain state dict"
            ) from None
        raise UserError(f"{field}: {path} is not a PyTorch weights file ({detail[0] if detail else error})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"{field}: {path} is truncated or not a PyTorch weights file ({path.stat().st_size:,} bytes: {first})"
        ) from None
