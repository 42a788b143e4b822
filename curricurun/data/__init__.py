"""The data side: where samples come from, in what order, and at what size.

- :mod:`curricurun.data.sources` loads one split (Hub id, local folder or MNIST-format IDX files) as an
  :class:`~curricurun.data.sources.ImageClassificationData`; :mod:`curricurun.data.idx` parses IDX files.
- :mod:`curricurun.data.transforms` turns a uint8 image into the stage's float tensor, seeded per sample.

Only the loader is re-exported: ``torchvision`` takes seconds to import, so the transforms are imported
from their module by the code that builds a DataLoader (``datasets`` is imported only when a Hub or local
dataset is loaded).
"""

from curricurun.data.sources import ImageClassificationData, load_recipe_split, load_split

__all__ = ["ImageClassificationData", "load_recipe_split", "load_split"]
