"""Map-style dataset that loads a sample at the stage its :class:`SampleKey` carries.

The stage travels with the index, so DataLoader workers need no notice of stage changes, and the
augmentation seed travels too, so the result does not depend on which worker or rank loads it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from curricurun.data.sampler import SampleKey


class StagedDataset(Dataset):
    """Decode → stage transform → ``{"image", "label"}``.

    Args:
        source: the decoded split (``image(i)`` uint8 CHW tensor, ``label(i)`` int, ``len``).
        transform: callable ``(image, resolution, magnitude, bandwidth, seed) -> float tensor``.
        full_resolution: used when the stage does not set a resolution.
    """

    def __init__(self, source, transform, full_resolution: int):
        self.source, self.transform, self.full_resolution = source, transform, full_resolution

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        image = self.source.image(key.index)
        resolution = key.resolution or self.full_resolution
        pixels = self.transform(image, resolution, key.magnitude, key.bandwidth, key.seed)
        return {"image": pixels, "label": self.source.label(key.index), "index": key.index}


class EvalDataset(Dataset):
    """Evaluation samples ``[start, stop)`` of a split: each rank gets a contiguous shard, no padding."""

    def __init__(self, source, transform, full_resolution: int, start: int, stop: int):
        self.source, self.transform, self.full_resolution = source, transform, full_resolution
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, position: int) -> dict[str, Any]:
        index = self.start + position
        image = self.transform(self.source.image(index), self.full_resolution)
        return {"image": image, "label": self.source.label(index), "index": index}


def collate(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack a micro-batch; every sample of it shares one stage, hence one image size."""
    return {
        "image": torch.stack([sample["image"] for sample in samples]),
        "label": torch.tensor([sample["label"] for sample in samples], dtype=torch.long),
        "index": torch.tensor([sample["index"] for sample in samples], dtype=torch.long),
    }


def shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous, disjoint, covering split of ``range(size)``: exact metrics without padding duplicates."""
    return size * rank // world_size, size * (rank + 1) // world_size
