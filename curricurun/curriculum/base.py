"""The curriculum contract: a pure function from training progress to the stage state of the next step.

Nothing in a curriculum is stateful. Every rank evaluates the same function of the same counters, so every
rank trains the same stage at every step; resume needs only the counters; and ``inspect-schedule`` can
evaluate the whole plan without training (Composer's ``ProgressiveResizing``, DeepSpeed's
``CurriculumScheduler``, nanoGPT's ``get_lr(it)`` and timm's stateless schedulers all work this way).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from curricurun.recipe.fields import Params


@dataclass(frozen=True)
class Progress:
    """Where training stands just before an optimizer step is taken.

    Attributes:
        step: optimizer steps already taken (0 for the first step).
        micro_step: micro-iterations already taken (``step * accumulation``); VAR counts in these.
        epoch: epochs completed as a float (samples seen / dataset size).
        samples_seen: training samples consumed by all ranks so far.
        step_fraction: ``step / total_steps``.
        compute_fraction: compute spent so far over the compute budget, where one full-size sample costs 1.
        total_steps: optimizer steps in the whole run.
        steps_per_epoch: optimizer steps in one epoch at the full-size batch.
        accumulation: micro-iterations per optimizer step.
        warmup_steps: optimizer steps of LR warm-up (VAR freezes its first stage through them).
    """

    step: int
    micro_step: int
    epoch: float
    samples_seen: int
    step_fraction: float
    compute_fraction: float
    total_steps: int
    steps_per_epoch: float
    accumulation: int = 1
    warmup_steps: int = 0

    @property
    def total_micro_steps(self) -> int:
        return self.total_steps * self.accumulation

    @property
    def micro_steps_per_epoch(self) -> float:
        return self.steps_per_epoch * self.accumulation


@dataclass(frozen=True)
class StageState:
    """What the next step trains on. ``None`` means "this curriculum does not control that quantity".

    Attributes:
        resolution: side of the (square) training image in pixels, applied by the data loader.
        scale_index: 0-based index of the largest token scale trained (VAR's ``prog_si``).
        scale_loss_weights: per-scale loss weight multipliers (VAR keeps 1/L_full per token; this is the
            multiplier on top, 1.0 except the newest scale).
        newest_scale_weight: VAR's ``prog_wp``: weight of the newest scale's tokens, ramping 0.01 → 1.
        bandwidth: ET++ low-frequency bandwidth B: the side of the centre crop of the spectrum.
        aug_magnitude: RandAugment magnitude m.
        stage_ratios: Pyramid-Flow stage mix, e.g. (1, 2, 1).
        batch_size: global batch size for this step (optimizer-step batch, all ranks together).
    """

    resolution: int | None = None
    scale_index: int | None = None
    scale_loss_weights: tuple[float, ...] | None = None
    newest_scale_weight: float | None = None
    bandwidth: int | None = None
    aug_magnitude: float | None = None
    stage_ratios: tuple[int, ...] | None = None
    batch_size: int | None = None

    def merged_with(self, other: StageState) -> StageState:
        """Combine the fields of two curricula; two curricula may not both control one field."""
        values = {}
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if mine is not None and theirs is not None:
                raise ValueError(
                    f"two curricula both set '{field.name}'; compose curricula that control different fields"
                )
            values[field.name] = mine if mine is not None else theirs
        return StageState(**values)

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set, JSON-ready (tuples as lists)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = list(value) if isinstance(value, tuple) else value
        return out


class CurriculumParams(Params):
    """Base of every curriculum's parameter schema: unknown keys are rejected, floats finite (.inf/.nan steps are
    refused, not null), a bool is no number where fields are :data:`~curricurun.recipe.fields.Int` / ``Float``."""


class Curriculum:
    """Base of every curriculum: built from validated params, evaluated as a pure function of :class:`Progress`.

    Subclasses set ``name`` (the registry key), ``summary`` (one line for ``curricurun curricula``) and
    ``Params`` (a :class:`CurriculumParams` subclass), and implement :meth:`state_at`. The three other
    members are everything the engine reads from a curriculum; their defaults say "nothing to add", so a
    curriculum overrides only the ones it has something to say in. The registry accepts only subclasses
    (:mod:`curricurun.curriculum.registry`), so nothing downstream has to probe for them.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[CurriculumParams]]

    def __init__(self, params: CurriculumParams) -> None:
        self.params = params

    def state_at(self, progress: Progress) -> StageState:
        """The stage state for the step about to be taken at ``progress``."""
        raise NotImplementedError(f"{type(self).__name__} must implement state_at(progress)")

    @property
    def preferred_lr_shape(self) -> str | None:
        """An LR shape this curriculum's reference forces (``schedule.shape: auto`` uses it), or None."""
        return None

    def relative_cost(self, state: StageState) -> float:
        """The factor this curriculum's own cost model puts on one sample at ``state``, on top of
        :func:`pixel_cost` (VAR's token prefix, Pyramid-Flow's stage mix); 1.0: the pixel count says it all."""
        return 1.0

    def check_batch_size(self, per_device_batch_size: int) -> None:
        """Raise :class:`~curricurun.errors.UserError` if this curriculum cannot split such a batch."""


def pixel_cost(state: StageState, full_resolution: int | None) -> float:
    """Cost of one sample at ``state`` relative to one full-size sample, by pixel count.

    ET++ indexes its stages by this (its launchers' ``epoch_scale_ratio``, L28-35): a step at bandwidth B on a base of
    224 costs (B/224)². Token-scale curricula multiply in their own factor (:meth:`Curriculum.relative_cost`).
    """
    side = state.bandwidth if state.bandwidth is not None else state.resolution
    if side is None or not full_resolution:
        return 1.0
    return (side / full_resolution) ** 2
