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
