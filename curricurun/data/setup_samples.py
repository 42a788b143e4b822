"""The sample pipeline of setups that build their own samples (``load_split`` / ``training_sample`` / ...).

The engine still decides which sample, at which stage and with which seed (the planned sampler's
:class:`~curricurun.data.sampler.SampleKey`); the setup decides what the sample is: an image with its pose ground
truth, four images in a mosaic. Both datasets pickle the setup and the split to DataLoader workers, so neither may
hold a model or an open file.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from curricurun.data.sample_pipeline import BatchSteps
from curricurun.data.sampler import SampleKey
from curricurun.errors import UserError
from curricurun.setups.base import optional_hooks


def owns_data(setup_or_class: Any) -> bool:
    """True when the setup serves its own samples (the engine asks :func:`.sample_pipeline.open_sample_pipeline`)."""
    return optional_hooks(setup_or_class).own_data is not None


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


class SetupSamples:
    """The sample pipeline of a setup that serves its own data (setups/base.py ``SetupWithOwnData``).

    The setup is built before the data (its ``load_split`` reads the split) and needs no data shape.
    """

    def __init__(self, setup, data):
        self.setup, self.data = setup, data

    def load_split(self, split: str, max_samples: int | None):
        return self.setup.load_split(self.data, split, max_samples)

    def build_setup(self, train_split=None):
        return self.setup

    def training_dataset(self, split) -> Dataset:
        return SetupTrainingDataset(self.setup, split, self.data.image_size)

    def evaluation_dataset(self, split, resolution: int, start: int, stop: int) -> Dataset:
        return SetupEvaluationDataset(self.setup, split, resolution, start, stop)

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        return self.setup.collate(samples)

    def batch_steps(self, plan, curriculum, per_device: int, world_size: int, train_split) -> BatchSteps:
        """No host or device steps: the setup's ``training_sample`` already is the whole augmentation."""
        return BatchSteps()


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
