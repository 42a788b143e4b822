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
    """Decode → the pipeline's train transform at the key's stage → ``{"image", "label", "index"}``.

    Args:
        source: the decoded split (``picture(i)`` / ``image(i)``, ``label(i)``, ``len``).
        pipeline: a named pipeline (:mod:`curricurun.data.pipelines`) or anything with its ``train_sample``.
        full_resolution: used when the stage does not set a resolution.
        skip_corrupt: a file that cannot be decoded is replaced by the next decodable image of the split
            (same key otherwise) and reported in the sample's ``skipped``; else the sample carries the one-line
            error as ``corrupt`` and the main process stops with it (a worker never raises: no traceback).
    """

    def __init__(self, source, pipeline, full_resolution: int, skip_corrupt: bool = False):
        self.source, self.pipeline, self.full_resolution = source, pipeline, full_resolution
        self.skip_corrupt = skip_corrupt

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        from curricurun.data.decode import CorruptImageError

        resolution = key.resolution or self.full_resolution
        index, skipped = key.index, []
        while True:
            try:
                pixels = self.pipeline.train_sample(
                    self.source, index, resolution, key.magnitude, key.bandwidth, key.seed
                )
                break
            except CorruptImageError as error:
                if not self.skip_corrupt:
                    return {"corrupt": str(error)}
                skipped.append(str(error))
                index = (index + 1) % len(self.source)
                if index == key.index:
                    return {"corrupt": f"{error} (and no image of the split can be decoded)"}
        return {"image": pixels, "label": self.source.label(index), "index": index, "skipped": skipped}


class EvalDataset(Dataset):
    """Evaluation samples ``[start, stop)`` of a split: each rank gets a contiguous shard, no padding."""

    def __init__(self, source, pipeline, full_resolution: int, start: int, stop: int):
        self.source, self.pipeline, self.full_resolution = source, pipeline, full_resolution
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, position: int) -> dict[str, Any]:
        from curricurun.data.decode import CorruptImageError

        index = self.start + position
        try:
            image = self.pipeline.eval_sample(self.source, index, self.full_resolution)
        except CorruptImageError as error:
            return {"corrupt": str(error)}
        return {"image": image, "label": self.source.label(index), "index": index}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a micro-batch; every sample of it shares one stage, hence one image size.

    A sample that could not be decoded turns the batch into ``{"corrupt": message}`` (see :func:`checked_batch`);
    skipped files travel as ``skipped``, a list of their one-line messages.
    """
    for sample in samples:
        if "corrupt" in sample:
            return {"corrupt": sample["corrupt"]}
    batch: dict[str, Any] = {
        "image": torch.stack([sample["image"] for sample in samples]),
        "label": torch.tensor([sample["label"] for sample in samples], dtype=torch.long),
        "index": torch.tensor([sample["index"] for sample in samples], dtype=torch.long),
    }
    skipped = [message for sample in samples for message in sample.get("skipped", ())]
    if skipped:
        batch["skipped"] = skipped
    return batch


def checked_batch(batch: dict[str, Any], on_skip=None) -> dict[str, Any]:
    """The batch without its bookkeeping: raise the one-line error of an undecodable file, report skipped ones.

    Raises:
        CorruptImageError: ``data.path: image <index> ('<file>') cannot be decoded: <reason>`` (exit code 2).
    """
    from curricurun.data.decode import CorruptImageError

    if "corrupt" in batch:
        raise CorruptImageError(batch["corrupt"])
    skipped = batch.pop("skipped", None)
    if skipped and on_skip is not None:
        on_skip(skipped)
    return batch


def shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous, disjoint, covering split of ``range(size)``: exact metrics without padding duplicates."""
    return size * rank // world_size, size * (rank + 1) // world_size
