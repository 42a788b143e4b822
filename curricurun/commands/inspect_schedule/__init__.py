"""``curricurun inspect-schedule``: the schedule of a recipe before training (terminal table, PNG, ``--json``).

The data model is :mod:`.schedule`; :mod:`.terminal`, :mod:`.plot` and :mod:`.measure` are its views and its
timing; this module only wires them to the command's options. Nothing in the views imports this module, so the
package has no import circle.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from curricurun.commands.inspect_schedule.schedule import (
    build_schedule,
    schedule_json,
    stage_rows,
)
from curricurun.engine.assembly import BatchSizes, batch_sizes
from curricurun.errors import UserError


def resolve_dataset_size(recipe, sizes: BatchSizes, dataset_size: int | None, steps_per_epoch: int | None):
    """The training-set size from ``--dataset-size``, ``--steps-per-epoch`` × global batch, or the data itself.

    Returns:
        ``(size, data)``; ``data`` is the loaded split, or None when a flag gave the size.
    """
    if dataset_size is not None and steps_per_epoch is not None:
        raise UserError("give --dataset-size or --steps-per-epoch, not both")
    if dataset_size is not None:
        if dataset_size < 1:
            raise UserError(f"--dataset-size: expected a positive number of samples, got {dataset_size}")
        return dataset_size, None
    if steps_per_epoch is not None:
        if steps_per_epoch < 1:
            raise UserError(f"--steps-per-epoch: expected a positive number, got {steps_per_epoch}")
        return steps_per_epoch * sizes.global_batch, None
    from curricurun.data.sources import load_recipe_split

    data = recipe.data
    split = load_recipe_split(data, data.train_split, data.max_train_samples)
    return len(split), split


def run_inspect_schedule(
    recipe,
    *,
    recipe_path: Path | None = None,
    dataset_size: int | None = None,
    steps_per_epoch: int | None = None,
    world_size: int = 1,
    out_png: Path | None = None,
    as_json: bool = False,
    every: int = 1,
    measure: bool = False,
    console: Console | None = None,
) -> None:
    """Report a recipe's schedule: terminal table + PNG, or ``--json`` (PNG then only with an explicit ``--out``).

    Args:
        recipe: a validated recipe (:func:`curricurun.recipe.load_recipe`).
        recipe_path: its file; names the PNG when the recipe has no ``name``.
        dataset_size: training samples; skips loading the data.
        steps_per_epoch: alternative to ``dataset_size`` (size = steps × global batch).
        world_size: simulated number of processes.
        out_png: PNG path; default ``schedule-<recipe name>.png`` in the current directory.
        as_json: print one JSON object instead of the terminal view.
        every: with ``as_json``, one per-step entry every ``every`` reported steps.
        measure: time real forward+backward steps at each distinct stage shape.
        console: where to print (the CLI's console).
    """
    if world_size < 1:
        raise UserError(f"--world-size: expected at least 1 process, got {world_size}")
    if every < 1:
        raise UserError(f"--every: expected a positive number of steps, got {every}")
    console = console or Console(highlight=False, soft_wrap=True)
    name = recipe.name or (Path(recipe_path).stem if recipe_path else "recipe")
    sizes = batch_sizes(recipe, world_size)
    size, data = resolve_dataset_size(recipe, sizes, dataset_size, steps_per_epoch)
    schedule = build_schedule(recipe, size, world_size, name)
    rows = stage_rows(schedule)
    timings = None
    if measure:
        from curricurun.commands.inspect_schedule.measure import measure_stages

        timings = measure_stages(recipe, schedule, data)
    if out_png is not None or not as_json:
        from curricurun.commands.inspect_schedule.plot import plot_schedule

        png = plot_schedule(schedule, rows, Path(out_png) if out_png else Path(f"schedule-{_file_safe(name)}.png"))
    if as_json:
        measurements = None if timings is None else [timing.as_dict() for timing in timings]
        # Written to the console's file as is: rich would wrap the line or read "[...]" as markup.
        console.file.write(json.dumps(schedule_json(schedule, rows, every, measurements)) + "\n")
        return
    from curricurun.commands.inspect_schedule.terminal import print_report
    from curricurun.data import pipelines

    print_report(schedule, rows, console)
    console.print(pipelines.describe(recipe.data), markup=False)  # the per-sample image pipeline, one line
    if timings is not None:
        from curricurun.commands.inspect_schedule.measure import print_timings

        print_timings(timings, console)
    console.print(f"plot: {png}", markup=False)


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
