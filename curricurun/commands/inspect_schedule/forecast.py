"""The calibrated forecast of ``inspect-schedule --measure``: which shapes to time, the run it predicts, its views.

Glue between the schedule (:mod:`.schedule`: which stage shapes the run has and for how many optimizer steps),
the timing (:mod:`.measure`) and the arithmetic (:mod:`.cost_model`): the terminal table, the ``--json``
``forecast`` object and ``forecast.json`` in the run directory, which ``train`` compares with what it measures
(:mod:`curricurun.engine.step_timing`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from curricurun.commands.inspect_schedule.cost_model import (
    RunForecast,
    StageForecast,
    StageMeasurement,
    duration,
    merged,
)
from curricurun.commands.inspect_schedule.schedule import Schedule
from curricurun.commands.inspect_schedule.terminal import print_unsqueezed
from curricurun.curriculum.base import StageState
from curricurun.engine.step_timing import SHAPE_FIELDS, shape_id, shape_key


def shape_steps(schedule: Schedule) -> list[tuple[StageState, int]]:
    """Each distinct shape of the run (first state of it, in training order) with its optimizer steps."""
    first: dict[str, StageState] = {}
    steps: Counter[str] = Counter()
    for start, end, state in schedule.plan.stages():
        name = shape_id(shape_key(state))
        first.setdefault(name, state)
        steps[name] += end - start
    return [(state, steps[name]) for name, state in first.items()]


def label(state: StageState, per_device: int) -> str:
    parts = [f"{name} {_text(getattr(state, name))}" for name in SHAPE_FIELDS if getattr(state, name) is not None]
    return ", ".join(parts or ["full size (no curriculum)"]) + f", batch {per_device}"


def _text(value: Any) -> str:
    return ":".join(map(str, value)) if isinstance(value, tuple) else str(value)


def is_plain_full_size(state: StageState, image_size: int) -> bool:
    """A curriculum state that trains exactly as the recipe without curriculum would (its timing is reused)."""
    values = state.as_dict()
    sides = all(values.get(name) in (None, image_size) for name in ("resolution", "bandwidth"))
    others = {k: v for k, v in values.items() if k not in ("resolution", "bandwidth") and v is not None}
    return sides and not others


def step_pixel_cost(schedule: Schedule, state: StageState) -> float:
    """The plan's cost of one optimizer step at ``state`` over a full-size step (per sample × batch share)."""
    batch = state.batch_size or schedule.sizes.global_batch
    return schedule.sample_cost.get(id(state), 1.0) * batch / schedule.sizes.global_batch


def excluded(recipe) -> list[str]:
    """What the forecast does not time, with the recipe's cadence (the engine's step times exclude it too)."""
    training = recipe.training
    out = ["start-up before the first step (loading the data, building the model)"]
    if recipe.data.eval_split:
        out.append(f"evaluation on '{recipe.data.eval_split}' ({_cadence(training.eval)} and at the end)")
    out.append(f"checkpointing ({_cadence(training.checkpoint)} and at the end)")
    return out


def _cadence(every) -> str:
    parts = []
    if every.every_steps:
        parts.append(f"every {every.every_steps} steps")
    if every.every_epochs:
        parts.append(f"every {every.every_epochs:g} epochs")
    return " and ".join(parts) or "never during the run"


ROUNDS = 2
"""Alternated timing rounds over the run's shapes (see :func:`timing_rounds`)."""


