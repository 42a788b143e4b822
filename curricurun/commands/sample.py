"""``curricurun sample``: load a trained generative setup from a checkpoint and write a grid of samples.

The setup decides how to generate (VAR: scale by scale with a KV cache; Pyramid-Flow: stage by stage); this module
only finds the weights, checks the request and writes the picture.
"""

from __future__ import annotations

from pathlib import Path

import torch

from curricurun.errors import UserError
from curricurun.setups.base import SampleOptions


def parse_classes(text: str) -> list[int]:
    """``"1,2,3"`` → ``[1, 2, 3]``; anything else is a user error naming the option."""
    try:
        classes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--classes: expected comma-separated class indices like 1,2,3, got '{text}'") from None
    if not classes or any(c < 0 for c in classes):
        raise UserError(f"--classes: expected comma-separated non-negative class indices, got '{text}'")
    return classes


def sampling_options(cfg: float, top_k: int, top_p: float, steps: int | None, per_class: int = 1) -> SampleOptions:
    """The sampling flags of ``sample`` and ``evaluate``, checked (one line naming the flag on a bad value)."""
    if per_class < 1:
        raise UserError(f"--per-class: expected a positive integer, got {per_class}")
    if steps is not None and steps < 1:
        raise UserError(f"--steps: expected a positive integer, got {steps}")
    if not 0.0 <= top_p <= 1.0:
        raise UserError(f"--top-p: expected a value in [0, 1], got {top_p}")
    if top_k < 0:
        raise UserError(f"--top-k: expected 0 or a positive integer, got {top_k}")
    return SampleOptions(cfg=cfg, top_k=top_k, top_p=top_p, steps=steps, per_class=per_class)


def find_weights(checkpoint: Path, use_ema: bool) -> Path:
    """A checkpoint directory or a run directory (its newest checkpoint) → the weights file to sample from."""
    from curricurun.engine.checkpoint import latest_checkpoint

    if not checkpoint.is_dir():
        raise UserError(f"--checkpoint: directory not found: {checkpoint}")
    if not (checkpoint / "model.safetensors").is_file():
        latest = latest_checkpoint(checkpoint)
        if latest is None:
            raise UserError(f"--checkpoint: {checkpoint} holds no model.safetensors and no complete checkpoint")
        checkpoint = latest
    if use_ema:
        if not (checkpoint / "ema.safetensors").is_file():
            raise UserError(f"--ema: {checkpoint} has no ema.safetensors (the run did not keep an EMA)")
        return checkpoint / "ema.safetensors"
    return checkpoint / "model.safetensors"


def load_generator(recipe, checkpoint: Path, use_ema: bool, device: torch.device):
    """The recipe's generative setup and its model with the checkpoint's weights, in eval mode on ``device``.

    ``sample`` and ``evaluate`` both load through here.
    """
    from curricurun.data.sample_pipeline import open_sample_pipeline
    from curricurun.setups import get as get_setup
    from curricurun.setups.base import optional_hooks
    from curricurun.weights import load_safetensors_weights

    if optional_hooks(get_setup(recipe.setup.name)).generator is None:
        raise UserError(f"setup.name: setup '{recipe.setup.name}' does not generate images (no sampling)")
    weights = find_weights(checkpoint, use_ema)
    setup = optional_hooks(open_sample_pipeline(recipe).build_setup()).generator
    torch.manual_seed(recipe.seed)
    model = setup.build_model()
    load_safetensors_weights(model, weights, field="--checkpoint")
    return setup, model.to(device).eval()


def run_sample(
    recipe, checkpoint: Path, classes: list[int], seed: int, options: SampleOptions, out: Path, use_ema: bool
) -> Path:
    """Build the recipe's model, load the checkpoint's weights, generate, write the grid; returns its path."""
    from curricurun.images import save_grid

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    setup, model = load_generator(recipe, checkpoint, use_ema, device)
    with torch.no_grad():
        images = setup.sample(model, classes, seed, options)
    columns = options.per_class if options.per_class > 1 else len(classes)
    upscale = max(1, 128 // max(images.shape[-1], 1))
    return save_grid(images, out, columns, upscale=upscale)
