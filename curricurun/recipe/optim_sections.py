"""The recipe's optimisation sections: ``optim`` (with ``lr_scaling``) and ``schedule``.

Shapes and the ``lin<T>`` parser come from :mod:`curricurun.lr.shapes`, the one list the schedules use too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from curricurun.lr import shapes
from curricurun.naming import did_you_mean
from curricurun.recipe.fields import (
    AdamBeta,
    NonNegativeFloat,
    NonNegativeInt,
    NotBoolFloat,
    OpenUnitFraction,
    PositiveFloat,
    PositiveInt,
    Section,
    UnitFraction,
    at_most_one,
    exactly_one,
)
from curricurun.recipe.problems import show_value


class LrScalingConfig(Section):
    """How the LR follows the batch size: ``lr = base_lr × scale(global_batch / reference)``.

    The reference is a global batch (VAR: 256, ET++: 4096) or a world size whose global batch the
    recipe's LR was tuned for (SuperGradients: 8 GPUs; SG ``distributed_training_utils.py:293-297``).
    """

    rule: Literal["linear", "sqrt", "none"] = "none"
    reference_batch: PositiveInt | None = None
    reference_world_size: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_reference(self) -> LrScalingConfig:
        names = ("reference_batch", "reference_world_size")
        if self.rule == "none":
            at_most_one(self, names)
        else:
            exactly_one(self, names)
        return self


class OptimConfig(Section):
    """The optimizer and its hyper-parameters; ``lr`` is the base LR before batch-size scaling."""

    name: Literal["adamw", "adam", "sgd", "lamb"] = "adamw"
    lr: PositiveFloat
    betas: tuple[AdamBeta, AdamBeta] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    momentum: NonNegativeFloat = 0.9
    nesterov: bool = False
    weight_decay: NonNegativeFloat = 0.0
    weight_decay_end: NonNegativeFloat | None = None
    no_decay_names: list[str] = Field(default_factory=list)
    # VAR decays its class embedding (an nn.Embedding); most codebases exempt embeddings.
    decay_embeddings: bool = False
    lr_scaling: LrScalingConfig = Field(default_factory=LrScalingConfig)


class ScheduleConfig(Section):
    """The LR shape over training, its warm-up and its length.

    ``unit`` is what the schedule counts: optimizer ``steps``, ``micro_steps`` (VAR), or ``compute``, full-size
    step equivalents of compute spent, so that the LR follows the compute fraction as EfficientTrain++'s
    does (its epoch counter is rescaled by (B_prev/B_new)² at every stage, ET++ ``utils_buffer.py`` L533-542);
    with ``compute`` the warm-up, its ``warmup_max_epochs`` cap, the hold and ``length_epochs`` count compute too.
    """

    shape: str = "cosine"
    warmup_steps: NonNegativeInt | None = None
    warmup_epochs: NonNegativeFloat | None = None
    warmup_fraction: Annotated[float, Field(ge=0, lt=1), NotBoolFloat] | None = None
    warmup_start_ratio: UnitFraction = 0.0
    hold_steps: NonNegativeInt = 0
    # super-gradients holds the peak LR until an EPOCH (lr_warmup_epochs), so the step count depends on the
    # world size and the dataset: hold_epochs keeps it right on any number of GPUs.
    hold_epochs: NonNegativeFloat | None = None
    # super-gradients caps its warm-up steps at one epoch (LinearBatchLRWarmup): a small dataset warms up faster.
    warmup_max_epochs: PositiveFloat | None = None
    final_ratio: UnitFraction = 0.0
    milestones: list[OpenUnitFraction] = Field(default_factory=list)
    gamma: PositiveFloat = 0.1
    length_epochs: PositiveFloat | None = None
    unit: Literal["steps", "micro_steps", "compute"] = "steps"

    @field_validator("shape")
    @classmethod
    def _known_shape(cls, shape: str) -> str:
        problem = shapes.shape_problem(shape, allow_auto=True)
        if problem is None:
            return shape
        names = (*shapes.NAMED_SHAPES, shapes.AUTO)
        hint = "" if shapes.lin_threshold(shape) is not None else did_you_mean(shape, names)
        raise ValueError(f"{problem}, got {show_value(shape)}{hint}")

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleConfig:
        at_most_one(self, ("warmup_steps", "warmup_epochs", "warmup_fraction"))
        if self.hold_steps and self.hold_epochs is not None:
            raise ValueError("give 'hold_steps' or 'hold_epochs', not both")
        if self.milestones != sorted(set(self.milestones)):
            raise ValueError(f"'milestones' must increase, got {show_value(self.milestones)}")
        if self.shape == "step" and not self.milestones:
            raise ValueError("shape 'step' needs 'milestones': fractions of training where the LR is scaled by 'gamma'")
        return self
