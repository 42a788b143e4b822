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
    from curricurun.data.sample_pipeline import open_sample_pipeline

    data = recipe.data
    split = open_sample_pipeline(recipe).load_split(data.train_split, data.max_train_samples)
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
    output_dir: Path | None = None,
    repeats: int = 5,
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
        measure: time the model step and the loader at each distinct stage shape: the calibrated forecast
            (:mod:`.forecast`), stored as ``forecast.json`` in the run directory.
        output_dir: that run directory (default: the recipe's ``training.output_dir``, as ``train``'s).
        repeats: timed steps per shape and part (after the warm-up).
        console: where to print (the CLI's console).
    """
    if world_size < 1:
        raise UserError(f"--world-size: expected at least 1 process, got {world_size}")
    if every < 1:
        raise UserError(f"--every: expected a positive number of steps, got {every}")
    if repeats < 1:
        raise UserError(f"--repeats: expected at least 1 timed step per shape, got {repeats}")
    console = console or Console(highlight=False, soft_wrap=True)
    name = recipe.name or (Path(recipe_path).stem if recipe_path else "recipe")
    sizes = batch_sizes(recipe, world_size)
    if measure:
        from curricurun.commands.inspect_schedule.measure import load_training_split

        setup, split = load_training_split(recipe)  # the loader is timed on the recipe's own data
        given = dataset_size is not None or steps_per_epoch is not None
        size = resolve_dataset_size(recipe, sizes, dataset_size, steps_per_epoch)[0] if given else len(split)
    else:
        size = resolve_dataset_size(recipe, sizes, dataset_size, steps_per_epoch)[0]
    schedule = build_schedule(recipe, size, world_size, name)
    rows = stage_rows(schedule)
    forecast = notes = stored = None
    if measure:
        from curricurun.commands.inspect_schedule.forecast import measure_forecast
        from curricurun.engine.assembly import build_plan
        from curricurun.engine.step_timing import write_forecast

        reference_steps = build_plan(recipe, size, world_size, None).total_steps
        progress = None if as_json else (lambda text: console.print(text, markup=False, style="dim"))
        forecast, notes = measure_forecast(recipe, schedule, reference_steps, setup, split, repeats, progress)
        run_dir = Path(output_dir or recipe.training.output_dir or f"runs/{name}")
        stored = write_forecast(run_dir, recipe.resolved, {**forecast.as_dict(), "notes": notes})
    if out_png is not None or not as_json:
        from curricurun.commands.inspect_schedule.plot import plot_schedule

        measured = None
        if forecast is not None:
            measured = {_shape(s): forecast.measured_cost(s) for s in [*forecast.stages, forecast.reference]}
        png = plot_schedule(
            schedule,
            rows,
            Path(out_png) if out_png else Path(f"schedule-{_file_safe(name)}.png"),
            measured_cost=measured,
        )
    if as_json:
        payload = schedule_json(schedule, rows, every)
        if forecast is not None:
            from curricurun.commands.inspect_schedule.forecast import forecast_json

            payload["forecast"] = {**forecast_json(forecast, notes), "stored": str(stored)}
        # Written to the console's file as is: rich would wrap the line or read "[...]" as markup.
        console.file.write(json.dumps(payload) + "\n")
        return
    from curricurun.commands.inspect_schedule.terminal import print_report
    from curricurun.data import pipelines

    print_report(schedule, rows, console)
    console.print(pipelines.describe(recipe.data), markup=False)  # the per-sample image pipeline, one line
    if forecast is not None:
        from curricurun.commands.inspect_schedule.forecast import print_forecast

        print_forecast(forecast, notes, console, stored)
    console.print(f"plot: {png}", markup=False)


def _shape(stage) -> str:
    from curricurun.engine.step_timing import shape_id

    return shape_id(stage.measurement.key)


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
