"""From a validated recipe to the pieces a run needs: batch sizes, curriculum, plan, LR rule and schedules.

Shared by ``train`` and ``inspect-schedule`` so that what the user inspects is exactly what trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curricurun.errors import UserError
from curricurun.lr import LrRule, LrSchedule, WarmupHold, WeightDecaySchedule, resolve_lr_rule
from curricurun.lr.shapes import resolve_auto
from curricurun.plan import PlanConfig, TrainingPlan


@dataclass(frozen=True)
class BatchSizes:
    """Per-device micro-batch, accumulation and the resulting global (optimizer-step) batch."""

    per_device: int
    accumulation: int
    world_size: int

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step over all ranks, the convention of timm (``batch_size × world_size ×
        grad_accum_steps``), ET++/ConvNeXt (``batch_size × update_freq × world_size``, ``main_buffer.py``
        L365-366) and VAR (``ac × per-GPU × world``, ``utils/arg_util.py:255-260``)."""
        return self.per_device * self.world_size * self.accumulation


def batch_sizes(recipe, world_size: int) -> BatchSizes:
    """global = per_device × world_size × accumulation; a global batch must divide evenly."""
    batch = recipe.batch
    if batch.per_device is not None:
        return BatchSizes(batch.per_device, batch.accumulation, world_size)
    per_micro = world_size * batch.accumulation
    if batch.global_batch % per_micro:
        raise UserError(
            f"batch.global: {batch.global_batch} is not divisible by world size {world_size}"
            f" × accumulation {batch.accumulation}"
        )
    return BatchSizes(batch.global_batch // per_micro, batch.accumulation, world_size)


def build_curriculum(recipe):
    """The composed curriculum of the recipe, or None when it has none."""
    if not recipe.curriculum:
        return None
    from curricurun.curriculum import registry

    # The recipe layer already validated each entry's params: build from those, not from the raw specs.
    members = [
        registry.get(spec.name)(params)
        for spec, params in zip(recipe.curriculum, recipe.curriculum_params, strict=True)
    ]
    return registry.ComposedCurriculum(members)


def build_plan(recipe, dataset_size: int, world_size: int, curriculum) -> TrainingPlan:
    sizes = batch_sizes(recipe, world_size)
    # A curriculum with batch-size constraints (Pyramid-Flow's stage columns) refuses a bad batch here, so
    # `validate` and `inspect-schedule` catch it before training does.
    if curriculum is not None:
        try:
            curriculum.check_batch_size(sizes.per_device)
        except UserError as error:
            raise UserError(f"batch.per_device: {error}") from None
    training, schedule = recipe.training, recipe.schedule
    config = PlanConfig(
        dataset_size=dataset_size,
        world_size=world_size,
        global_batch=sizes.global_batch,
        accumulation=sizes.accumulation,
        epochs=training.epochs,
        steps=training.steps,
        budget_epochs=training.budget_epochs,
        warmup_steps=schedule.warmup_steps or 0,
        warmup_epochs=schedule.warmup_epochs,
        warmup_fraction=schedule.warmup_fraction,
        full_resolution=recipe.data.image_size,
    )
    return TrainingPlan(config, curriculum)


@dataclass(frozen=True)
class LearningRatePlan:
    """The LR rule (world-size scaling) and the LR / WD schedules, evaluated per optimizer step."""

    rule: LrRule
    schedule: LrSchedule
    weight_decay: WeightDecaySchedule
    unit_per_step: int  # 1 when the schedule counts optimizer steps, accumulation when micro-steps (VAR)
    compute_positions: np.ndarray | None = None  # schedule.unit "compute": compute spent before each step

    def position(self, step: int) -> float:
        if self.compute_positions is not None:
            return float(self.compute_positions[step])
        # VAR sets the LR every micro-iteration; the optimizer steps on the last one of the window.
        return step * self.unit_per_step + self.unit_per_step - 1 if self.unit_per_step > 1 else step

    def lr_at(self, step: int) -> float:
        return self.rule.effective_lr * self.schedule.ratio_at(self.position(step))

    def weight_decay_at(self, step: int) -> float:
        return self.weight_decay.value_at(self.position(step))


def build_learning_rate(recipe, plan: TrainingPlan, sizes: BatchSizes, curriculum) -> LearningRatePlan:
    optim, schedule = recipe.optim, recipe.schedule
    rule = resolve_lr_rule(
        base_lr=optim.lr,
        rule=optim.lr_scaling.rule,
        global_batch=sizes.global_batch,
        per_device_batch=sizes.per_device,
        reference_batch=optim.lr_scaling.reference_batch,
        reference_world_size=optim.lr_scaling.reference_world_size,
    )
    shape = resolve_auto(schedule.shape, curriculum.preferred_lr_shape if curriculum is not None else None)
    if schedule.unit == "compute":
        return _compute_indexed_learning_rate(recipe, plan, rule, shape)
    unit = sizes.accumulation if schedule.unit == "micro_steps" else 1
    total = plan.total_steps
    if schedule.length_epochs is not None:
        total = max(total, round(schedule.length_epochs * plan.steps_per_epoch))
    try:
        lr_schedule = _lr_schedule(schedule, shape, total, plan, unit)
    except ValueError as error:  # e.g. a warm-up longer than a shortened run
        raise UserError(f"schedule: {error}") from None
    end = optim.weight_decay if optim.weight_decay_end is None else optim.weight_decay_end
    weight_decay = WeightDecaySchedule(optim.weight_decay, end, total * unit)
    return LearningRatePlan(rule, lr_schedule, weight_decay, unit)


def _lr_schedule(schedule, shape: str, total: int, plan: TrainingPlan, unit: int) -> LrSchedule:
    # The plan's warm-up (Progress.warmup_steps, over the plan's length) with the recipe's epoch cap.
    lengths = WarmupHold.from_schedule(schedule)
    warmup = lengths.warmup(plan.steps_per_epoch, plan.total_steps)
    return LrSchedule(
        shape=shape,
        total_steps=total * unit,
        warmup_steps=warmup * unit,
        warmup_start_ratio=schedule.warmup_start_ratio,
        final_ratio=schedule.final_ratio,
        milestones=tuple(schedule.milestones),
        gamma=schedule.gamma,
        hold_steps=lengths.hold(plan.steps_per_epoch) * unit,
    )


def _compute_indexed_learning_rate(recipe, plan: TrainingPlan, rule: LrRule, shape: str) -> LearningRatePlan:
    """LR and WD as functions of the compute spent (``schedule.unit: compute``), in full-size step equivalents.

    EfficientTrain++ rebuilds its cosine every stage over ``E·(224/B)²`` loader epochs and rescales the epoch
    counter by ``(B_prev/B_new)²`` at each restart, so its LR is a function of the compute fraction, not of the
    step (ET++ ``utils_buffer.py`` L533-542, ``engine_buffer.py`` L100-110). Here position = compute spent before
    the step; the length is
    the budget (``budget_epochs`` × steps per epoch, else the plan's whole compute); the warm-up is counted in
    compute too (ET++: 20 of 1088 stage-0 epochs = 1.8% of the budget; DeiT: 20%).
    """
    schedule, optim = recipe.schedule, recipe.optim
    budget = plan.config.budget_epochs
    total = budget * plan.steps_per_epoch if budget is not None else plan.total_compute
    if schedule.length_epochs is not None:
        total = max(total, schedule.length_epochs * plan.steps_per_epoch)
    # Warm-up, its epoch cap and the hold in compute-step epochs, by the same rule as the step unit's.
    lengths = WarmupHold.from_schedule(schedule)
    warmup = lengths.warmup(plan.steps_per_epoch, total, rounded=False)
    hold = lengths.hold(plan.steps_per_epoch)
    length = max(1, round(total))
    try:
        lr_schedule = LrSchedule(
            shape=shape,
            total_steps=length,
            warmup_steps=warmup,
            warmup_start_ratio=schedule.warmup_start_ratio,
            final_ratio=schedule.final_ratio,
            milestones=tuple(schedule.milestones),
            gamma=schedule.gamma,
            hold_steps=hold,
        )
    except ValueError as error:
        raise UserError(f"schedule: {error}") from None
    end = optim.weight_decay if optim.weight_decay_end is None else optim.weight_decay_end
    weight_decay = WeightDecaySchedule(optim.weight_decay, end, length)
    return LearningRatePlan(rule, lr_schedule, weight_decay, 1, plan.compute_before)
