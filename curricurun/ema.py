"""Exponential moving average of the model weights, with a decay that ramps up with the step.

Early in training the weights move fast and a decay near 1 would keep the average stuck near the random
initialisation, so super-gradients ramps the decay up (SG 3.7.1 ``training/utils/ema_decay_schedules.py:38-61``).
The decay is a pure function of the step, so resume needs only the step and the averaged weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from timm.utils import ModelEmaV3
from torch import nn

EMA_SCHEDULES = ("constant", "threshold", "exp")


def ema_decay_at(
    step: int, decay: float, schedule: str, beta: float | None = None, total_steps: int | None = None
) -> float:
    """The EMA decay for the update after optimizer step ``step``.

    super-gradients' schedules (``ema_decay_schedules.py:25-61``):

    - ``constant``: ``decay``.
    - ``threshold``: min(decay, (1 + step)/(10 + step)); YOLO-NAS-Pose N/S use decay 0.997.
    - ``exp``: decay·(1 − exp(−beta·step/total_steps)); YOLO-NAS-Pose M/L use beta 50, with
      total_steps = steps per epoch × max_epochs (``sg_trainer.py:628,644``).

    super-gradients passes ``step`` = the 1-based count of batches done, including this one
    (``batch_idx + 1 + epoch × len(loader)``); pass the count of optimizer steps taken so far, including
    the one just taken, to match it.

    Raises:
        ValueError: unknown schedule, decay outside [0, 1], or ``exp`` without beta and total_steps.
    """
    if schedule not in EMA_SCHEDULES:
        raise ValueError(f"unknown EMA decay schedule '{schedule}'; valid: {', '.join(EMA_SCHEDULES)}")
    if not 0 <= decay <= 1:
        raise ValueError(f"EMA decay must lie in [0, 1], got {decay}")
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}")
    if schedule == "threshold":
        return min(decay, (1 + step) / (10 + step))
    if schedule == "exp":
        if beta is None or total_steps is None or total_steps < 1:
            raise ValueError("EMA schedule 'exp' needs beta and total_steps >= 1")
        return decay * (1 - math.exp(-beta * step / total_steps))
    return decay


class ModelEma:
    """An EMA copy of a model, updated with the scheduled decay after each optimizer step.

    Built on timm's ``ModelEmaV3`` (its in-place ``foreach`` lerp of parameters and buffers; integer
    buffers are copied), with the decay taken from :func:`ema_decay_at` instead of timm's own warm-up.
    Create it from the unwrapped model after moving the model to its device and before any distributed
    wrapper (timm's note on ``ModelEmaV3``), and pass the unwrapped model to :meth:`update`.

    Args:
        model: the model being trained.
        decay: the maximum decay.
        schedule: ``"constant"``, ``"threshold"`` or ``"exp"``.
        beta: ``exp`` only: how fast the decay saturates.
        total_steps: ``exp`` only: optimizer steps of the planned run (max epochs, not early-stopped).
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float,
        schedule: str = "constant",
        beta: float | None = None,
        total_steps: int | None = None,
    ):
        ema_decay_at(0, decay, schedule, beta, total_steps)
        self.decay, self.schedule, self.beta, self.total_steps = decay, schedule, beta, total_steps
        self._ema = ModelEmaV3(model, decay=decay)
        self._ema.module.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        """The averaged model, in eval mode, for evaluation and export."""
        return self._ema.module

    def decay_at(self, step: int) -> float:
        """The decay :meth:`update` uses at ``step``."""
        return ema_decay_at(step, self.decay, self.schedule, self.beta, self.total_steps)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float:
        """Fold ``model`` into the average: ema ← decay·ema + (1 − decay)·model. Returns the decay used.

        Args:
            model: the unwrapped trained model, same structure as the one the EMA was built from.
            step: optimizer steps taken so far, including the one just taken (see :func:`ema_decay_at`).
        """
        decay = self.decay_at(step)
        self._ema.apply_update_(model, decay)
        return decay

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights, with the same keys as the model's own ``state_dict``."""
        return self._ema.module.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore averaged weights saved by :meth:`state_dict` (strict: every key must match)."""
        self._ema.module.load_state_dict(state_dict)
