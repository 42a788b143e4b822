"""Read MNIST-format IDX files (optionally gzipped) into numpy arrays.

The IDX format (LeCun et al., "THE MNIST DATABASE", yann.lecun.com/exdb/mnist, section "FILE FORMATS"):
a 4-byte magic number ``0x00 0x00 <type code> <number of dimensions>``, then one big-endian 32-bit size
per dimension, then the values in C order, big-endian. Fashion-MNIST ships the same format
(Debian's dataset-fashion-mnist: ``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``).

The images stay one uint8 array: a sample is then a zero-copy slice, which is what keeps
``ImageClassificationData.image`` in the microseconds for 70k Fashion-MNIST images.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from curricurun.errors import UserError

# IDX type codes -> numpy dtypes (big-endian, as the format stores them).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# A split name as a user writes it -> the file prefix MNIST and Fashion-MNIST use.
_SPLIT_PREFIXES = {"train": "train", "test": "t10k", "t10k": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (``.gz`` or raw) into an array of its declared shape and dtype.

    Raises:
        UserError: the file is not gzip when named ``.gz``, is truncated, has a bad magic number or
            holds a different number of values than its header declares.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"data.path: cannot read IDX file {path}: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"data.path: {path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"data.path: IDX file {path} is truncated inside its header")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise UserError(
            f"data.path: IDX file {path} holds {len(raw) - header} data bytes but its header "
            f"declares shape {shape} ({expected} bytes); the file is truncated or corrupt"
        )
    # bytearray: a writable buffer, so torch.from_numpy can share it without a warning.
    values = np.frombuffer(bytearray(raw[header:]), dtype=dtype).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def idx_files(folder: Path, split: str) -> tuple[Path, Path]:
    """The (images, labels) files of ``split`` in ``folder``: ``train-…`` for train, ``t10k-…`` for test.

    Each file may be gzipped (``.gz``) or raw; the raw one wins when both exist.
    """
    prefix = _SPLIT_PREFIXES.get(split)
    if prefix is None:
        raise UserError(
            f"data.split: unknown IDX split '{split}'; available: {', '.join(available_idx_splits(folder))}"
        )
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        candidates = [folder / f"{prefix}-{kind}", folder / f"{prefix}-{kind}.gz"]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            raise UserError(
                f"data.path: IDX split '{split}' needs {candidates[0].name}[.gz] in {folder}; "
                f"available splits: {', '.join(available_idx_splits(folder)) or 'none'}"
            )
        found.append(path)
    return found[0], found[1]


def available_idx_splits(folder: Path) -> list[str]:
    """Split names (``train``, ``test``) whose image file exists in ``folder``."""
    names = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        if any((folder / f"{prefix}-images-idx3-ubyte{ext}").is_file() for ext in ("", ".gz")):
            names.append(split)
    return names


def load_idx_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, H, W]`` and labels ``int64 [N]`` of one MNIST-format split."""
    images_path, labels_path = idx_files(folder, split)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise UserError(
            f"data.path: {images_path} must hold uint8 images [N, H, W], found {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise UserError(f"data.path: {labels_path} must hold integer labels [N], found {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise UserError(
            f"data.path: {images_path.name} has {len(images)} images but {labels_path.name} has {len(labels)} labels"
        )
    return images, labels.astype(np.int64)
