"""Sample files in the layout OpenAI's guided-diffusion evaluator reads (``evaluations/evaluator.py``).

The evaluator opens ``np.load(path)["arr_0"]``: uint8 images ``[N, H, W, C]`` (NHWC, 0-255), the layout VAR's
maintainers ask for (VAR README, "Sampling & Zero-shot Inference"; VAR#38). Grey images are kept with C = 1 and
repeated to three channels only when a feature network needs RGB.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from curricurun.errors import UserError


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    """Images ``[N, C, H, W]`` in [0, 1] → uint8 ``[N, H, W, C]`` (round half to even, as ``torch.round``)."""
    scaled = (images.detach().float().cpu().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).contiguous().numpy()


def write_npz(path: Path, images: np.ndarray) -> Path:
    """Write ``arr_0`` atomically, in a zip with fixed timestamps so equal images give an equal sha256.

    (``np.savez`` stamps the current time into the zip entry; ``np.load`` reads both the same way.)
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 [N, H, W, C], got {images.dtype} {images.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    entry = zipfile.ZipInfo("arr_0.npy", date_time=(1980, 1, 1, 0, 0, 0))
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open(entry, "w", force_zip64=True) as handle:
            np.lib.format.write_array(handle, np.ascontiguousarray(images), allow_pickle=False)
    os.replace(temporary, path)
    return path


def read_npz(path: Path, field: str = "--samples") -> np.ndarray:
    """``arr_0`` of an evaluator-layout file, checked; anything else is one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{field}: file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "arr_0" not in archive.files:
                raise UserError(f"{field}: {path} has no arr_0 array (found {', '.join(archive.files) or 'none'})")
            images = archive["arr_0"]
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"{field}: {path} is not a readable .npz file ({error})") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise UserError(f"{field}: {path}: expected arr_0 uint8 [N, H, W, 1 or 3], got {images.dtype} {images.shape}")
    return images
