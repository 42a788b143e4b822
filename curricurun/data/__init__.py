"""The data side: where samples come from, in what order, and at what size.

- :mod:`curricurun.data.sources` loads one split (Hub id, local folder or MNIST-format IDX files) as an
  :class:`~curricurun.data.sources.ImageClassificationData`; :mod:`curricurun.data.idx` parses IDX files.
- :mod:`curricurun.data.pipelines` holds the named per-sample pipelines a recipe picks (``data.pipeline``):
  ``imagenet`` (timm), ``var``, ``pyramid_flow``, ``small_images`` (:mod:`curricurun.data.transforms`).
- :mod:`curricurun.data.decode` decodes one stored image (reduced-scale JPEG, one-line errors).

Only the loader is re-exported: ``torchvision`` takes seconds to import, so the transforms are imported
from their module by the code that builds a DataLoader (``datasets`` is imported only when a Hub or local
dataset is loaded).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ImageClassificationData", "load_recipe_split", "load_split"]


def __getattr__(name: str) -> Any:
    """The loader, imported on first use: ``validate`` reads ``curricurun.data.pipelines`` without torch (PEP 562)."""
    if name in __all__:
        from curricurun.data import sources

        return getattr(sources, name)
    raise AttributeError(f"module 'curricurun.data' has no attribute '{name}'")
