"""Warm-up and hold lengths from the recipe's ``schedule`` fields: the one place they are resolved.

The training plan (which hands VAR's progressive curriculum its warm-up, ``Progress.warmup_steps``) and the
LR schedule of both units (optimizer steps and ``schedule.unit: compute``) read these lengths from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupHold:
    """The warm-up (at most one of steps, epochs, fraction of the schedule) and the hold at the peak LR.

    Attributes:
        steps: warm-up in schedule steps.
        epochs: warm-up in epochs (× steps per epoch).
        fraction: warm-up as a fraction of the schedule's length.
        max_epochs: cap on the warm-up in epochs: super-gradients' ``LinearBatchLRWarmup`` caps its warm-up
            steps at one epoch, so a small dataset warms up faster.
        hold_steps: steps at the peak between warm-up and decay.
        hold_epochs: the hold in epochs: super-gradients holds the peak until an epoch
            (``lr_warmup_epochs``), so this keeps it right on any number of GPUs.
    """

    steps: float = 0
    epochs: float | None = None
    fraction: float | None = None
    max_epochs: float | None = None
    hold_steps: int = 0
    hold_epochs: float | None = None

    @classmethod
    def from_schedule(cls, schedule) -> WarmupHold:
        """From a recipe's :class:`~curricurun.recipe.schema.ScheduleConfig`."""
        return cls(
            steps=schedule.warmup_steps or 0,
            epochs=schedule.warmup_epochs,
            fraction=schedule.warmup_fraction,
            max_epochs=schedule.warmup_max_epochs,
            hold_steps=schedule.hold_steps,
            hold_epochs=schedule.hold_epochs,
        )

    def warmup(self, steps_per_epoch: int, total: float, *, rounded: bool = True, capped: bool = True) -> float:
        """Warm-up length for a schedule of ``total`` steps; ``rounded`` as VAR rounds ``wp_it`` (Python's round).

        The compute unit keeps the fraction (``rounded=False``: :class:`~curricurun.lr.schedule.LrSchedule`
        rounds it); the plan's own warm-up (``Progress.warmup_steps``) is uncapped (``capped=False``).
        """
        if self.epochs is not None:
            length = self.epochs * steps_per_epoch
        elif self.fraction is not None:
            length = self.fraction * total
        else:
            length = self.steps
        if rounded:
            length = round(length)
        if capped and self.max_epochs is not None:
            length = min(length, round(self.max_epochs * steps_per_epoch))
        return length

    def hold(self, steps_per_epoch: int) -> int:
        """Steps at the peak LR after the warm-up."""
        if self.hold_epochs is not None:
            return round(self.hold_epochs * steps_per_epoch)
        return self.hold_steps
