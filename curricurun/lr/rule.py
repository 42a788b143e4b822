"""The world-size LR rule: the recipe's base LR scaled to this run's global batch, computed once.

The LR that the engine writes is ``rule.effective_lr × schedule.ratio_at(step)``
(:mod:`curricurun.lr.schedule`); the rule is logged and stored in the checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

LR_RULES = ("linear", "sqrt", "none")


@dataclass(frozen=True)
class LrRule:
    """The peak LR of this run and how it was derived from the recipe's base LR.

    ``effective_lr = base_lr × scale(ratio)`` with ``ratio = global_batch / reference_batch`` and scale
    linear (Goyal et al.), sqrt (Krizhevsky; timm's default for Adam-like optimizers) or none
    (DeepSpeed ``scale_lr``, PR deepspeedai/DeepSpeed#7104; timm ``--lr-base-scale``).

    Attributes:
        rule: ``"linear"``, ``"sqrt"`` or ``"none"``.
        base_lr: the recipe's LR, tuned at ``reference_batch``.
        global_batch: this run's samples per optimizer step (``BatchSizes.global_batch``).
        reference_batch: the global batch ``base_lr`` was tuned for.
        ratio: ``global_batch / reference_batch``.
        multiplier: what ``base_lr`` was multiplied by (``ratio``, ``sqrt(ratio)`` or 1).
        effective_lr: the peak LR this run uses.
        reference_source: how ``reference_batch`` was obtained: ``"reference_batch"`` (given),
            ``"reference_world_size"`` (reference world size × per-device batch) or ``"global_batch"``
            (nothing given, so the reference is this run's own global batch).
        reference_world_size: the world size the recipe was tuned on, when that convention was used.
        per_device_batch: this run's per-device batch.
    """

    rule: str
    base_lr: float
    global_batch: int
    reference_batch: int
    ratio: float
    multiplier: float
    effective_lr: float
    reference_source: str
    reference_world_size: int | None
    per_device_batch: int

    def describe(self) -> str:
        """One line with the numbers, for the log and ``inspect-schedule``."""
        if self.reference_source == "reference_world_size":
            origin = (
                f"reference_batch {self.reference_batch} = reference_world_size {self.reference_world_size}"
                f" × per-device {self.per_device_batch}"
            )
        elif self.reference_source == "reference_batch":
            origin = f"reference_batch {self.reference_batch} given"
        else:
            origin = "no reference batch or world size given: the reference is this run's global batch"
        if self.rule == "none":
            return (
                f"lr {self.effective_lr:g} = base {self.base_lr:g}, not rescaled (rule none; global batch"
                f" {self.global_batch}) [{origin}]"
            )
        return (
            f"lr {self.effective_lr:g} = base {self.base_lr:g}"
            f" × {self.rule}({self.global_batch} / {self.reference_batch}) [{origin}]"
        )

    def as_dict(self) -> dict[str, Any]:
        """All fields plus the ``describe()`` line, JSON-ready, for the log and ``trainer_state.json``."""
        return {**dataclasses.asdict(self), "description": self.describe()}


def resolve_lr_rule(
    base_lr: float,
    rule: str,
    global_batch: int,
    per_device_batch: int,
    reference_batch: int | None = None,
    reference_world_size: int | None = None,
) -> LrRule:
    """Scale the recipe's base LR to this run's global batch.

    The reference batch is either given (VAR: 256 per ``tblr``, ``utils/arg_util.py:260``; ET++: 4096,
    ``main_buffer.py`` L106-107) or ``reference_world_size × per_device_batch``: super-gradients recipes
    give a per-GPU batch and an LR tuned on 8 GPUs (``coco2017_yolo_nas_pose_s.yaml:42-43``, SG#1807). That second
    convention suits recipes whose per-device batch is fixed; if a recipe fixes the *global* batch instead,
    give ``reference_batch``, otherwise the reference would move with the per-device batch.

    Args:
        base_lr: LR the recipe was tuned with, at the reference batch.
        rule: ``"linear"``, ``"sqrt"`` or ``"none"``.
        global_batch: this run's samples per optimizer step (``BatchSizes.global_batch``).
        per_device_batch: this run's per-device batch.
        reference_batch: the global batch ``base_lr`` was tuned for.
        reference_world_size: the world size the recipe was tuned on (used with ``per_device_batch``).

    Raises:
        ValueError: unknown rule, non-positive sizes, or both references given.
    """
    if rule not in LR_RULES:
        raise ValueError(f"unknown LR rule '{rule}'; valid rules: {', '.join(LR_RULES)}")
    if not base_lr > 0:
        raise ValueError(f"base_lr must be positive, got {base_lr}")
    if global_batch < 1 or per_device_batch < 1:
        raise ValueError(f"batch sizes must be at least 1, got global {global_batch}, per-device {per_device_batch}")
    if reference_batch is not None and reference_world_size is not None:
        raise ValueError("give reference_batch or reference_world_size, not both")
    if reference_batch is not None:
        if reference_batch < 1:
            raise ValueError(f"reference_batch must be at least 1, got {reference_batch}")
        source, reference = "reference_batch", reference_batch
    elif reference_world_size is not None:
        if reference_world_size < 1:
            raise ValueError(f"reference_world_size must be at least 1, got {reference_world_size}")
        source, reference = "reference_world_size", reference_world_size * per_device_batch
    else:
        source, reference = "global_batch", global_batch
    ratio = global_batch / reference
    multiplier = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[rule]
    return LrRule(
        rule=rule,
        base_lr=base_lr,
        global_batch=global_batch,
        reference_batch=reference,
        ratio=ratio,
        multiplier=multiplier,
        effective_lr=base_lr * multiplier,
        reference_source=source,
        reference_world_size=reference_world_size,
        per_device_batch=per_device_batch,
    )
