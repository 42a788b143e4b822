"""The terminal view of ``inspect-schedule``: the stage table, the summary line and the LR rule (rich).

A stage row groups the steps that train the same stage (:func:`.schedule.stage_rows`); a
field that ramps inside a row is shown as ``first→last``.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from curricurun.commands.inspect_schedule.schedule import (
    MAX_STAGE_ROWS,
    Ramp,
    Schedule,
    StageRow,
    batch_composition,
    compute_phrase,
)

HEADERS = {
    "resolution": "res",
    "scale_index": "scale",
    "newest_scale_weight": "newest w",
    "bandwidth": "B",
    "aug_magnitude": "RA m",
    "stage_ratios": "mix",
    "batch_size": "batch",
}
"""Short column names of the terminal table (the JSON keeps the field names)."""


def _text(value: Any) -> str:
    if isinstance(value, Ramp):
        return f"{_text(value.first)}→{_text(value.last)}"
    if value is None:
        return "–"
    if isinstance(value, tuple):
        return ":".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_line(schedule: Schedule) -> str:
    """Total steps, the batch arithmetic and :func:`compute_phrase`."""
    plan, sizes, unit = schedule.plan, schedule.sizes, schedule.unit.replace("_", "-")
    return (
        f"{schedule.total_units:,} {unit} ({plan.steps_per_epoch * schedule.units_per_step:,} per epoch at the full"
        f" batch), global batch {sizes.global_batch} = per-device {sizes.per_device} × world {sizes.world_size}"
        f" × accumulation {sizes.accumulation}; {compute_phrase(schedule)}"
    )


def lr_lines(schedule: Schedule) -> list[str]:
    """The world-size LR rule with its numbers, and the LR schedule's shape in the reported unit."""
    lr = schedule.learning_rate
    shape = lr.schedule
    unit = "full-size steps of compute" if lr.compute_positions is not None else schedule.unit.replace("_", "-")
    warmup = ""
    if shape.warmup_iters:
        warmup = f"warm-up {shape.warmup_iters:,} {unit} from ratio {shape.warmup_start_ratio:g}, "
    return [
        f"learning rate: {lr.rule.describe()}",
        f"LR schedule: {shape.shape}, {warmup}final ratio {shape.final_ratio:g}, over {shape.total_steps:,} {unit}",
    ]


def print_report(schedule: Schedule, rows: list[StageRow], console: Console) -> None:
    """The terminal view: the stage table, the summary line and the LR lines."""
    plan, per = schedule.plan, schedule.units_per_step
    unit = "micro-steps" if schedule.unit == "micro_steps" else "steps"
    table = Table(title=f"{schedule.name}: stages", title_justify="left")
    for header in ("#", unit, "epochs", *(HEADERS[field] for field in schedule.fields), "cost", "share"):
        table.add_column(header, justify="right", no_wrap=True)
    indices: list[int | None] = list(range(len(rows)))
    if len(rows) > 2 * MAX_STAGE_ROWS:
        indices = [*range(MAX_STAGE_ROWS), None, *range(len(rows) - MAX_STAGE_ROWS, len(rows))]
    for index in indices:
        if index is None:
            table.add_row("…", f"{len(rows) - 2 * MAX_STAGE_ROWS} more stages", *[""] * (len(schedule.fields) + 3))
            continue
        row = rows[index]
        table.add_row(
            str(index + 1),
            f"{row.start_step * per:,}–{row.end_step * per:,}",
            f"{plan.epoch_at(row.start_step):.2f}–{plan.epoch_at(row.end_step):.2f}",
            *[_text(row.values[field]) for field in schedule.fields],
            f"{row.sample_cost:.3f}",
            f"{100 * row.compute_share:.1f}%",
        )
    print_unsqueezed(table, console)
    console.print(summary_line(schedule), markup=False)
    if schedule.unit == "micro_steps":
        console.print(
            "steps count micro-iterations (schedule.unit micro_steps, as VAR does): "
            f"{schedule.sizes.accumulation} per optimizer step (the gradient accumulation)",
            markup=False,
        )
    for line in lr_lines(schedule):
        console.print(line, markup=False)
    mixes = {tuple(r.values["stage_ratios"]) for r in rows if isinstance(r.values.get("stage_ratios"), tuple)}
    for ratios in sorted(mixes):
        composition = batch_composition(ratios, schedule.sizes.per_device)
        counts = " + ".join(str(n) for n in composition["per_device_samples"])
        pattern = ",".join(str(c) for c in composition["column_pattern"])
        console.print(
            f"stage mix {':'.join(map(str, ratios))}: per-device batch {schedule.sizes.per_device} = {counts}"
            f" samples for stages 0..{len(ratios) - 1} (columns {pattern} repeated)",
            markup=False,
        )


def print_unsqueezed(table: Table, console: Console) -> None:
    """Print a table whole when the output is not a terminal: a pipe's 80 columns would cut "51,375–130,772"."""
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if console.is_terminal or natural <= console.width:
        console.print(table)
    else:
        Console(file=console.file, width=natural, highlight=False).print(table)
