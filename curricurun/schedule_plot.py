"""The PNG of ``inspect-schedule``: one panel per scheduled quantity against steps, epochs on top.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend switch), from at most
about :data:`MAX_POINTS` steps plus every stage boundary, so that a 600k-micro-step VAR schedule plots in
about a second and the steps of a stage schedule still land exactly on its boundaries.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from curricurun.schedule_report import Schedule, StageRow, step_columns

MAX_POINTS = 5000

_LABELS = {
    "lr": "learning rate",
    "resolution": "resolution (px)",
    "scale_index": "largest scale index",
    "newest_scale_weight": "newest-scale weight",
    "bandwidth": "bandwidth B (px)",
    "aug_magnitude": "RandAugment m",
    "stage_ratios": "stage mix share",
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


def plot_schedule(schedule: Schedule, rows: list[StageRow], path: Path, max_points: int = MAX_POINTS) -> Path:
    """Write the schedule PNG to ``path`` and return it.

    Panels: the LR, each curriculum field the recipe sets (``stage_ratios`` as one line per stage's share of
    the batch), and the cost of each step relative to a full-size step with the run's mean (the relative
    compute) dashed. Stage boundaries are dotted vertical lines; the top axis shows epochs.
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
    axes[-1].axhline(schedule.plan.relative_compute(), color="tab:red", linestyle="--", linewidth=1,
                     label=f"mean {schedule.plan.relative_compute():.3f}")
    axes[-1].legend(loc="lower right", fontsize=8)
    axes[-1].set_xlabel("micro-step" if schedule.unit == "micro_steps" else "optimizer step")
    axes[-1].set_xlim(0, schedule.total_units)
    _label_stages(axes[0], rows, per)
    _epoch_axis(axes[0], schedule, x, columns["epoch"])
    figure.suptitle(
        f"{schedule.name}: {schedule.total_units:,} {schedule.unit.replace('_', '-')}, "
        f"compute {schedule.plan.relative_compute():.3f} × without curriculum",
        fontsize=12,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _draw(axis, key: str, x: np.ndarray, values: list, end: int) -> None:
    style = {}
    if key in _STAIRS:
        # A step's value holds until the next step; repeat the last one at the end so the last step shows.
        style = {"drawstyle": "steps-post"}
        x, values = np.append(x, end), [*values, values[-1]]
    if key == "stage_ratios":
        present = [v for v in values if v is not None]
        width = max(len(v) for v in present)
        for stage in range(width):
            share = [np.nan if v is None or stage >= len(v) else v[stage] / sum(v) for v in values]
            axis.plot(x, share, label=f"stage {stage}", **style)
        axis.legend(loc="upper right", fontsize=8, ncols=width)
        return
    y = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    axis.plot(x, y, color="tab:blue", **style)
    if key == "scale_index":
        axis.yaxis.get_major_locator().set_params(integer=True)


def _label_stages(axis, rows: list[StageRow], per: int) -> None:
    """Number the stages along the top panel (only when there are few enough to read)."""
    if len(rows) < 2 or len(rows) > 30:
        return
    transform = axis.get_xaxis_transform()
    for number, row in enumerate(rows, start=1):
        axis.text(row.start_step * per, 0.97, f" {number}", transform=transform, fontsize=7, color="0.35",
                  va="top", ha="left")


def _epoch_axis(axis, schedule: Schedule, x: np.ndarray, epochs: list[float]) -> None:
    """A secondary x axis in epochs, mapped by interpolating the plan's (step, epoch) pairs both ways."""
    xs = np.append(x, schedule.total_units)
    es = np.append(np.asarray(epochs, dtype=np.float64), schedule.plan.epoch_at(schedule.plan.total_steps))

    def to_epoch(step):
        return np.interp(step, xs, es)

    def to_step(epoch):
        return np.interp(epoch, es, xs)

    top = axis.secondary_xaxis("top", functions=(to_epoch, to_step))
    top.set_xlabel("epoch")
