"""The PNG of ``inspect-schedule``: one panel per scheduled quantity against steps, epochs on top.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend switch), from at most
about :data:`MAX_POINTS` steps plus every stage boundary, so that a 600k-micro-step VAR schedule plots in
about a second and the steps of a stage schedule still land exactly on its boundaries.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from curricurun.commands.inspect_schedule.schedule import Schedule, StageRow, compute_phrase, step_columns

MAX_POINTS = 5000

_LABELS = {
    "lr": "learning rate",
    "resolution": "resolution (px)",
    "scale_index": "largest scale index",
    "newest_scale_weight": "newest-scale weight",
    "bandwidth": "bandwidth B (px)",
    "aug_magnitude": "RandAugment m",
    "stage_ratios": "share of the batch\nper stage",
    "batch_size": "global batch",
    "cost": "cost per step\n(× full size)",
}
_STAIRS = {"resolution", "scale_index", "bandwidth", "aug_magnitude", "stage_ratios", "batch_size", "cost"}


def plotted_steps(schedule: Schedule, rows: list[StageRow], max_points: int = MAX_POINTS) -> np.ndarray:
    """Reported steps to draw: an even subsample of about ``max_points``, plus each stage's first and last step."""
    total, per = schedule.total_units, schedule.units_per_step
    stride = max(1, math.ceil(total / max_points))
    edges = [row.start_step * per for row in rows] + [row.end_step * per - 1 for row in rows]
    return np.unique(np.concatenate([np.arange(0, total, stride), np.asarray(edges, dtype=np.int64), [total - 1]]))


def plot_schedule(
    schedule: Schedule,
    rows: list[StageRow],
    path: Path,
    max_points: int = MAX_POINTS,
    measured_cost: dict[str, float] | None = None,
) -> Path:
    """Write the schedule PNG to ``path`` and return it.

    Panels: the LR, each curriculum field the recipe sets (``stage_ratios`` as each stage's share of the batch,
    stacked), and the cost of each step relative to a full-size step, its mean dashed (the relative compute,
    except in compute-budget mode). Stage boundaries are dotted vertical lines; the top axis shows epochs.
    ``measured_cost`` (``--measure``): shape id → measured step time over the full-size step's, drawn in the
    cost panel beside the pixel-ratio cost.
    """
    from matplotlib.figure import Figure

    units = plotted_steps(schedule, rows, max_points)
    columns = step_columns(schedule, units)
    per = schedule.units_per_step
    columns["cost"] = [schedule.step_cost(unit // per) for unit in units.tolist()]
    panels = ["lr", *schedule.fields, "cost"]

    figure = Figure(figsize=(11, 1.9 * len(panels) + 1.3), dpi=110, layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    x = np.asarray(columns["step"], dtype=np.float64)
    boundaries = [row.start_step * per for row in rows[1:]]
    for axis, key in zip(axes, panels, strict=True):
        _draw(axis, key, x, columns[key], schedule.total_units)
        for boundary in boundaries:
            axis.axvline(boundary, color="0.55", linestyle=":", linewidth=0.9)
        axis.set_ylabel(_LABELS[key], fontsize=9)
        axis.grid(True, alpha=0.25)
    plan = schedule.plan
    mean_cost = plan.total_compute / (float(plan.global_batches.sum()) / schedule.sizes.global_batch)
    axes[-1].axhline(mean_cost, color="tab:red", linestyle="--", linewidth=1, label=f"pixel-ratio mean {mean_cost:.3f}")
    if measured_cost:
        _draw_measured(axes[-1], schedule, units, x, measured_cost)
    axes[-1].legend(loc="lower right", fontsize=8)
    axes[-1].set_xlabel("micro-step" if schedule.unit == "micro_steps" else "optimizer step")
    axes[-1].set_xlim(0, schedule.total_units)
    _label_stages(axes[0], rows, per)
    _epoch_axis(axes[0], schedule, x, columns["epoch"])
    unit = schedule.unit.replace("_", "-")
    figure.suptitle(f"{schedule.name}: {schedule.total_units:,} {unit}; {compute_phrase(schedule)}", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _draw_measured(axis, schedule: Schedule, units: np.ndarray, x: np.ndarray, measured: dict[str, float]) -> None:
    """The measured step cost (× the full-size step) of each plotted step, as a stair in the cost panel."""
    from curricurun.engine.step_timing import shape_id, shape_key

    per, states = schedule.units_per_step, schedule.plan.states
    values = [measured.get(shape_id(shape_key(states[unit // per])), np.nan) for unit in units.tolist()]
    xs = np.append(x, schedule.total_units)
    axis.plot(xs, [*values, values[-1]], color="tab:orange", drawstyle="steps-post", label="measured (--measure)")


def _draw(axis, key: str, x: np.ndarray, values: list, end: int) -> None:
    style = {}
    if key in _STAIRS:
        # A step's value holds until the next step; repeat the last one at the end so the last step shows.
        style = {"drawstyle": "steps-post"}
        x, values = np.append(x, end), [*values, values[-1]]
    if key == "stage_ratios":
        # Stacked shares of the batch per stage (lowest stage at the bottom): equal ratios stay visible.
        width = max(len(v) for v in values if v is not None)
        shares = np.asarray(
            [[np.nan] * width if v is None else [r / sum(v) for r in v] + [0.0] * (width - len(v)) for v in values],
            dtype=np.float64,
        )
        lower = np.zeros(len(values))
        for stage in range(width):
            upper = lower + shares[:, stage]
            axis.fill_between(x, lower, upper, step="post", alpha=0.7, label=f"stage {stage}")
            lower = upper
        axis.set_ylim(0, 1)
        axis.legend(loc="upper right", fontsize=8, ncols=width)
        return
    y = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    axis.plot(x, y, color="tab:blue", label="pixel ratio" if key == "cost" else None, **style)
    if key == "scale_index":
        axis.yaxis.get_major_locator().set_params(integer=True)


def _label_stages(axis, rows: list[StageRow], per: int) -> None:
    """Number the stages along the top panel (only when there are few enough to read)."""
    if len(rows) < 2 or len(rows) > 30:
        return
    transform = axis.get_xaxis_transform()
    for number, row in enumerate(rows, start=1):
        axis.text(
            row.start_step * per, 0.97, f" {number}", transform=transform, fontsize=7, color="0.35", va="top", ha="left"
        )


def _epoch_axis(axis, schedule: Schedule, x: np.ndarray, epochs: list[float]) -> None:
    """A secondary x axis in epochs, mapped by interpolating the plan's (step, epoch) pairs both ways."""
    xs = np.append(x, schedule.total_units)
    es = np.append(np.asarray(epochs, dtype=np.float64), schedule.plan.epoch_at(schedule.plan.total_steps))

    def to_epoch(step):
        return _interpolate(step, xs, es)

    def to_step(epoch):
        return _interpolate(epoch, es, xs)

    top = axis.secondary_xaxis("top", functions=(to_epoch, to_step))
    top.set_xlabel("epoch")


def _interpolate(value, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp`` extended linearly past both ends: clamping would place out-of-range ticks at the edges."""
    value = np.asarray(value, dtype=np.float64)
    low = fp[0] + (value - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    high = fp[-1] + (value - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return np.where(value < xp[0], low, np.where(value > xp[-1], high, np.interp(value, xp, fp)))
