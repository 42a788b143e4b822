"""The one data path of every command: where a recipe's samples come from and what a batch goes through.

:func:`open_sample_pipeline` is the only place that decides how a recipe's data is read; ``train``,
``inspect-schedule`` (its dataset size and ``--measure``), ``inspect-model`` and ``sample`` all call it.
Two implementations of :class:`SamplePipeline`:

- :class:`~curricurun.data.labelled_images.LabelledImages`: image files with class labels through the recipe's
  named image pipeline; random erasing and replay on the host, the FFT crop and Mixup/CutMix on the device;
- :class:`~curricurun.data.setup_samples.SetupSamples`: a setup that serves its own samples (pose ground truth).

The engine keeps the data ORDER in both (the planned, rank-aware, resumable sampler and its per-sample seeds,
:class:`~curricurun.data.sampler.SampleKey`); the pipeline decides what a sample IS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from curricurun.setups.base import optional_hooks


@dataclass(frozen=True)
class BatchSteps:
    """What a training micro-batch goes through after the loader, and how the loader sizes its samples.

    Attributes:
        replay: the replay stages (``data.replay``): the loader then yields only each batch's fresh samples, and
            :class:`TrainingBatches` adds the replayed ones after ``host``.
        loader_applies_bandwidth: False when the low-frequency crop runs on the device batch instead.
        host: ``host(batch, step, seed)`` on the host batch before replay (random erasing), or None.
        device: ``device(batch, state, seed)`` on the device batch (FFT crop, Mixup/CutMix), or None.
        start_lines: lines printed when training starts (the replay buffers' host RAM).
    """

    replay: Any = None
    loader_applies_bandwidth: bool = True
    host: Callable[[dict, int, int], dict] | None = None
    device: Callable[[dict, Any, int], dict] | None = None
    start_lines: tuple[str, ...] = ()


class SamplePipeline(Protocol):
    """Load a split, build the setup on it, serve training samples by key and evaluation samples by position."""

    def load_split(self, split: str, max_samples: int | None) -> Any:
        """The split (``len()``, ``channels``; labelled images also ``num_classes``)."""

    def build_setup(self, train_split: Any = None) -> Any:
        """The recipe's setup (the loaded training split gives its channels/classes; None: read what is needed)."""

    def training_dataset(self, split: Any) -> Any:
        """A map-style dataset: ``dataset[SampleKey]`` is one training sample at the key's stage and seed."""

    def evaluation_dataset(self, split: Any, resolution: int, start: int, stop: int) -> Any:
        """Deterministic evaluation samples ``[start, stop)`` of the split (a rank's contiguous shard)."""

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack samples into a batch dict (at least ``image`` and ``index``)."""

    def batch_steps(self, plan: Any, curriculum: Any, per_device: int, world_size: int, train_split: Any) -> BatchSteps:
        """The host and device steps of training batches (user errors here come before anything is written)."""


def open_sample_pipeline(recipe, setup: Any = None) -> SamplePipeline:
    """The recipe's sample pipeline: the setup's own samples when it serves them, else labelled images.

    ``setup``: an already built setup of the recipe (a setup that serves its own data is then not built again).
    """
    from curricurun.setups import get as get_setup

    setup_cls = get_setup(recipe.setup.name)
    if optional_hooks(setup_cls).own_data is not None:  # pose: the setup reads its own annotation format
        from curricurun.data.setup_samples import SetupSamples

        return SetupSamples(setup if setup is not None else setup_cls(recipe.setup_params, None), recipe.data)
    from curricurun.data.labelled_images import LabelledImages

    return LabelledImages(recipe, setup_cls)


def open_training_split(recipe) -> tuple[SamplePipeline, Any, Any]:
    """The pipeline, the training split (``data.train_split``, ``data.max_train_samples``) and the setup built on
    it: what ``train`` and ``inspect-schedule --measure`` read, in this order."""
    samples = open_sample_pipeline(recipe)
    split = samples.load_split(recipe.data.train_split, recipe.data.max_train_samples)
    return samples, split, samples.build_setup(split)


class TrainingBatches:
    """This rank's training micro-batches in plan order, on the device and ready for the loss.

    The DataLoader is not ``prepare``d by Accelerate: the sampler is already rank-aware (preparing would shard it
    twice) and resumable (Accelerate's default sampler state is not saved).
    """

    def __init__(self, samples: SamplePipeline, split, steps: BatchSteps, plan, seed: int, rank: int,
                 world_size: int, start_step: int, stop_step: int, num_workers: int, device, report):  # fmt: skip
        from torch.utils.data import DataLoader

        from curricurun.data.replay import FreshSampler
        from curricurun.data.sampler import PlannedBatchSampler
        from curricurun.engine.device import loader_options

        bandwidth = steps.loader_applies_bandwidth
        if steps.replay is None:
            sampler = PlannedBatchSampler(plan, seed, rank, world_size, start_step, stop_step, bandwidth)
        else:  # the loader makes only the fresh part of each batch; the replay buffer adds the rest
            sampler = FreshSampler(steps.replay, seed, rank, world_size, start_step, stop_step, bandwidth)
        loader = DataLoader(
            samples.training_dataset(split),
            batch_sampler=sampler,
            collate_fn=samples.collate,
            **loader_options(num_workers),  # pinned pages on CUDA, so the copies below are asynchronous
        )
        self.loader, self.channels_last = loader, False  # channels_last: set by the engine (training.channels_last)
        self.steps, self.device, self.report = steps, device, report
        self.skipped_files: list[str] = []
        self._batches = iter(loader)

    def next(self, step: int, state, seed: int) -> dict[str, Any]:
        """The next micro-batch of ``step``: host steps, replay, to the device, device steps."""
        from curricurun.data.staged import checked_batch
        from curricurun.engine.device import to_device

        batch = checked_batch(next(self._batches), self._skipped)
        if self.steps.host is not None:
            batch = self.steps.host(batch, step, seed)
        if self.steps.replay is not None:  # after erasing: a replayed sample keeps its erasing, as in ET++
            import torch

            batch = self.steps.replay.combine(step, batch, torch.Generator().manual_seed(seed))
        batch = to_device(batch, self.device, self.channels_last)
        if self.steps.device is not None:
            batch = self.steps.device(batch, state, seed)
        return batch

    def _skipped(self, messages: list[str]) -> None:  # data.corrupt_images: skip
        self.skipped_files.extend(messages)
        for message in messages:
            self.report(f"skipped undecodable image ({len(self.skipped_files)} so far): {message}")
