"""The batch sampler curricurun owns: deterministic, rank-aware, resumable at any step, stage-carrying.

Why not Accelerate's sharded loader: its default sampler state is not saved, ``skip_first_batches`` replays
the wrong permutation after the first epoch (accelerate#2016, #2823), and a custom batch sampler is not told
the epoch (accelerate ``data_loader.py`` ``DataLoaderShard.set_epoch``). Here the order is a pure function of
(seed, epoch) read from the :class:`~curricurun.plan.TrainingPlan`, so starting at step ``s`` is just starting
the loop at ``s``.

Each sampled element carries its stage (resolution, RandAugment magnitude, bandwidth) and its own
augmentation seed, the trick of timm's ``ScheduledBatchSampler``: DataLoader workers then apply the right
size and magnitude to every sample without being told about stage changes (timm ``scheduled_sampler.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from curricurun.plan import TrainingPlan


class SampleKey(NamedTuple):
    """One sample to load and how: dataset index, stage image settings, and its augmentation seed."""

    index: int
    resolution: int | None
    magnitude: float | None
    bandwidth: int | None
    seed: int


def epoch_permutation(dataset_size: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: identical on every rank, different each epoch."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(dataset_size, generator=generator)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of one sample in one epoch, independent of worker count and rank."""
    return (seed * 1_000_003 + epoch * 2_000_029 + index * 7_919) % (2**62)


class PlannedBatchSampler:
    """Yields this rank's micro-batches for steps ``start_step .. stop_step`` of the plan.

    The global batch of a step is split as ``[accumulation, world_size, per_rank]``: micro-step ``m`` of
    rank ``r`` takes row ``m``, column ``r``. The ranks' samples are therefore disjoint and together cover
    the step's global batch.

    Args:
        plan: the training plan (stages, batch sizes, epoch order per step).
        seed: run seed; the permutation of epoch ``e`` is seeded by (seed, e).
        rank: this process's index; world_size: number of processes.
        start_step: first optimizer step to yield (resume point).
        loader_applies_bandwidth: False when the low-frequency crop runs on the device (FFT method); the
            loader then delivers base-size images.

    What each step loads (``global_batches``, ``epoch_index``, ``epoch_offset``: its batch and where it starts
    in which epoch's permutation) is the plan's walk; a subclass walks the data with other batch sizes
    (:class:`~curricurun.data.replay.FreshSampler`, the replay buffer's fresh part) by overriding :meth:`_walk`.
    """

    def __init__(
        self,
        plan: TrainingPlan,
        seed: int,
        rank: int,
        world_size: int,
        start_step: int = 0,
        stop_step: int | None = None,
        loader_applies_bandwidth: bool = True,
    ):
        self.plan, self.seed, self.rank, self.world_size = plan, seed, rank, world_size
        self.start_step = start_step
        self.stop_step = plan.total_steps if stop_step is None else stop_step
        self.loader_applies_bandwidth = loader_applies_bandwidth
        self.accumulation = plan.config.accumulation
        self.global_batches, self.epoch_index, self.epoch_offset = self._walk()
        self._cached_epoch: tuple[int, torch.Tensor] | None = None

    def _walk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(batch, epoch, offset) of every step: the plan's own."""
        return self.plan.global_batches, self.plan.epoch_index, self.plan.epoch_offset

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step) * self.accumulation

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._cached_epoch is None or self._cached_epoch[0] != epoch:
            self._cached_epoch = (epoch, epoch_permutation(self.plan.config.dataset_size, self.seed, epoch))
        return self._cached_epoch[1]

    def step_indices(self, step: int) -> torch.Tensor:
        """This rank's dataset indices for ``step`` as ``[accumulation, per_rank]``."""
        epoch, offset = int(self.epoch_index[step]), int(self.epoch_offset[step])
        window = self._permutation(epoch)[offset : offset + int(self.global_batches[step])]
        return window.view(self.accumulation, self.world_size, -1)[:, self.rank]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for step in range(self.start_step, self.stop_step):
            state = self.plan.states[step]
            epoch = int(self.epoch_index[step])
            bandwidth = state.bandwidth if self.loader_applies_bandwidth else None
            for micro_batch in self.step_indices(step).tolist():
                yield [
                    SampleKey(
                        index, state.resolution, state.aug_magnitude, bandwidth, sample_seed(self.seed, epoch, index)
                    )
                    for index in micro_batch
                ]
