"""Images with class labels: the sample pipeline of every setup that does not serve its own data.

Per sample (loader workers): the recipe's named image pipeline (:mod:`curricurun.data.pipelines`) at the key's
stage. Per micro-batch, on the host: timm's random erasing, then (``data.replay``) the replay buffer's chunks; on
the device: the FFT low-frequency crop (when the curriculum asks for it there), then Mixup/CutMix, in the order of
EfficientTrain's ICCV ``engine.py`` L49-50.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, runtime_checkable

from curricurun.data.sample_pipeline import BatchSteps
from curricurun.data.staged import EvalDataset, StagedDataset, collate
from curricurun.errors import UserError
from curricurun.setups.base import DataShape


class LabelledImages:
    """Image files with class labels (Hub, local folder, IDX), read through the recipe's named pipeline."""

    def __init__(self, recipe, setup_cls: type):
        self.recipe, self.data, self.setup_cls = recipe, recipe.data, setup_cls

    @functools.cached_property
    def image_pipeline(self):
        """The named per-sample pipeline, built on first use (``inspect-model`` and ``sample`` never read it)."""
        from curricurun.data import pipelines

        return pipelines.build(self.data.pipeline, self.data.augment)

    def load_split(self, split: str, max_samples: int | None):
        from curricurun.data.sources import load_recipe_split

        return load_recipe_split(self.data, split, max_samples)

    def build_setup(self, train_split=None):
        """The recipe's setup; without a loaded split, the data is read only for what the recipe leaves open."""
        return self.setup_cls(self.recipe.setup_params, self._data_shape(train_split))

    def _data_shape(self, train_split) -> DataShape | None:
        if train_split is None:
            params = self.recipe.setup_params
            fields = type(params).model_fields
            # Only what the setup declares and the recipe leaves open sends us to the data (a VQ-VAE has no classes).
            wanted = [key for key in ("in_channels", "num_classes") if key in fields]
            if all(getattr(params, key, None) is not None for key in wanted):
                return None
            train_split = self.load_split(self.data.train_split, self.data.max_train_samples)
        return DataShape(train_split.channels, train_split.num_classes, self.data.image_size)

    def training_dataset(self, split):
        from curricurun.data import pipelines

        # With the split, a reference pipeline refuses grey images with one line before any worker starts.
        image_pipeline = pipelines.build(self.data.pipeline, self.data.augment, split)
        return StagedDataset(split, image_pipeline, self.data.image_size, self.data.corrupt_images == "skip")

    def evaluation_dataset(self, split, resolution: int, start: int, stop: int):
        return EvalDataset(split, self.image_pipeline, resolution, start, stop)

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        return collate(samples)

    def batch_steps(self, plan, curriculum, per_device: int, world_size: int, train_split) -> BatchSteps:
        """Erasing on the host (replay after it), the FFT crop and Mixup/CutMix on the device; user errors first."""
        from curricurun.curriculum.low_frequency_crop import fft_low_frequency_crop
        from curricurun.data.mixing import erase_batch, mix_batch
        from curricurun.data.replay import ReplayStages

        data = self.data
        replay = ReplayStages(data.replay, plan, world_size) if data.replay is not None else None
        eraser, mixer = batch_augmentations(data.augment, train_split.num_classes, per_device)
        fft = crops_on_device(curriculum)

        def host(batch: dict, step: int, seed: int) -> dict:
            # Before replay (TrainingBatches): a replayed sample keeps its erasing, as in ET++ (part of the loader).
            return erase_batch(batch, eraser, seed)

        def device(batch: dict, state, seed: int) -> dict:
            if fft and state.bandwidth is not None:
                batch["image"] = fft_low_frequency_crop(batch["image"], state.bandwidth)
            if mixer is not None:  # after the FFT crop, as ICCV's engine.py L49-50 orders them
                batch = mix_batch(batch, mixer, seed)
            return batch

        lines: list[str] = []
        if replay is not None:  # the host RAM each replaying stage's buffer needs (the images the loader delivers)

            def side(step: int) -> int:
                state = plan.states[step]
                return (None if fft else state.bandwidth) or state.resolution or data.image_size

            lines = replay.host_ram_lines(train_split.channels, side)
        return BatchSteps(replay, not fft, host if eraser is not None else None, device, tuple(lines))


@runtime_checkable
class CropsOnDevice(Protocol):
    """A curriculum member that declares where its low-frequency crop runs (``low_frequency_crop``)."""

    crops_on_device: bool


def crops_on_device(curriculum) -> bool:
    """Whether a curriculum member crops the spectrum on the device batch (``low_frequency_crop`` with ``fft``)."""
    members = () if curriculum is None else curriculum.members
    return any(isinstance(member, CropsOnDevice) and member.crops_on_device for member in members)


def batch_augmentations(augment, num_classes: int, per_device: int):
    """timm's random erasing and Mixup/CutMix for the recipe's ``data.augment``, each None when off."""
    from curricurun.data.mixing import build_mixup, build_random_erasing

    mixer = build_mixup(
        augment.mixup,
        augment.cutmix,
        num_classes,
        augment.mixup_prob,
        augment.mixup_switch_prob,
        augment.mixup_mode,
    )
    if mixer is not None and per_device % 2:
        raise UserError(f"data.augment.mixup: needs an even per-device batch (timm pairs images), got {per_device}")
    eraser = build_random_erasing(augment.random_erasing, augment.random_erasing_mode, augment.random_erasing_count)
    return eraser, mixer