def timing_rounds(repeats: int) -> list[int]:
    """The timed repeats of each round: ``repeats`` split over up to :data:`ROUNDS` rounds, the first ones taking
    the remainder (5 → 3 + 2). Rounds alternate the shapes' order (forward, then backward), as the benches do, so a
    slow spell of a shared machine is spread over every shape instead of landing on one."""
    rounds = min(ROUNDS, repeats)
    return [repeats // rounds + (1 if index < repeats % rounds else 0) for index in range(rounds)]


def measure_forecast(
    recipe, schedule: Schedule, reference_steps: int, setup, split, repeats: int, progress=None
) -> tuple[RunForecast, list[str]]:
    """Time every distinct shape of the run and the full size; ``reference_steps``: steps without curriculum."""
    from curricurun.commands.inspect_schedule.measure import build_harness, measure_shape

    harness = build_harness(recipe, setup, split, schedule.sizes, schedule.plan)
    overlap = "parallel" if recipe.data.num_workers > 0 else "serial"
    has_curriculum = schedule.plan.curriculum is not None
    shapes = shape_steps(schedule)
    timed = [(s, label(s, _per_device(schedule, s)), step_pixel_cost(schedule, s)) for s, _ in shapes]
    full_size = [not has_curriculum or is_plain_full_size(state, recipe.data.image_size) for state, _ in shapes]
    if True in full_size:  # the run's own full-size shape is what the run without curriculum trains on
        reference = full_size.index(True)
    else:
        reference = len(timed)
        timed.append((StageState(), label(StageState(), schedule.sizes.per_device), 1.0))
    parts: list[list[StageMeasurement]] = [[] for _ in timed]
    for round_index, count in enumerate(timing_rounds(repeats)):
        order = range(len(timed)) if round_index % 2 == 0 else reversed(range(len(timed)))
        for index in order:
            state, text, pixel_cost = timed[index]
            if progress:
                without = " (full size without curriculum)" if index == len(shapes) else ""
                progress(f"timing {text}{without} (shape {index + 1}, round {round_index + 1})")
            seed = index + 100 * round_index
            parts[index].append(measure_shape(harness, state, text, pixel_cost, count, seed))
    measured = [merged(rounds) for rounds in parts]
    stages = [StageForecast(measured[index], steps, overlap) for index, (_, steps) in enumerate(shapes)]
    reference_stage = StageForecast(measured[reference], reference_steps, overlap)
    forecast = RunForecast(stages, reference_stage, has_curriculum, excluded(recipe))
    return forecast, harness.notes


def _per_device(schedule: Schedule, state: StageState) -> int:
    sizes = schedule.sizes
    if state.batch_size is None:
        return sizes.per_device
    return max(1, state.batch_size // (sizes.world_size * sizes.accumulation))


def print_forecast(forecast: RunForecast, notes: list[str], console: Console, stored: Path | None) -> None:
    """The per-shape table (ms/step ±, bound, model and loader parts, measured vs pixel cost), then the lines."""
    overlap = forecast.reference.overlap
    how = (
        "loader + model: data.num_workers 0 loads in the main process"
        if overlap == "serial"
        else "the slower of loader and model: workers load while the model steps"
    )
    table = Table(title=f"measured forecast (median of repeats, warm-up excluded; step = {how})", title_justify="left")
    for header in (
        "stage shape",
        "steps",
        "ms/step",
        "±",
        "bound",
        "model ms",
        "loader ms",
        "pixel cost",
        "measured cost",
    ):
        table.add_column(header, justify="left" if header == "stage shape" else "right", no_wrap=True)
    rows = [*forecast.stages]
    if forecast.has_curriculum:
        rows.append(forecast.reference)
    for stage in rows:
        parts = stage.measurement
        is_reference = stage is forecast.reference
        table.add_row(
            parts.label + (" (without curriculum)" if is_reference and forecast.has_curriculum else ""),
            f"{stage.steps:,}",
            f"{1000 * stage.seconds_per_step:.1f}",
            f"{1000 * stage.error:.1f}",
            stage.bound,
            f"{1000 * parts.model.median:.1f}",
            f"{1000 * parts.loader.median:.1f}",
            f"{parts.pixel_cost:.3f}",
            f"{forecast.measured_cost(stage):.3f}",
        )
    print_unsqueezed(table, console)
    with_s, without_s = forecast.with_curriculum_seconds, forecast.without_curriculum_seconds
    line = f"training loop forecast: {duration(with_s, forecast.with_curriculum_error)}"
    if forecast.has_curriculum:
        line += f" with the curriculum, {duration(without_s, forecast.without_curriculum_error)} without"
    console.print(line, markup=False)
    console.print(forecast.verdict(), markup=False)
    console.print("not timed (excluded): " + "; ".join(forecast.excluded), markup=False)
    for note in notes:
        console.print(f"note: {note}", markup=False)
    if stored is not None:
        console.print(
            f"forecast stored: {stored} (train with this run directory prints forecast vs actual)", markup=False
        )


def forecast_json(forecast: RunForecast, notes: list[str]) -> dict[str, Any]:
    return {**forecast.as_dict(), "notes": list(notes)}
