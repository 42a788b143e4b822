"""Build a run: everything :func:`curricurun.engine.trainer.train`'s loop needs, checked before anything is written.

In order: the resume point's path, the accelerator, the data (through the one sample pipeline), curriculum, batch
sizes, plan, LR rule and the batch steps; then every check of the checkpoint; only then the run directory, the
model, optimizer and EMA (``accelerator.prepare``), the restored state, the start-up lines and the batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from curricurun.data.sample_pipeline import BatchSteps, SamplePipeline, TrainingBatches, open_training_split
from curricurun.data.setup_samples import check_split_size
from curricurun.engine.assembly import BatchSizes, batch_sizes, build_curriculum, build_learning_rate, build_plan
from curricurun.engine.checkpoint import remove_stale_temporaries, resolve_resume_path
from curricurun.engine.device import accelerator_kwargs, configure_backends, to_memory_format
from curricurun.engine.host_memory import retain_freed_memory
from curricurun.engine.optimizers import build_optimizer
from curricurun.engine.reporting import Reporter
from curricurun.engine.resume import select_resume_point
from curricurun.engine.run_state import carried_state, restore_run_state
from curricurun.engine.sample_trace import SampleTrace
from curricurun.engine.sharding import check_wrap_classes, fsdp_plugin, refuse_exporting_setups
from curricurun.engine.stopping import StepGuard
from curricurun.param_groups import split_decay_groups
from curricurun.setups.base import SetupHooks, optional_hooks


@dataclass
class Run:
    """One run's pieces, built by :func:`build_run` and read by the loop."""

    recipe: Any
    resolved: dict[str, Any]
    run_dir: Path
    accelerator: Any
    reporter: Reporter
    setup: Any
    hooks: SetupHooks
    samples: SamplePipeline
    eval_data: Any
    sizes: BatchSizes
    plan: Any
    learning_rate: Any
    model: Any
    optimizer: Any
    ema: Any
    point: Any
    batches: TrainingBatches
    trace: SampleTrace
    guard: StepGuard
    start_step: int
    stop_step: int
    carried: dict[str, Any]
    early_stop_state: dict[str, Any] = field(default_factory=lambda: {"best": None, "bad_evals": 0})
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    def model_for_evaluation(self):
        """The EMA weights when the recipe evaluates them, else the trained model (still wrapped)."""
        return self.ema.module if (self.ema and self.recipe.training.eval.use_ema) else self.model

    def model_to_export(self):
        """What a setup exports: the EMA weights when evaluation uses them, else the trained model."""
        if self.ema is not None and self.recipe.training.eval.use_ema:
            return self.ema.module
        return self.accelerator.unwrap_model(self.model)


def make_accelerator(recipe, run_dir: Path):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    precision = recipe.training.precision
    return Accelerator(
        # "auto" defers to the launcher (`accelerate launch --mixed_precision ...`): an explicit value in
        # code would override the launcher's flag (accelerate ``state.py`` ``AcceleratorState``).
        mixed_precision=None if precision == "auto" else precision,
        # Without cpu=True, processes spawned by torchrun on a machine with no GPU each run alone
        # (DistributedType.NO): silent duplicate training (accelerate ``state.py`` ``_prepare_backend``).
        cpu=not torch.cuda.is_available(),
        log_with=list(recipe.training.log_with) or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        # training.fsdp: Accelerate's FSDP plugin; one line (exit 2) on CPU, where Accelerate would drop it.
        fsdp_plugin=fsdp_plugin(recipe.training.fsdp),
        **accelerator_kwargs(recipe.training),  # fp16: the recipe's GradScaler settings (engine/device.py)
    )


