"""The training plan: every step's stage, batch and place in the data order, worked out before training.

A curriculum is a pure function of progress, but progress itself (samples seen, compute spent) depends on
the stages already trained: a low-resolution step costs less, a larger batch consumes more samples. The
plan integrates that once, at start, so that every rank, the sampler, ``inspect-schedule`` and a resumed
run all read the same table. Resume then needs only the step counter (nanoGPT's lesson: everything else is
derived from it).

Data order: epoch ``e`` is a permutation seeded by ``(seed, e)``; each step takes the next ``global_batch``
positions of it. A step never straddles two epochs: when fewer than ``global_batch`` samples remain, the
epoch's tail is dropped and the next epoch starts (drop-last, so all ranks always see equal batches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from curricurun.curriculum.base import Progress, StageState
from curricurun.errors import UserError
from curricurun.lr.warmup import WarmupHold


@dataclass(frozen=True)
class PlanConfig:
    """The numbers a plan is built from (taken from the recipe and the launched world)."""

    dataset_size: int
    world_size: int
    global_batch: int
    accumulation: int = 1
    epochs: float | None = None
    steps: int | None = None
    budget_epochs: float | None = None
    warmup_steps: int = 0
    warmup_epochs: float | None = None
    warmup_fraction: float | None = None
    full_resolution: int | None = None

    @property
    def full_steps_per_epoch(self) -> int:
        return self.dataset_size // self.global_batch


class TrainingPlan:
    """Per-step table: stage state, global batch, epoch and offset in that epoch's permutation, progress.

    Args:
        config: sizes and training length.
        curriculum: object with ``state_at(Progress) -> StageState`` and ``sample_cost(state, full_resolution)``;
            ``None`` trains every step at full size.
    """

    def __init__(self, config: PlanConfig, curriculum=None):
        self.config = config
        self.curriculum = curriculum
        if config.full_steps_per_epoch < 1:
            raise UserError(
                f"batch: the global batch {config.global_batch} is larger than the dataset"
                f" ({config.dataset_size} samples)"
            )
        self.steps_per_epoch = config.full_steps_per_epoch
        total = self._first_guess_of_total_steps()
        for _ in range(20):
            self._simulate(total)
            if self.total_steps == total:
                break
            total = self.total_steps
        else:  # pragma: no cover - a curriculum whose length never settles is a bug in that curriculum
            raise RuntimeError("the training length did not converge; the curriculum depends on its own length")

    # -- building -------------------------------------------------------------------------------------

    def _first_guess_of_total_steps(self) -> int:
        c = self.config
        if c.steps is not None:
            return c.steps
        if c.epochs is not None:
            return max(1, round(c.epochs * self.steps_per_epoch))
        assert c.budget_epochs is not None
        return max(1, round(c.budget_epochs * self.steps_per_epoch))

    def warmup_steps_for(self, total_steps: int) -> int:
        """The uncapped warm-up of a ``total_steps`` run (:class:`~curricurun.lr.warmup.WarmupHold`'s rule)."""
        c = self.config
        lengths = WarmupHold(steps=c.warmup_steps, epochs=c.warmup_epochs, fraction=c.warmup_fraction)
        return int(lengths.warmup(self.steps_per_epoch, total_steps, capped=False))

    def _simulate(self, total_guess: int) -> None:
        c = self.config
        n, full_batch = c.dataset_size, c.global_batch
        budget = (c.budget_epochs or 0.0) * self.steps_per_epoch
        target_samples = max(1, round(c.epochs * self.steps_per_epoch)) * full_batch if c.epochs is not None else None
        warmup = self.warmup_steps_for(total_guess)
        interned: dict[StageState, StageState] = {}
        states, batches, epochs, offsets, seen_list, cost_list = [], [], [], [], [], []
        step = epoch = position = seen = 0
        cost = 0.0
        expected_batch = full_batch
        while True:
            if position + expected_batch > n:
                epoch, position = epoch + 1, 0
            if c.steps is not None and step >= c.steps:
                break
            if target_samples is not None and seen >= target_samples:
                break
            if c.budget_epochs is not None and cost >= budget - 1e-9:
                break
            progress = Progress(
                step=step,
                micro_step=step * c.accumulation,
                epoch=epoch + position / n,
                samples_seen=seen,
                step_fraction=step / total_guess,
                compute_fraction=cost / budget if budget else step / total_guess,
                total_steps=total_guess,
                steps_per_epoch=self.steps_per_epoch,
                accumulation=c.accumulation,
                warmup_steps=warmup,
            )
            state = self.curriculum.state_at(progress) if self.curriculum is not None else StageState()
            state = interned.setdefault(state, state)
            batch = state.batch_size or full_batch
            self._check_batch(batch, state)
            if position + batch > n:  # only when a batch-size curriculum grew the batch at this very step
                epoch, position = epoch + 1, 0
            states.append(state)
            batches.append(batch)
            epochs.append(epoch)
            offsets.append(position)
            seen_list.append(seen)
            cost_list.append(cost)
            position += batch
            seen += batch
            expected_batch = batch
            cost += self._sample_cost(state) * batch / full_batch
            step += 1
        self.total_steps = step
        self.states = states
        self.global_batches = np.asarray(batches, dtype=np.int64)
        self.epoch_index = np.asarray(epochs, dtype=np.int64)
        self.epoch_offset = np.asarray(offsets, dtype=np.int64)
        self.samples_before = np.asarray(seen_list, dtype=np.int64)
        self.compute_before = np.asarray(cost_list, dtype=np.float64)
        self.total_compute = cost
        self.warmup_steps = self.warmup_steps_for(self.total_steps)

    def _sample_cost(self, state: StageState) -> float:
        if self.curriculum is None:
            return 1.0
        return float(self.curriculum.sample_cost(state, self.config.full_resolution))

    def _check_batch(self, batch: int, state: StageState) -> None:
        per_micro = self.config.world_size * self.config.accumulation
        if batch % per_micro:
            where = "curriculum batch_size" if state.batch_size else "batch"
            raise UserError(
                f"{where}: global batch {batch} is not divisible by world size {self.config.world_size}"
                f" × accumulation {self.config.accumulation}"
            )
        if batch > self.config.dataset_size:
            raise UserError(f"curriculum batch_size: {batch} is larger than the dataset ({self.config.dataset_size})")

    # -- reading --------------------------------------------------------------------------------------

    def epoch_at(self, step: int) -> float:
        """Epochs completed before ``step`` as a float (``epoch index + offset / dataset size``)."""
        if step >= self.total_steps:
            last = self.total_steps - 1
            position = int(self.epoch_offset[last] + self.global_batches[last])
            if position + self.config.global_batch > self.config.dataset_size:
                return float(self.epoch_index[last] + 1)  # only the dropped tail is left: the epoch is complete
            return float(self.epoch_index[last]) + position / self.config.dataset_size
        return float(self.epoch_index[step]) + float(self.epoch_offset[step]) / self.config.dataset_size

    def compute_fraction_at(self, step: int) -> float:
        total = self.total_compute or 1.0
        if step >= self.total_steps:
            return 1.0 if self.config.budget_epochs is None else self.total_compute / self._budget()
        return float(self.compute_before[step]) / (self._budget() if self.config.budget_epochs else total)

    def _budget(self) -> float:
        return (self.config.budget_epochs or 0.0) * self.steps_per_epoch

    def relative_compute(self) -> float:
        """Compute of this plan over the same number of epochs... at full size: what the curriculum saves.

        The comparison is with the same recipe without its curriculum, which trains the same number of
        samples (epochs or steps mode) or, in compute-budget mode, ``budget_epochs`` full-size epochs.
        """
        if self.config.budget_epochs is not None:
            baseline = self._budget()
        else:
            baseline = float(self.global_batches.sum()) / self.config.global_batch
        return self.total_compute / baseline if baseline else 1.0

    def stages(self) -> list[tuple[int, int, StageState]]:
        """Runs of consecutive steps with the same stage state: (start_step, end_step exclusive, state)."""
        runs: list[tuple[int, int, StageState]] = []
        start = 0
        for step in range(1, self.total_steps + 1):
            if step == self.total_steps or self.states[step] != self.states[start]:
                runs.append((start, step, self.states[start]))
                start = step
        return runs

    def epoch_boundary_crossed(self, step: int, every_epochs: float) -> bool:
        """True when the epoch count passes a multiple of ``every_epochs`` during ``step``."""
        before, after = self.epoch_at(step), self.epoch_at(step + 1)
        return math.floor(after / every_epochs + 1e-9) > math.floor(before / every_epochs + 1e-9)
