"""The LR and weight decay as pure functions of the optimizer step.

Why pure functions and not a torch scheduler: Accelerate steps a *prepared* scheduler ``num_processes``
times per optimizer step (accelerate ``scheduler.py`` ``AcceleratedScheduler``; accelerate#2926), and a
scheduler's own counter is one more piece of state to checkpoint. The engine instead calls
``schedule.ratio_at(step)`` every optimizer step and writes the result with
:func:`curricurun.lr.optimizer.apply_to_optimizer`; resume needs only the step (nanoGPT's ``get_lr(it)``,
timm's stateless schedulers, ``timm/scheduler/scheduler.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from curricurun.lr.shapes import is_var_shape, lin_threshold, parse_shape

# VAR's named linear shapes are a plateau of T (post-warm-up fraction) at the peak, then linear to wpe
# (VAR ``utils/lr_control.py:10-43``). ``exp`` uses the same 0.15 plateau.
_VAR_PLATEAU = {"lin": 0.15, "lin0": 0.05, "exp": 0.15}


@dataclass(frozen=True)
class LrSchedule:
    """The LR multiplier (of ``LrRule.effective_lr``) at each optimizer step.

    Warm-up (all shapes but ``sg_cosine``): for step < W = round(warmup_steps), the ratio rises linearly
    ``warmup_start_ratio + (1 − warmup_start_ratio)·step/W`` (VAR ``utils/lr_control.py:10-65``).
    W is rounded as VAR rounds ``wp_it`` (Python's ``round``).

    Generic shapes, after warm-up and ``hold_steps`` at the peak, with D = W + hold_steps and progress
    p = (step − D)/(total_steps − D) clipped to [0, 1]:

    - ``constant``: 1.
    - ``cosine``: final + (1 − final)(½ + ½cos(πp)).
    - ``linear``: 1 − (1 − final)p.
    - ``step``: gamma^k, k = the number of ``milestones`` (fractions of the post-warm-up steps) with p ≥ it.
    - ``sg_cosine``: super-gradients' ``LinearBatchLRWarmup`` + ``CosineLRScheduler`` exactly
      (SG 3.7.1 ``callbacks.py:317-379, 489-513``, SG#1807). It differs from ``cosine``
      in three ways: the warm-up is ``linspace(start, 1, W)`` (it reaches 1 at step W − 1, not W); the
      cosine is ``final + (1 − final)·½(1 + cos(π t/(T + 1)))`` with T = total − W − hold, so the final
      ratio is never quite reached; and the callback sets the LR *after* an optimizer step, so step g
      uses t = max(0, g − 1 − W − hold). For YOLO-NAS-Pose: W = min(128, steps per epoch),
      ``warmup_start_ratio = 1e-6 / initial_lr``, ``hold_steps = lr_warmup_epochs (10) × steps per epoch``,
      ``total_steps = max_epochs (1000) × steps per epoch`` even when early stopping ends the run sooner.

    VAR shapes (``utils/lr_control.py:10-43``), with pasd = (step − W)/(total − 1 − W)
    and rest = 1 − pasd; ``final_ratio`` is VAR's ``wpe``:

    - ``cos``: wpe + (1 − wpe)(½ + ½cos(π·pasd)).
    - ``lin`` / ``lin0``: 1 while pasd < 0.15 / 0.05, then wpe + (1 − wpe)·rest/(1 − T).
    - ``lin00``: wpe + (1 − wpe)·rest.
    - ``lin<T>``: m = (1 + wpe + (1 − wpe)(1 − T))/2; 1 + (m − 1)·pasd/T while pasd < T, then
      wpe + (m − wpe)·rest/(1 − T).
    - ``exp``: 1 while pasd < 0.15, then exp((pasd − 0.15)/0.85 · ln wpe).

    VAR evaluates its schedule on micro-iterations: to match it with gradient accumulation, pass the
    micro-step counts (``total_steps`` = total micro-steps, step = the micro-step at which the optimizer
    steps).

    Attributes:
        shape: see :func:`parse_shape`.
        total_steps: length of the schedule in steps; independent of when training actually stops.
        warmup_steps: W before rounding (VAR's ``wp_it`` may be fractional).
        warmup_start_ratio: ratio at step 0 (VAR ``wp0``; an absolute start LR divided by the peak LR).
        final_ratio: ratio at the end (VAR ``wpe``, super-gradients ``cosine_final_lr_ratio``); unused by
            ``constant`` and ``step``.
        milestones: ``step`` only: increasing fractions in (0, 1) of the post-warm-up steps.
        gamma: ``step`` only: factor applied at each milestone.
        hold_steps: generic shapes only: steps at the peak between warm-up and decay.
    """

    shape: str
    total_steps: int
    warmup_steps: float = 0
    warmup_start_ratio: float = 0.0
    final_ratio: float = 0.0
    milestones: Sequence[float] = ()
    gamma: float = 0.1
    hold_steps: int = 0

    def __post_init__(self) -> None:
        parse_shape(self.shape)
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {self.total_steps}")
        if self.warmup_steps < 0 or self.hold_steps < 0:
            raise ValueError(
                f"warmup_steps and hold_steps must be non-negative, got {self.warmup_steps}, {self.hold_steps}"
            )
        if not 0 <= self.warmup_start_ratio <= 1 or not 0 <= self.final_ratio <= 1:
            raise ValueError(
                "warmup_start_ratio and final_ratio must lie in [0, 1], "
                f"got {self.warmup_start_ratio}, {self.final_ratio}"
            )
        if self.shape == "step":
            ms = self.milestones
            if not ms or any(not 0 < m < 1 for m in ms) or list(ms) != sorted(set(ms)):
                raise ValueError(f"shape 'step' needs increasing milestones in (0, 1), got {list(ms)}")
        elif self.milestones:
            raise ValueError(f"milestones are used only by shape 'step', not '{self.shape}'")
        w = self.warmup_iters
        if is_var_shape(self.shape):
            if self.hold_steps:
                raise ValueError(f"VAR shape '{self.shape}' has no hold_steps; its plateau is part of the shape")
            if w >= self.total_steps - 1:
                raise ValueError(f"warm-up ({w} steps) must end before the last step ({self.total_steps - 1})")
            if self.shape == "exp" and self.final_ratio <= 0:
                raise ValueError("shape 'exp' decays to log(final_ratio), so final_ratio must be positive")
        elif w + self.hold_steps >= self.total_steps:
            raise ValueError(
                f"warm-up ({w}) + hold ({self.hold_steps}) steps must be fewer than total_steps ({self.total_steps})"
            )

    @property
    def warmup_iters(self) -> int:
        """W = round(warmup_steps), as VAR rounds ``wp_it``."""
        return round(self.warmup_steps)

    def ratio_at(self, step: int) -> float:
        """Multiplier of the effective LR for optimizer step ``step`` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        if self.shape == "sg_cosine":
            return self._sg_cosine_ratio(step)
        w = self.warmup_iters
        if step < w:
            return self.warmup_start_ratio + (1 - self.warmup_start_ratio) * step / w
        if is_var_shape(self.shape):
            pasd = min((step - w) / (self.total_steps - 1 - w), 1.0)
            return _var_ratio(self.shape, pasd, self.final_ratio)
        decay_start = w + self.hold_steps
        if step < decay_start:
            return 1.0
        p = min((step - decay_start) / (self.total_steps - decay_start), 1.0)
        final = self.final_ratio
        if self.shape == "cosine":
            return final + (1 - final) * (0.5 + 0.5 * math.cos(math.pi * p))
        if self.shape == "linear":
            return 1 - (1 - final) * p
        if self.shape == "step":
            return self.gamma ** sum(1 for m in self.milestones if p >= m)
        return 1.0

    def _sg_cosine_ratio(self, step: int) -> float:
        w, start, final = self.warmup_iters, self.warmup_start_ratio, self.final_ratio
        if step < w:
            # np.linspace(start, 1, num=W, endpoint=True)[step]; with W == 1 it holds only `start`.
            return start if w == 1 else start + (1 - start) * step / (w - 1)
        decay_start = w + self.hold_steps
        t = max(0, step - 1 - decay_start)
        horizon = self.total_steps - decay_start
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t / (horizon + 1)))


def _var_ratio(shape: str, pasd: float, wpe: float) -> float:
    """VAR's post-warm-up LR ratio (``utils/lr_control.py:17-43``)."""
    rest = 1 - pasd
    if shape == "cos":
        return wpe + (1 - wpe) * (0.5 + 0.5 * math.cos(math.pi * pasd))
    if shape == "lin00":
        return wpe + (1 - wpe) * rest
    if shape in _VAR_PLATEAU:
        plateau = _VAR_PLATEAU[shape]
        if pasd < plateau:
            return 1.0
        if shape == "exp":
            return math.exp((pasd - plateau) / (1 - plateau) * math.log(wpe))
        return wpe + (1 - wpe) * rest / (1 - plateau)
    threshold = lin_threshold(shape)
    assert threshold is not None  # parse_shape admitted it
    mid = (1 + wpe + (1 - wpe) * (1 - threshold)) / 2
    if pasd < threshold:
        return 1 + (mid - 1) * pasd / threshold
    return wpe + (mid - wpe) * rest / (1 - threshold)


@dataclass(frozen=True)
class WeightDecaySchedule:
    """Weight decay at each step: constant, or a cosine from ``wd`` to ``wd_end`` over the whole run.

    The cosine is VAR's: wd_end + (wd − wd_end)(½ + ½cos(π·step/(total_steps − 1))), warm-up included
    (``utils/lr_control.py:47-48``); with VAR's d30/d36 recipes it *rises* from 0.05 to
    0.08. ``wd_end=None`` (VAR's ``twde=0``) keeps ``wd`` constant.

    Attributes:
        wd: weight decay at step 0.
        wd_end: weight decay at the last step, or None for constant.
        total_steps: length of the schedule in steps.
    """

    wd: float
    wd_end: float | None = None
    total_steps: int = 1

    def __post_init__(self) -> None:
        if self.wd < 0 or (self.wd_end is not None and self.wd_end < 0):
            raise ValueError(f"weight decay must be non-negative, got wd {self.wd}, wd_end {self.wd_end}")
        if self.wd_end is not None and self.total_steps < 1:
            raise ValueError(f"a cosine weight decay needs total_steps >= 1, got {self.total_steps}")

    def value_at(self, step: int) -> float:
        """Weight decay for optimizer step ``step`` (0-based); steps past the end keep ``wd_end``."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        if self.wd_end is None:
            return self.wd
        # A one-step run has only step 0, at the start of VAR's cosine (its formula would divide by zero).
        progress = min(step / (self.total_steps - 1), 1.0) if self.total_steps > 1 else 0.0
        return self.wd_end + (self.wd - self.wd_end) * (0.5 + 0.5 * math.cos(math.pi * progress))
