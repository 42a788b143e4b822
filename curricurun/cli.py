"""The ``curricurun`` command line (Typer + rich).

User errors (:class:`~curricurun.errors.UserError`) print one line per problem on stderr and exit 2 with
no traceback; ``--debug`` shows the traceback. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curricurun import __version__
from curricurun.errors import Interrupted, UserError

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"

app = typer.Typer(
    name="curricurun",
    help="Train vision models with published curricula, exact on any number of processes.\n\n"
    "Example: curricurun train recipes/demo.yaml --set training.epochs=2",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_debug = False
# Recent typer releases vendor click as `typer._click`, so `click.ClickException` misses their usage errors;
# `typer.BadParameter`, exported by old and new typer alike, derives from whichever ClickException is in use.
_CLICK_EXCEPTION = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="override a recipe value: --set optim.lr=3e-4 (YAML-typed; repeatable)", show_default=False
    ),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"curricurun {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="show the version")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show Python tracebacks for user errors")] = False,
) -> None:
    """Train vision models with published curricula, exact on any number of processes.

    Example: curricurun train recipes/demo.yaml --set training.epochs=2
    """
    global _debug
    _debug = debug


def _load(recipe: Path, overrides: list[str] | None):
    from curricurun.recipe import load_recipe

    return load_recipe(recipe, overrides or [])


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    set_: SetOption = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="checkpoint dir, run dir, or 'latest' (the default when given alone)"),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="run directory (default: training.output_dir)")
    ] = None,
    stop_after: Annotated[
        int | None,
        typer.Option(
            "--stop-after", min=1, help="stop (with a checkpoint) after this optimizer step of the plan; resume later"
        ),
    ] = None,
    resume_changed: Annotated[
        bool,
        typer.Option(
            "--resume-changed",
            help="resume although the recipe changed in a way that breaks an exact continuation"
            " (world size, batch, data, curriculum, optimizer, LR); the changes are printed and stored",
        ),
    ] = False,
) -> None:
    """Train a recipe on CPU, one GPU or many (under `accelerate launch`).

    Example: curricurun train recipes/demo.yaml --set training.epochs=1 --output-dir runs/try
    """
    from curricurun.engine.trainer import train as run_training

    loaded = _load(recipe, set_)
    run_training(loaded, loaded.resolved, str(output_dir) if output_dir else None, resume, stop_after, resume_changed)


@app.command()
def validate(
    recipes: Annotated[list[Path], typer.Argument(help="one or more recipe YAML files")],
    set_: SetOption = None,
) -> None:
    """Check recipes without training: prints 'ok' per file, or every problem found.

    Example: curricurun validate recipes/*.yaml
    """
    failures = []
    for path in recipes:
        try:
            _load(path, set_)
            out.print(f"{path}: ok")
        except UserError as error:
            if _debug:  # the traceback of where the problem was found, not of this summary
                raise
            failures.append(str(error))
    if failures:
        raise UserError("\n".join(failures))


@app.command("recipes")
def list_recipes() -> None:
    """List the shipped recipes with a one-line description each.

    Example: curricurun recipes
    """
    import yaml

    table = Table("recipe", "description")
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        table.add_row(str(path.relative_to(RECIPES_DIR.parent)), str(data.get("description", "")))
    out.print(table)


@app.command("curricula")
def list_curricula() -> None:
    """List built-in and installed curricula with a one-line description each.

    Example: curricurun curricula
    """
    from curricurun.curriculum import registry

    table = Table("curriculum", "description", "source")
    for name, summary, source in registry.describe():
        table.add_row(name, summary, source)
    out.print(table)


@app.command("inspect-model")
def inspect_model(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    set_: SetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Count the model's parameters (built on the meta device: a 2B model costs nothing).

    Example: curricurun inspect-model recipes/demo.yaml --json
    """
    from curricurun.commands.inspect_model import print_summary, summarize_model

    print_summary(summarize_model(_load(recipe, set_)), out, as_json)


@app.command()
def sample(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file the checkpoint was trained with")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="checkpoint directory or run directory")],
    classes: Annotated[str, typer.Option("--classes", help="comma-separated class indices")] = "0,1,2,3",
    cfg: Annotated[float, typer.Option("--cfg", help="classifier-free guidance scale")] = 1.5,
    top_k: Annotated[int, typer.Option("--top-k", help="keep the k most likely tokens (0: all)")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", help="nucleus sampling mass (0: off)")] = 0.0,
    steps: Annotated[int | None, typer.Option("--steps", help="integration steps per stage (flow setups)")] = None,
    per_class: Annotated[int, typer.Option("--per-class", help="images per class (one grid row each)")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="sampling seed")] = 0,
    ema: Annotated[bool, typer.Option("--ema", help="sample from the EMA weights")] = False,
    out_png: Annotated[Path, typer.Option("--out", help="PNG grid to write")] = Path("samples.png"),
    set_: SetOption = None,
) -> None:
    """Generate class-conditional samples from a trained generative recipe (VAR, Pyramid-Flow) as a PNG grid.

    Example: curricurun sample recipes/var_tiny.yaml --checkpoint runs/var_tiny --classes 1,2,3 --cfg 1.5
    --top-k 900 --top-p 0.96 --seed 0 --out grid.png
    """
    from curricurun.commands.sample import parse_classes, run_sample, sampling_options

    options = sampling_options(cfg, top_k, top_p, steps, per_class)
    written = run_sample(_load(recipe, set_), checkpoint, parse_classes(classes), seed, options, out_png, ema)
    out.print(f"wrote {written}")


@app.command()
def evaluate(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file the checkpoint was trained with")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="checkpoint or run directory")] = None,
    samples: Annotated[Path | None, typer.Option("--samples", help="score this .npz (arr_0 uint8 NHWC)")] = None,
    num_samples: Annotated[int | None, typer.Option("--num-samples", help="images to generate")] = None,
    per_class: Annotated[int | None, typer.Option("--per-class", help="images per class to generate")] = None,
    metrics: Annotated[str, typer.Option("--metrics", help="comma-separated: fid, is, prec_recall, psnr")] = "fid",
    reference: Annotated[Path | None, typer.Option("--reference", help=".npz images or .safetensors stats")] = None,
    npz: Annotated[Path | None, typer.Option("--npz", help="samples file to write")] = None,
    feature_extractor: Annotated[str, typer.Option(help="inception, or a classification run directory")] = "inception",
    protocol: Annotated[str | None, typer.Option("--protocol", help="a reference's preset: var")] = None,
    cfg: Annotated[float, typer.Option("--cfg", help="classifier-free guidance scale")] = 1.5,
    top_k: Annotated[int, typer.Option("--top-k", help="keep the k most likely tokens (0: all)")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", help="nucleus sampling mass (0: off)")] = 0.0,
    steps: Annotated[int | None, typer.Option("--steps", help="integration steps per stage (flow setups)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="images per generated batch")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="sampling seed")] = 0,
    ema: Annotated[bool, typer.Option("--ema", help="sample from the EMA weights")] = False,
    set_: SetOption = None,
) -> None:
    """FID / IS of a generative run's samples (or of a given .npz), rFID / PSNR of a tokenizer run.

    Example: curricurun evaluate recipes/var_tiny.yaml --checkpoint runs/var_tiny --per-class 50 --metrics fid,is
    --feature-extractor runs/demo
    """
    from curricurun.commands.evaluate import EvaluateRequest, apply_protocol, format_results, run_evaluate
    from curricurun.commands.sample import sampling_options

    request = EvaluateRequest.from_flags(
        checkpoint, samples, num_samples, per_class, metrics, reference, npz, feature_extractor, seed, batch_size,
        ema, sampling_options(cfg, top_k, top_p, steps),
    )  # fmt: skip
    results = run_evaluate(_load(recipe, set_), apply_protocol(request, protocol), out.print)
    for line in format_results(results or {}):
        print(line)


@app.command("import-weights")
def import_weights(
    recipe: Annotated[Path, typer.Argument(help="recipe that builds the model the file holds (vqvae or var setup)")],
    source: Annotated[Path, typer.Argument(help="VAR's state dict (.pth, or .safetensors)")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory to create (a tokenizer or a weights dir)")],
    set_: SetOption = None,
) -> None:
    """Import VAR's released VQ-VAE or transformer weights (plain state dicts, read safely).

    Example: curricurun import-weights recipes/vqvae_var.yaml vae_ch160v4096z32.pth --out weights/var_tokenizer
    """
    from curricurun.commands.weights_transfer import import_weights as run_import

    out.print(f"wrote {run_import(_load(recipe, set_), source, out_dir)}")


@app.command("export-weights")
def export_weights(
    recipe: Annotated[Path, typer.Argument(help="recipe the weights were trained with (vqvae or var setup)")],
    checkpoint: Annotated[Path, typer.Argument(help="tokenizer directory, checkpoint or run directory")],
    out_file: Annotated[Path, typer.Option("--out", help=".pth file to write")],
    fmt: Annotated[str, typer.Option("--format", help="key layout: var (VAR's VQVAE / VAR classes)")] = "var",
    set_: SetOption = None,
) -> None:
    """Export a tokenizer or transformer as a plain state dict with VAR's key names (load_state_dict strict=True).

    Example: curricurun export-weights recipes/vqvae_var.yaml runs/vqvae_var/tokenizer --out vae.pth --format var
    """
    from curricurun.commands.weights_transfer import export_weights as run_export

    out.print(f"wrote {run_export(_load(recipe, set_), checkpoint, out_file, fmt)}")


@app.command("inspect-schedule")
def inspect_schedule(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    set_: SetOption = None,
    dataset_size: Annotated[
        int | None, typer.Option("--dataset-size", help="training samples (skips loading the data)")
    ] = None,
    steps_per_epoch: Annotated[
        int | None, typer.Option("--steps-per-epoch", help="alternative to --dataset-size")
    ] = None,
    world_size: Annotated[int, typer.Option("--world-size", help="simulate W processes")] = 1,
    out_png: Annotated[
        Path | None, typer.Option("--out", help="PNG path (default: schedule-<recipe>.png here)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the schedule as JSON")] = False,
    every: Annotated[int, typer.Option("--every", help="with --json: one entry every K steps")] = 1,
    measure: Annotated[
        bool,
        typer.Option(
            "--measure", help="time the model step and the loader at each stage: wall-clock forecast, stored"
        ),
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="with --measure: run directory for forecast.json (default as train)"),
    ] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="with --measure: timed steps per stage")] = 5,
) -> None:
    """Show the curriculum's stages before training: terminal table, PNG plot, --json.

    Example: curricurun inspect-schedule recipes/var_d36.yaml --dataset-size 1281167 --world-size 8
    """
    from curricurun.commands.inspect_schedule import run_inspect_schedule

    run_inspect_schedule(
        _load(recipe, set_),
        recipe_path=recipe,
        dataset_size=dataset_size,
        steps_per_epoch=steps_per_epoch,
        world_size=world_size,
        out_png=out_png,
        as_json=as_json,
        every=every,
        measure=measure,
        output_dir=output_dir,
        repeats=repeats,
        console=out,
    )


def _normalise_resume(argv: list[str]) -> list[str]:
    """Let ``--resume`` stand alone (= latest): Typer options always take a value."""
    fixed = list(argv)
    for i, arg in enumerate(fixed):
        if arg == "--resume" and (i + 1 == len(fixed) or fixed[i + 1].startswith("-")):
            fixed.insert(i + 1, "latest")
            break
    return fixed


def run(argv: list[str] | None = None) -> int:
    """Entry point: runs the Typer app and maps how it ended to the exit code (the codes: curricurun.errors).

    0 done; a :class:`UserError` prints one line per problem and exits with its ``exit_code`` (2, or 3 for a
    non-finite stop); :class:`Interrupted` (Ctrl-C, SIGTERM) exits ``128 + signum``; any other exception is a
    bug and propagates with its traceback (Python exits 1), so no failure can end as 0.
    """
    args = _normalise_resume(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        with _sigterm_raises():
            returned = app(args=args, prog_name="curricurun", standalone_mode=False)
    except UserError as error:
        if debug:
            raise
        for line in str(error).splitlines() or ["error"]:
            err.print(f"error: {line}", markup=False)
        return error.exit_code
    except Interrupted as stop:
        err.print(f"interrupted: {stop}", markup=False)
        return stop.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:  # click's name for Ctrl-C at a prompt or during a command
        err.print("aborted")
        return 130
    except _CLICK_EXCEPTION as error:  # a usage error: unknown option, missing argument, value out of range
        error.show()
        return error.exit_code
    # Without standalone mode click *returns* a typer.Exit's code (and 130 for a Ctrl-C it caught) instead of
    # raising it; commands themselves return None.
    return returned if isinstance(returned, int) and not isinstance(returned, bool) else 0


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Interrupted` (exit 143) so ``finally`` blocks run, as Ctrl-C's KeyboardInterrupt does.

    The training loop installs its own handler while it runs (stop at the step boundary, then checkpoint);
    this one covers the rest (loading data, validating). Only the main thread may set handlers, so an
    in-process caller on another thread keeps Python's default.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    sys.exit(run())