def build_run(recipe, resolved, output_dir, resume, stop_after_steps, resume_changed, interrupts) -> Run:
    """Every piece of the run; a data, recipe or checkpoint error is raised before the run directory exists."""
    from accelerate.utils import set_seed

    run_dir = Path(output_dir or recipe.training.output_dir or f"runs/{recipe.name}")
    resume_path = resolve_resume_path(resume, run_dir) if resume else None  # before anything is written
    accelerator = make_accelerator(recipe, run_dir)
    configure_backends(recipe.training, bool(recipe.curriculum))  # TF32, cudnn.benchmark (CUDA only)
    world_size = accelerator.num_processes
    reporter = Reporter(run_dir, accelerator, accelerator.is_main_process, bool(recipe.training.log_with))

    data = recipe.data
    samples, train_data, setup = open_training_split(recipe)  # as inspect-schedule --measure reads it
    eval_data = samples.load_split(data.eval_split, data.max_eval_samples) if data.eval_split else None
    refuse_exporting_setups(recipe.training.fsdp, recipe.setup.name, optional_hooks(setup).exporter)
    if eval_data is not None:
        check_split_size(eval_data, world_size, "eval_split")
    curriculum = build_curriculum(recipe)
    sizes = batch_sizes(recipe, world_size)
    plan = build_plan(recipe, len(train_data), world_size, curriculum)
    learning_rate = build_learning_rate(recipe, plan, sizes, curriculum)
    steps = samples.batch_steps(plan, curriculum, sizes.per_device, world_size, train_data)

    point = None  # every check of the checkpoint (files, fields, recipe changes) before anything is written
    if resume_path is not None:
        needs_ema = recipe.training.ema is not None
        point = select_resume_point(
            resume, run_dir, resolved, world_size, plan.total_steps, needs_ema, resume_changed, reporter.print
        )
    if accelerator.is_main_process:  # only now: a data or recipe error must leave no empty run directory
        run_dir.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.seed)  # identical initial weights on every rank
    model, optimizer, ema = _model_optimizer_ema(recipe, setup, accelerator, plan.total_steps)

    start_step, early_stop_state, history = 0, {"best": None, "bad_evals": 0}, []
    if point is not None:
        start_step, early_stop_state, history = restore_run_state(point, accelerator, model, optimizer, ema)
        reporter.print(f"resumed from {point.path} at step {start_step}")
    _start_lines(recipe, reporter, sizes, learning_rate, plan, steps)
    if accelerator.is_main_process:
        for stale in remove_stale_temporaries(run_dir):
            reporter.print(f"removed the partial checkpoint {stale.name} a stopped run left behind")
        (run_dir / "recipe.resolved.yaml").write_text(_yaml(resolved))
    if recipe.training.log_with:
        accelerator.init_trackers(recipe.name, config=_flat(resolved))

    stop_step = plan.total_steps if stop_after_steps is None else min(plan.total_steps, stop_after_steps)
    rank = accelerator.process_index
    retain_freed_memory(recipe.training.host_memory)  # before the loader's workers fork: they inherit it
    batches = TrainingBatches(samples, train_data, steps, plan, recipe.seed, rank, world_size, start_step, stop_step,
                              data.num_workers, accelerator.device, reporter.print)  # fmt: skip
    batches.channels_last = recipe.training.channels_last
    trace = SampleTrace(rank)
    trace.attach(accelerator.unwrap_model(model))
    guard = StepGuard(accelerator, recipe.training.on_nonfinite, interrupts)
    guard.skipped_nonfinite = point.state.get("skipped_steps", 0) if point is not None else 0
    return Run(
        recipe, resolved, run_dir, accelerator, reporter, setup, optional_hooks(setup), samples, eval_data, sizes,
        plan, learning_rate, model, optimizer, ema, point, batches, trace, guard, start_step, stop_step,
        carried_state(point), early_stop_state, history,
    )  # fmt: skip


def _model_optimizer_ema(recipe, setup, accelerator, total_steps: int):
    """The model and optimizer ``prepare``d by Accelerate, compiled when asked; the EMA of the unwrapped model."""
    model = to_memory_format(setup.build_model(), recipe.training.channels_last)
    check_wrap_classes(model, recipe.training.fsdp)
    optim = recipe.optim
    optimizer = build_optimizer(
        optim, split_decay_groups(model, optim.no_decay_names, decay_embeddings=optim.decay_embeddings)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    if recipe.training.compile:
        model = torch.compile(model)
    ema = None
    if recipe.training.ema is not None:
        from curricurun.ema import ModelEma

        cfg = recipe.training.ema
        ema = ModelEma(
            accelerator.unwrap_model(model), decay=cfg.decay, schedule=cfg.schedule, beta=cfg.beta,
            total_steps=total_steps,
        )  # fmt: skip
    return model, optimizer, ema


def _start_lines(recipe, reporter: Reporter, sizes: BatchSizes, learning_rate, plan, steps: BatchSteps) -> None:
    world_size = sizes.world_size
    reporter.print(
        f"curricurun: {recipe.name} · {world_size} process(es) · batch per device {sizes.per_device}"
        f" × world {world_size}"
        f" × accumulation {sizes.accumulation} = global {sizes.global_batch}"
    )
    reporter.print(f"learning rate: {learning_rate.rule.describe()}")
    reporter.print(
        f"plan: {plan.total_steps} steps, {plan.steps_per_epoch} steps per full-size epoch, "
        f"compute {plan.relative_compute():.3f} of the same recipe without curriculum"
    )
    for line in steps.start_lines:
        reporter.print(line)


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat
