"""The data model of ``curricurun inspect-schedule``: the whole schedule of a recipe before training.

The report is read from the same :class:`~curricurun.plan.TrainingPlan` and LR plan that ``train`` builds
(:mod:`curricurun.engine.assembly`), so what the user inspects is exactly what trains. This module holds the
schedule, its stage rows and the ``--json`` object; the views are :mod:`.terminal` (stage table, compute
summary, LR rule) and :mod:`.plot` (PNG); ``--measure`` adds measured step times (:mod:`.measure`); the command
itself, which wires them together, is this package's ``__init__``.

Step unit: recipes whose schedule counts micro-iterations (``schedule.unit: micro_steps``, as VAR does:
``train.py:270-301``, "g_it") are reported in micro-steps. Then ``total_steps``, ``steps_per_epoch``, stage
boundaries and the per-step entries count micro-steps (optimizer step × accumulation + m), and each entry's
``lr`` is the LR of the optimizer step it belongs to, i.e. the schedule at that step's last micro-step,
which is the LR the optimizer applies (VAR also sets it every micro-step; only the last one is stepped with).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from curricurun.curriculum.base import StageState
from curricurun.engine.assembly import (
    BatchSizes,
    LearningRatePlan,
    batch_sizes,
    build_curriculum,
    build_learning_rate,
    build_plan,
)
from curricurun.plan import TrainingPlan

STAGE_FIELDS = (
    "resolution",
    "scale_index",
    "newest_scale_weight",
    "bandwidth",
    "aug_magnitude",
    "stage_ratios",
    "batch_size",
)
"""The curriculum quantities reported, in this order, when some step sets them."""

ALWAYS_RAMPED = ("newest_scale_weight", "scale_loss_weights")
"""Fields that may change every step inside one stage (VAR's ``prog_wp`` ramp, ``trainer.py:92-99``): a stage
row groups steps by the other fields and shows these as a first → last range."""

RAMPED_WHEN_MANY = ("aug_magnitude", "resolution", "bandwidth", "batch_size")
"""Fields also shown as ranges, one more at a time, while the table would still exceed ``MAX_STAGE_ROWS``
(a continuous ramp, e.g. ``randaugment_ramp`` with ``schedule: linear``, changes every step)."""

MAX_STAGE_ROWS = 24


class Ramp(NamedTuple):
    """A field that changes inside one stage row: its value at the row's first and last step."""

    first: Any
    last: Any


@dataclass(frozen=True)
class Schedule:
    """A recipe's plan and LR plan at one dataset size and world size, with the per-sample cost of each state.

    Attributes:
        name: the recipe's name (the PNG title and default file name).
        plan: the per-step training plan.
        learning_rate: the LR rule and schedules.
        sizes: per-device batch, accumulation and world size.
        unit: ``"steps"`` or ``"micro_steps"`` (the recipe's ``schedule.unit``).
        fields: the :data:`STAGE_FIELDS` set by the curriculum at some step.
        sample_cost: ``id(state)`` → cost of one sample at that state relative to a full-size sample
            (the curriculum's ``sample_cost``, the same cost the plan integrates).
    """

    name: str
    plan: TrainingPlan
    learning_rate: LearningRatePlan
    sizes: BatchSizes
    unit: str
    fields: tuple[str, ...]
    sample_cost: dict[int, float]

    @property
    def units_per_step(self) -> int:
        """Reported steps per optimizer step: the accumulation for micro-step recipes, else 1."""
        return self.sizes.accumulation if self.unit == "micro_steps" else 1

    @property
    def total_units(self) -> int:
        return self.plan.total_steps * self.units_per_step

    def step_cost(self, step: int) -> float:
        """Cost of optimizer step ``step`` relative to one full-size step (per-sample cost × batch / full batch)."""
        plan = self.plan
        return self.sample_cost[id(plan.states[step])] * float(plan.global_batches[step]) / self.sizes.global_batch


def build_schedule(recipe, dataset_size: int, world_size: int, name: str) -> Schedule:
    """Build the plan and LR plan exactly as ``train`` does (:mod:`curricurun.engine.assembly`)."""
    sizes = batch_sizes(recipe, world_size)
    curriculum = build_curriculum(recipe)
    plan = build_plan(recipe, dataset_size, world_size, curriculum)
    learning_rate = build_learning_rate(recipe, plan, sizes, curriculum)
    # The plan interns its states, so distinct objects are few even over 600k steps.
    distinct = {id(state): state for state in plan.states}
    sample_cost = {
        key: 1.0 if curriculum is None else float(curriculum.sample_cost(state, recipe.data.image_size))
        for key, state in distinct.items()
    }
    fields = tuple(f for f in STAGE_FIELDS if any(getattr(s, f) is not None for s in distinct.values()))
    # Steps are counted in optimizer steps or micro-steps; a compute-indexed LR (schedule.unit compute) still has
    # optimizer steps, only its LR positions are compute (lr_lines says so).
    unit = "micro_steps" if recipe.schedule.unit == "micro_steps" else "steps"
    return Schedule(name, plan, learning_rate, sizes, unit, fields, sample_cost)


@dataclass(frozen=True)
class StageRow:
    """Consecutive optimizer steps ``[start_step, end_step)`` that train the same stage.

    Attributes:
        values: each reported field's value, or a :class:`Ramp` when it changes inside the row.
        sample_cost: mean cost of one sample in this row relative to a full-size sample.
        compute_share: this row's share of the whole run's compute.
    """

    start_step: int
    end_step: int
    values: dict[str, Any]
    sample_cost: float
    compute_share: float


def stage_rows(schedule: Schedule) -> list[StageRow]:
    """Group the plan's runs of equal states into stage rows, ramping fields shown as ranges.

    Runs are grouped by every field but :data:`ALWAYS_RAMPED`, so VAR's per-step ``prog_wp`` ramp gives one
    row per scale index; while there are more than :data:`MAX_STAGE_ROWS` rows, the next field of
    :data:`RAMPED_WHEN_MANY` is ranged too.
    """
    runs = schedule.plan.stages()
    ramped: tuple[str, ...] = ALWAYS_RAMPED
    groups = _group_runs(runs, ramped)
    for field in RAMPED_WHEN_MANY:
        if len(groups) <= MAX_STAGE_ROWS:
            break
        ramped = (*ramped, field)
        groups = _group_runs(runs, ramped)
    return [_row(schedule, start, end, states) for start, end, states in groups]


def _group_runs(runs, ramped: tuple[str, ...]) -> list[tuple[int, int, list[StageState]]]:
    blank = dict.fromkeys(ramped)
    keys: dict[int, StageState] = {}
    groups: list[tuple[int, int, list[StageState]]] = []
    previous = None
    for start, end, state in runs:
        key = keys.get(id(state))
        if key is None:
            key = keys[id(state)] = replace(state, **blank)
        if groups and key == previous:
            first, _, states = groups[-1]
            states.append(state)
            groups[-1] = (first, end, states)
        else:
            groups.append((start, end, [state]))
        previous = key
    return groups


def _row(schedule: Schedule, start: int, end: int, states: list[StageState]) -> StageRow:
    values: dict[str, Any] = {}
    for field in schedule.fields:
        seen = [getattr(state, field) for state in states]
        values[field] = seen[0] if all(value == seen[0] for value in seen) else Ramp(seen[0], seen[-1])
    plan = schedule.plan
    spent = _compute_before(plan, end) - _compute_before(plan, start)
    full_steps = float(plan.global_batches[start:end].sum()) / schedule.sizes.global_batch
    return StageRow(start, end, values, spent / full_steps, spent / (plan.total_compute or 1.0))


def _compute_before(plan: TrainingPlan, step: int) -> float:
    return plan.total_compute if step >= plan.total_steps else float(plan.compute_before[step])


def step_columns(schedule: Schedule, units: np.ndarray) -> dict[str, list]:
    """Per-step values at the given reported steps (micro-steps for micro-step recipes).

    Epoch and compute fraction advance linearly through the micro-steps of one optimizer step: each
    micro-step takes an equal share of its samples and compute.
    """
    plan, per = schedule.plan, schedule.units_per_step
    steps, micro = np.divmod(np.asarray(units, dtype=np.int64), per)
    batch = plan.global_batches[steps].astype(np.float64)
    epoch = plan.epoch_index[steps] + (plan.epoch_offset[steps] + micro * batch / per) / plan.config.dataset_size
    distinct = set(steps.tolist())
    needed = distinct | {s + 1 for s in distinct}
    fraction_at = {s: plan.compute_fraction_at(s) for s in needed}
    before = np.asarray([fraction_at[s] for s in steps.tolist()], dtype=np.float64)
    after = np.asarray([fraction_at[s + 1] for s in steps.tolist()], dtype=np.float64)
    lr_at = {s: schedule.learning_rate.lr_at(s) for s in distinct}
    step_list = steps.tolist()
    columns: dict[str, list] = {
        "step": np.asarray(units, dtype=np.int64).tolist(),
        "epoch": epoch.tolist(),
        "compute_fraction": (before + (after - before) * micro / per).tolist(),
        "lr": [lr_at[s] for s in step_list],
    }
    states = [plan.states[s] for s in step_list]
    for field in schedule.fields:
        columns[field] = [_plain(getattr(state, field)) for state in states]
    return columns


def schedule_json(schedule: Schedule, rows: list[StageRow], every: int = 1) -> dict[str, Any]:
    """The ``--json`` object: sizes, LR rule, relative compute, stage rows and one entry every ``every`` steps."""
    plan, per, rule = schedule.plan, schedule.units_per_step, schedule.learning_rate.rule
    columns = step_columns(schedule, np.arange(0, schedule.total_units, every))
    keys = list(columns)
    steps = [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    payload: dict[str, Any] = {
        "recipe": schedule.name,
        "step_unit": schedule.unit,
        "total_steps": schedule.total_units,
        "steps_per_epoch": plan.steps_per_epoch * per,
        "optimizer_steps": plan.total_steps,
        "accumulation": schedule.sizes.accumulation,
        "world_size": schedule.sizes.world_size,
        "global_batch": schedule.sizes.global_batch,
        "per_device_batch": schedule.sizes.per_device,
        "dataset_size": plan.config.dataset_size,
        "lr": {
            "rule": rule.rule,
            "base_lr": rule.base_lr,
            "reference_batch": rule.reference_batch,
            "effective_lr": rule.effective_lr,
            "description": rule.describe(),
        },
        "relative_compute": plan.relative_compute(),
        "relative_compute_basis": "pixel_ratio",  # the curriculum's pixel (token) cost; --measure adds "forecast"
        "stages": [_row_json(schedule, row) for row in rows],
        "steps": steps,
    }
    return payload


def _row_json(schedule: Schedule, row: StageRow) -> dict[str, Any]:
    plan, per = schedule.plan, schedule.units_per_step
    out: dict[str, Any] = {
        "start_step": row.start_step * per,
        "end_step": row.end_step * per,
        "start_epoch": plan.epoch_at(row.start_step),
        "end_epoch": plan.epoch_at(row.end_step),
    }
    for field, value in row.values.items():
        ramp = isinstance(value, Ramp)
        out[field] = {"from": _plain(value.first), "to": _plain(value.last)} if ramp else _plain(value)
    ratios = row.values.get("stage_ratios")
    if ratios is not None and not isinstance(ratios, Ramp):
        out["batch_composition"] = batch_composition(ratios, schedule.sizes.per_device)
    out["relative_cost"] = row.sample_cost
    out["compute_share"] = row.compute_share
    return out


def batch_composition(ratios, per_device: int) -> dict[str, Any]:
    """Samples per stage in one per-device batch and the column pattern that assigns them (Pyramid-Flow L283-302)."""
    from curricurun.curriculum.stage_mixture import stage_columns

    columns = stage_columns(tuple(ratios), per_device)
    return {
        "per_device_samples": [columns.count(stage) for stage in range(len(ratios))],
        "column_pattern": columns[: sum(ratios)],
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def compute_phrase(schedule: Schedule) -> str:
    """What the curriculum saves: the compute against the recipe without it, or, in compute-budget mode (where
    every run spends its budget), how many epochs of data that budget buys."""
    plan = schedule.plan
    budget = plan.config.budget_epochs
    if budget is not None:
        return (
            f"compute-budget mode: {plan.epoch_at(plan.total_steps):.1f} epochs of data for the compute of"
            f" {budget:g} full-size epochs"
        )
    relative = plan.relative_compute()
    if plan.curriculum is None:
        effect = "no curriculum"
    elif abs(relative - 1) < 5e-4:
        effect = "no saving"
    elif relative < 1:
        effect = f"saves {100 * (1 - relative):.1f}%"
    else:
        effect = f"costs {100 * (relative - 1):.1f}% more"
    return f"pixel-ratio forecast: compute {relative:.3f} × the same recipe without curriculum ({effect})"
