"""Load one split of an image-classification dataset from the Hub, a local folder or MNIST-format IDX files.

Three sources, one result (:class:`ImageClassificationData`):

- ``hub``: ``datasets.load_dataset(path, name=config, split=split, revision=revision)``.
- ``local``: a folder holding a ``save_to_disk`` dataset, parquet files (split sub-folders or
  ``<split>-*.parquet``), or an image folder (``class/image.png``, optionally under split folders).
- ``idx``: MNIST-format IDX files (:mod:`curricurun.data.idx`), kept as one uint8 array. Building a
  ``datasets.Dataset`` from them was measured on Fashion-MNIST train (2 cores): 2.4 s to build and
  370 µs per row read, against 0.3 s to parse and 2 µs per ``image(i)`` for the array.

Fashion-MNIST, offline and on the Hub, is the same recipe with one override (docs/offline-data.md)::

    data.source=idx  data.path=/usr/share/datasets/fashion-mnist      # Debian dataset-fashion-mnist
    data.source=hub  data.path=zalando-datasets/fashion_mnist          # the Hub copy

Both have the splits ``train`` (60,000) and ``test`` (10,000; the IDX files name it ``t10k``), and the Hub
copy's columns are ``image`` and ``label``, the defaults of ``image_column`` and ``label_column``. The Hub
path cannot be exercised offline; its tests feed the same column handling from a local parquet copy.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from curricurun.data.decode import CorruptImageError, Fit, open_picture
from curricurun.data.idx import load_idx_split
from curricurun.errors import UserError

if TYPE_CHECKING:
    import datasets

SOURCES = ("hub", "local", "idx")

# PIL modes that hold one (grey) channel; every other mode is read as RGB.
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


class ImageClassificationData:
    """One split of an image-classification dataset: images as uint8 ``[C, H, W]`` tensors and int labels.

    Build it with :func:`load_split`. Labels are read once into memory; images are decoded on demand
    (or sliced from one in-memory array for IDX data), so the object is cheap to pickle to DataLoader
    workers.

    Attributes:
        num_classes: from the label column's ClassLabel feature, else the largest label + 1.
        channels: 1 or 3, from the first image; every image is converted to it with PIL's ``convert``
            (which clips 16-bit and float images to 0…255 rather than rescaling them).
        class_names: the ClassLabel names (or the sorted values of a string label column), else None.
        description: what was loaded, e.g. ``hub dataset 'x' split 'train'``, for messages.
    """

    def __init__(
        self,
        labels: np.ndarray,
        num_classes: int,
        channels: int,
        class_names: list[str] | None,
        description: str,
        *,
        images: np.ndarray | None = None,
        rows: datasets.Dataset | None = None,
        image_column: str = "image",
        paths: list[str] | None = None,
    ):
        self._labels = labels
        self._images = images
        self._rows = rows
        self._image_column = image_column
        self._paths = paths  # image-folder files, read once: no datasets row access per image
        self.num_classes = num_classes
        self.channels = channels
        self.class_names = class_names
        self.description = description

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray, description: str) -> ImageClassificationData:
        """Wrap in-memory grey uint8 images ``[N, H, W]`` and int labels ``[N]`` (IDX data)."""
        _check_labels(labels, None, "label", description)
        return cls(labels, int(labels.max()) + 1, 1, None, description, images=images[:, None])

    @classmethod
    def from_dataset(
        cls, dataset: datasets.Dataset, image_column: str, label_column: str, description: str
    ) -> ImageClassificationData:
        """Wrap a ``datasets.Dataset`` whose ``image_column`` holds PIL images or uint8 arrays."""
        import datasets

        for field, column in (("data.image_column", image_column), ("data.label_column", label_column)):
            if column not in dataset.column_names:
                raise UserError(
                    f"{field}: column '{column}' not found in {description}; columns: {', '.join(dataset.column_names)}"
                )
        feature = dataset.features[label_column]
        raw_labels = np.asarray(dataset.select_columns([label_column]).with_format("numpy")[label_column])
        class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
        if raw_labels.dtype.kind in "USO":
            class_names = sorted({str(value) for value in raw_labels})
            index = {name: i for i, name in enumerate(class_names)}
            labels = np.array([index[str(value)] for value in raw_labels], dtype=np.int64)
        elif raw_labels.dtype.kind in "iu":
            labels = raw_labels.astype(np.int64)
        else:
            raise UserError(
                f"data.label_column: column '{label_column}' in {description} holds {raw_labels.dtype} values; "
                "it must hold integer class ids, a ClassLabel or strings"
            )
        _check_labels(labels, class_names, label_column, description)
        rows = dataset.select_columns([image_column])
        paths = None
        if isinstance(rows.features[image_column], datasets.Image):
            # Encoded, not decoded: curricurun decodes itself (reduced-scale JPEG, one-line errors: decode.py).
            rows = rows.cast_column(image_column, datasets.Image(decode=False))
            stored = rows[image_column]
            if all(item["bytes"] is None and item["path"] for item in stored):
                paths = [item["path"] for item in stored]
        else:
            rows = rows.with_format("numpy")  # array features: one numpy array per row, not nested lists
        num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
        data = cls(labels, num_classes, 3, class_names, description, rows=rows, image_column=image_column, paths=paths)
        data.channels = 1 if data._stored_mode(0) in _GREY_MODES else 3
        return data

    def __len__(self) -> int:
        return len(self._labels)

    def label(self, index: int) -> int:
        return int(self._labels[index])

    def image(self, index: int) -> torch.Tensor:
        """Image ``index`` as a new uint8 tensor ``[channels, H, W]`` (safe to modify)."""
        if self._images is not None:
            return torch.from_numpy(self._images[index].copy())
        array = np.array(self.picture(index)[0])  # a writable copy: torch.from_numpy shares it
        return torch.from_numpy(array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1)))

    def picture(self, index: int, fit: Fit | None = None) -> tuple[Image.Image, tuple[int, int]]:
        """Image ``index`` as a decoded PIL picture in the split's mode, and its stored ``(width, height)``.

        ``fit`` lets a JPEG be decoded at a reduced scale (:func:`curricurun.data.decode.open_picture`).

        Raises:
            CorruptImageError: one line naming the file (or row) and ``index``.
        """
        mode = "L" if self.channels == 1 else "RGB"
        if self._images is not None:
            array = self._images[index]
            picture = Image.fromarray(array[0] if len(array) == 1 else np.ascontiguousarray(array.transpose(1, 2, 0)))
            return picture.convert(mode) if picture.mode != mode else picture, picture.size
        if self._paths is not None:
            return open_picture(self._paths[index], self._paths[index], index, mode, fit)
        value = self._rows[index][self._image_column]
        if isinstance(value, dict):  # an encoded datasets.Image: {"bytes": ..., "path": ...}
            stored = value["bytes"] if value["bytes"] is not None else value["path"]
            return open_picture(stored, value["path"] or f"row {index} of {self.description}", index, mode, fit)
        if not isinstance(value, Image.Image):
            value = _array_to_pil(value, self._image_column, self.description)
        picture = value.convert(mode) if value.mode != mode else value
        return picture, picture.size

    def _stored_mode(self, index: int) -> str:
        """The PIL mode image ``index`` is stored in, read from the header only (for the split's channel count)."""
        if self._paths is not None:
            stored = self._paths[index]
        else:
            value = self._rows[index][self._image_column]
            if not isinstance(value, dict):
                return _array_to_pil(value, self._image_column, self.description).mode
            stored = io.BytesIO(value["bytes"]) if value["bytes"] is not None else value["path"]
        try:
            with Image.open(stored) as picture:
                return picture.mode
        except (OSError, SyntaxError, ValueError) as error:
            raise CorruptImageError(f"data.path: image {index} of {self.description} cannot be read: {error}") from None


def load_split(
    source: str,
    path: str,
    split: str,
    *,
    config: str | None = None,
    revision: str | None = None,
    image_column: str = "image",
    label_column: str = "label",
    max_samples: int | None = None,
) -> ImageClassificationData:
    """Load ``split`` of the dataset at ``path`` from ``source`` ("hub", "local" or "idx").

    ``max_samples`` keeps the first samples of the split (a deterministic prefix, for quick runs).
    ``config`` and ``revision`` only mean something on the Hub. ``image_column`` and ``label_column`` do
    not apply to IDX files, which have no columns.

    Raises:
        UserError: one line naming the recipe field at fault (``data.path``, ``data.split``, ...).
    """
    if source not in SOURCES:
        raise UserError(f"data.source: unknown source '{source}'; choose one of: {', '.join(SOURCES)}")
    if source != "hub":
        for field, value in (("data.config", config), ("data.revision", revision)):
            if value is not None:
                raise UserError(f"{field}: only applies to data.source 'hub', not '{source}'")
    if source == "idx":
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise UserError(f"data.path: folder not found: {folder}")
        images, labels = load_idx_split(folder, split)
        return ImageClassificationData.from_arrays(
            images[:max_samples], labels[:max_samples], f"IDX files in '{folder}' split '{split}'"
        )
    if source == "hub":
        dataset, description = _load_hub(path, split, config, revision), f"hub dataset '{path}' split '{split}'"
    else:
        folder = Path(path).expanduser()
        dataset, description = _load_local(folder, split), f"local dataset '{folder}' split '{split}'"
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.select(range(max_samples))
    return ImageClassificationData.from_dataset(dataset, image_column, label_column, description)


def _load_hub(path: str, split: str, config: str | None, revision: str | None) -> datasets.Dataset:
    """``load_dataset`` from the Hub, every failure turned into one line the user can act on."""
    # Imported here: `datasets` costs ~1 s to import, which IDX-only runs and the CLI need not pay.
    import datasets

    try:
        return datasets.load_dataset(path, name=config, split=split, revision=revision)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        offline = [name for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if env_true(name)]
        hint = f" ({' and '.join(offline)} {'is' if len(offline) == 1 else 'are'} set)" if offline else ""
        raise UserError(
            f"data.path: could not load hub dataset '{path}' (split '{split}'): {reason}; "
            f"check the id, or your network{hint}"
        ) from None


def _load_local(folder: Path, split: str) -> datasets.Dataset:
    """One split from a ``save_to_disk`` folder, parquet files or an image folder, detected in that order.

    A ``save_to_disk`` folder holding a single Dataset (not a DatasetDict) serves the split it was saved
    as, or any split when it recorded none.
    """
    import datasets

    if not folder.is_dir():
        raise UserError(f"data.path: folder not found: {folder}")
    # "Generating train split" bars would stand between the user and a one-line error about their columns.
    datasets.disable_progress_bars()
    if any((folder / marker).is_file() for marker in ("dataset_dict.json", "state.json", "dataset_info.json")):
        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            return _pick_split(dict(loaded), split, folder)
        if loaded.split is not None and str(loaded.split) != split:
            raise UserError(f"data.split: unknown split '{split}' in {folder}; available: {loaded.split}")
        return loaded
    parquet = _parquet_splits(folder)
    if parquet:
        files = _pick_split(parquet, split, folder)
        return datasets.load_dataset("parquet", data_files={split: [str(file) for file in files]}, split=split)
    if any(file.suffix.lower() in _IMAGE_SUFFIXES for file in folder.rglob("*")):
        return _pick_split(dict(datasets.load_dataset("imagefolder", data_dir=str(folder))), split, folder)
    raise UserError(
        f"data.path: no dataset found in {folder}; expected a save_to_disk folder, parquet files "
        "or an image folder (class/image.png)"
    )


def _parquet_splits(folder: Path) -> dict[str, list[Path]]:
    """Parquet files by split: ``<split>/**.parquet``, or ``[data/]<split>[-*].parquet`` named by prefix."""
    splits: dict[str, list[Path]] = {}
    for file in sorted(folder.rglob("*.parquet")):
        relative = file.relative_to(folder)
        if file.parent in (folder, folder / "data"):
            name = file.name.removesuffix(".parquet").split("-")[0]
        else:
            name = relative.parts[0]
        splits.setdefault(name, []).append(file)
    return splits


def _pick_split(splits: dict[str, Any], split: str, folder: Path) -> Any:
    if split not in splits:
        raise UserError(f"data.split: unknown split '{split}' in {folder}; available: {', '.join(sorted(splits))}")
    return splits[split]


def _check_labels(labels: np.ndarray, class_names: list[str] | None, column: str, description: str) -> None:
    if len(labels) == 0:
        raise UserError(f"data.path: {description} has no samples")
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise UserError(
            f"data.label_column: column '{column}' in {description} holds label {low} (unlabelled samples?); "
            "class ids must be >= 0"
        )
    if class_names is not None and high >= len(class_names):
        raise UserError(
            f"data.label_column: column '{column}' in {description} holds label {high} but names only "
            f"{len(class_names)} classes"
        )


def _array_to_pil(value: Any, column: str, description: str) -> Image.Image:
    """An integer array ``[H, W]`` or ``[H, W, C]`` (C = 1, 3 or 4) of 0…255 as a PIL image.

    Arrays then convert between channel counts exactly as pictures do. Integer, not only uint8: the
    ``datasets`` numpy format returns uint8 array features as int64.
    """
    array = np.asarray(value)
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    if not shape_ok or array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 255:
        raise UserError(
            f"data.image_column: column '{column}' in {description} holds {array.dtype} arrays of shape "
            f"{array.shape}; it must hold images, or integer arrays [H, W] / [H, W, C] of values 0..255"
        )
    array = array.astype(np.uint8, copy=False)
    return Image.fromarray(array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array)


def env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def load_recipe_split(data: Any, split: str, max_samples: int | None = None) -> ImageClassificationData:
    """Load ``split`` as a recipe's ``data`` section describes it (source, path, columns, config, revision)."""
    return load_split(
        data.source,
        data.path,
        split,
        config=data.config,
        revision=data.revision,
        image_column=data.image_column,
        label_column=data.label_column,
        max_samples=max_samples,
    )
