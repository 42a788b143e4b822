"""Image grids as PNG files: reconstructions, samples. One place so every picture looks the same."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Model-space images in [-1, 1] to [0, 1] for viewing (the inverse of the loaders' ``(x - 0.5) / 0.5``)."""
    return (images.float() * 0.5 + 0.5).clamp(0.0, 1.0)


def save_grid(images: torch.Tensor, path: Path, columns: int, upscale: int = 1) -> Path:
    """Write ``images`` ``[N, C, H, W]`` in [0, 1] as a PNG grid with ``columns`` per row (written atomically).

    ``upscale`` repeats pixels (nearest) so 28-pixel images are visible at a glance.
    """
    from PIL import Image
    from torchvision.utils import make_grid

    if images.dim() != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {tuple(images.shape)}")
    pictures = images.detach().float().cpu().clamp(0.0, 1.0)
    if upscale > 1:
        pictures = pictures.repeat_interleave(upscale, dim=2).repeat_interleave(upscale, dim=3)
    grid = make_grid(pictures, nrow=max(1, columns), padding=2, pad_value=1.0)
    if pictures.shape[1] == 1:
        grid = grid[:1]  # make_grid repeats one channel to three; keep grey images grey
    array = (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    Image.fromarray(array).save(temporary, format="PNG")
    os.replace(temporary, path)
    return path
