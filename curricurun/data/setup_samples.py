"""Datasets for setups that build their own samples (``load_split`` / ``training_sample`` / ``evaluation_sample``).

The engine still decides which sample, at which stage and with which seed (the planned sampler's
:class:`~curricurun.data.sampler.SampleKey`); the setup decides what the sample is: an image with its pose ground
truth, four images in a mosaic. Both datasets pickle the setup and the split to DataLoader workers, so neither may
hold a model or an open file.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from curricurun.data.sampler import SampleKey
from curricurun.data.staged import EvalDataset, collate
from curricurun.errors import UserError


def owns_data(setup_or_class: Any) -> bool:
    """True when the setup loads and serves its samples itself (setups/base.py ``SetupWithOwnData``)."""
    return all(hasattr(setup_or_class, name) for name in ("load_split", "training_sample", "evaluation_sample"))


class SetupTrainingDataset(Dataset):
    """``dataset[key]`` → ``setup.training_sample(split, key, full_resolution)``: stage and seed travel with the key."""

    def __init__(self, setup, split, full_resolution: int):
        self.setup, self.split, self.full_resolution = setup, split, full_resolution

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        return self.setup.training_sample(self.split, key, self.full_resolution)


class SetupEvaluationDataset(Dataset):
    """Evaluation samples ``[start, stop)`` of a split, built by the setup (a rank's contiguous shard)."""

    def __init__(self, setup, split, resolution: int, start: int, stop: int):
        self.setup, self.split, self.resolution, self.start, self.stop = setup, split, resolution, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, position: int) -> dict[str, Any]:
        return self.setup.evaluation_sample(self.split, self.start + position, self.resolution)


def evaluation_dataset(setup, split, resolution: int, start: int, stop: int, pipeline=None) -> tuple[Dataset, Any]:
    """The evaluation shard ``[start, stop)`` and its collate function, whoever builds the samples.

    ``pipeline``: the recipe's named image pipeline (:mod:`curricurun.data.pipelines`); None = ``small_images``.
    """
    if owns_data(setup):
        return SetupEvaluationDataset(setup, split, resolution, start, stop), setup.collate
    if pipeline is None:
        from curricurun.data.transforms import EvalTransform

        pipeline = EvalTransform()
    return EvalDataset(split, pipeline, resolution, start, stop), collate


def refuse_classification_options(recipe, setup_name: str) -> list[tuple[tuple[str, ...], str]]:
    """Recipe fields of the classification image pipeline that a setup with its own samples would silently ignore.

    Returned as ``(location, message)`` problems so that ``validate`` reports them with the others.
    """
    from curricurun.recipe.schema import AugmentConfig

    problems: list[tuple[tuple[str, ...], str]] = []
    data = recipe.data
    owner = f"the {setup_name} setup builds its own samples"
    if data.replay is not None:
        problems.append((("data", "replay"), f"{owner}; the replay buffer only serves classification batches"))
    defaults = AugmentConfig()
    for name in type(defaults).model_fields:
        if getattr(data.augment, name) != getattr(defaults, name):
            problems.append(
                (("data", "augment", name), f"{owner}; set its augmentation under 'setup:', not data.augment")
            )
    if data.source == "idx":
        problems.append((("data", "source"), f"{owner} from COCO-format keypoint files: use 'local' or 'hub'"))
    return problems


def check_split_size(split, world_size: int, name: str) -> None:
    """Every rank must get at least one evaluation sample (the sums' keys are only known to ranks that saw a batch)."""
    if len(split) < world_size:
        raise UserError(f"data.{name}: {len(split)} samples cannot be sharded over {world_size} processes")
