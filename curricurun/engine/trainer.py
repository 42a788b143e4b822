"""The training loop on Accelerate, top to bottom: set LR/WD from the step, forward, backward, clip, step.

Everything that varies during a run is read from the :class:`~curricurun.plan.TrainingPlan` by step
number, so the loop keeps no hidden state and a resumed run continues bit for bit (on CPU).

Placement rules worth knowing (Accelerate 1.15; docs/references.md "Accelerate"):
- no LR scheduler is ``prepare``d: Accelerate would step it ``num_processes`` times per optimizer step;
- the DataLoader is not ``prepare``d either: our sampler is already rank-aware (preparing would shard it
  twice) and resumable (Accelerate's default sampler state is not saved);
- ``end_training()`` runs at exit: it tears down the gloo group, which otherwise sometimes aborts at exit.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from curricurun.curriculum.low_frequency_crop import fft_low_frequency_crop
from curricurun.data.mixing import build_mixup, build_random_erasing, erase_batch, mix_batch
from curricurun.data.replay import FreshSampler, ReplayStages
from curricurun.data.sampler import PlannedBatchSampler
from curricurun.data.setup_samples import SetupTrainingDataset, check_split_size, owns_data
from curricurun.data.staged import StagedDataset, checked_batch, collate
from curricurun.engine.assembly import batch_sizes, build_curriculum, build_learning_rate, build_plan
from curricurun.engine.checkpoint import latest_checkpoint, remove_stale_temporaries, resolve_resume_path
from curricurun.engine.evaluation import evaluate, first_evaluation_batch
from curricurun.engine.optimizers import build_optimizer
from curricurun.engine.reporting import Reporter
from curricurun.engine.resume import select_resume_point
from curricurun.engine.run_state import carried_state, restore_run_state, save_run_state, update_early_stopping
from curricurun.engine.sample_trace import SampleTrace
from curricurun.engine.stopping import EXIT_CODES, InterruptRequests, StepGuard, stop_run
from curricurun.errors import UserError
from curricurun.lr import apply_to_optimizer
from curricurun.param_groups import split_decay_groups


@dataclass
class RunResult:
    """What a finished run reports back (used by the CLI summary and by tests)."""

    run_dir: Path
    final_step: int
    checkpoint: Path | None
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


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
    )


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the model-side randomness (dropout, drop-path) at one step on one rank: resume-exact."""
    return (seed * 6_700_417 + step * 1_009 + rank * 104_729) % (2**62)


def seed_model_randomness(seed: int) -> None:
    """Seed dropout / drop-path for one step. On CPU only the default generator matters, and seeding it
    directly costs ~1 µs instead of ~130 µs for ``torch.manual_seed``'s lazy device-RNG bookkeeping."""
    if torch.cuda.is_available():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def train(
    recipe,
    resolved: dict[str, Any],
    output_dir: str | None = None,
    resume: str | None = None,
    stop_after_steps: int | None = None,
    resume_changed: bool = False,
) -> RunResult:
    """Run a recipe to the end of its plan (or ``stop_after_steps``, used to test resume).

    Args:
        recipe: the validated recipe.
        resolved: the resolved recipe as plain data (stored in every checkpoint).
        output_dir: run directory (default: the recipe's ``training.output_dir``).
        resume: a checkpoint path, a run directory, or ``"latest"``.
        resume_changed: resume although the recipe changed in a way that breaks exactness (printed, stored).
    """
    interrupts = InterruptRequests()  # SIGINT/SIGTERM stop at a step boundary while the loop runs
    try:
        return _train(recipe, resolved, output_dir, resume, stop_after_steps, resume_changed, interrupts)
    finally:
        interrupts.disarm()


def _train(recipe, resolved, output_dir, resume, stop_after_steps, resume_changed, interrupts) -> RunResult:
    from accelerate.utils import set_seed

    from curricurun.data import load_recipe_split, pipelines
    from curricurun.setups import get as get_setup
    from curricurun.setups.base import DataShape

    run_dir = Path(output_dir or recipe.training.output_dir or f"runs/{recipe.name}")
    resume_path = resolve_resume_path(resume, run_dir) if resume else None  # before anything is written
    accelerator = make_accelerator(recipe, run_dir)
    rank, world_size = accelerator.process_index, accelerator.num_processes
    reporter = Reporter(run_dir, accelerator, accelerator.is_main_process, bool(recipe.training.log_with))

    data = recipe.data
    setup_cls = get_setup(recipe.setup.name)
    if owns_data(setup_cls):  # pose/detection: the setup reads its own annotation format (setups/base.py)
        setup = setup_cls(recipe.setup_params, None)
        train_data = setup.load_split(data, data.train_split, data.max_train_samples)
        eval_data = setup.load_split(data, data.eval_split, data.max_eval_samples) if data.eval_split else None
    else:
        train_data = load_recipe_split(data, data.train_split, data.max_train_samples)
        eval_data = None
        if data.eval_split:
            eval_data = load_recipe_split(data, data.eval_split, data.max_eval_samples)
        setup = setup_cls(recipe.setup_params, DataShape(train_data.channels, train_data.num_classes, data.image_size))
    if eval_data is not None:
        check_split_size(eval_data, world_size, "eval_split")
    curriculum = build_curriculum(recipe)
    sizes = batch_sizes(recipe, world_size)
    plan = build_plan(recipe, len(train_data), world_size, curriculum)
    learning_rate = build_learning_rate(recipe, plan, sizes, curriculum)
    replay = ReplayStages(data.replay, plan, world_size) if data.replay is not None else None
    eraser, mixer = _batch_augmentations(data.augment, train_data.num_classes, sizes.per_device)

    point = None  # every check of the checkpoint (files, fields, recipe changes) before anything is written
    if resume_path is not None:
        needs_ema = recipe.training.ema is not None
        point = select_resume_point(
            resume, run_dir, resolved, world_size, plan.total_steps, needs_ema, resume_changed, reporter.print
        )
    if accelerator.is_main_process:  # only now: a data or recipe error must leave no empty run directory
        run_dir.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.seed)  # identical initial weights on every rank
    model = setup.build_model()
    optimizer = build_optimizer(
        recipe.optim,
        split_decay_groups(model, recipe.optim.no_decay_names, decay_embeddings=recipe.optim.decay_embeddings),
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    if recipe.training.compile:
        model = torch.compile(model)
    ema = None
    if recipe.training.ema is not None:
        from curricurun.ema import ModelEma

        cfg = recipe.training.ema
        ema = ModelEma(
            accelerator.unwrap_model(model),
            decay=cfg.decay,
            schedule=cfg.schedule,
            beta=cfg.beta,
            total_steps=plan.total_steps,
        )

    start_step, early_stop_state, history = 0, {"best": None, "bad_evals": 0}, []
    if point is not None:
        start_step, early_stop_state, history = restore_run_state(point, accelerator, model, optimizer, ema)
        reporter.print(f"resumed from {point.path} at step {start_step}")

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
    for line in _replay_ram_lines(replay, curriculum, train_data.channels, data.image_size):
        reporter.print(line)
    if accelerator.is_main_process:
        for stale in remove_stale_temporaries(run_dir):
            reporter.print(f"removed the partial checkpoint {stale.name} a stopped run left behind")
        (run_dir / "recipe.resolved.yaml").write_text(_yaml(resolved))
    if recipe.training.log_with:
        accelerator.init_trackers(recipe.name, config=_flat(resolved))

    fft_on_device = _fft_crop_on_device(curriculum)
    stop_step = plan.total_steps if stop_after_steps is None else min(plan.total_steps, stop_after_steps)
    if replay is None:
        sampler = PlannedBatchSampler(
            plan, recipe.seed, rank, world_size, start_step, stop_step, loader_applies_bandwidth=not fft_on_device
        )
    else:  # the loader makes only the fresh part of each batch; the replay buffer adds the rest
        sampler = FreshSampler(
            replay, recipe.seed, rank, world_size, start_step, stop_step, loader_applies_bandwidth=not fft_on_device
        )
    if owns_data(setup):
        train_dataset, collate_fn = SetupTrainingDataset(setup, train_data, data.image_size), setup.collate
    else:
        pipeline = pipelines.build(data.pipeline, data.augment, train_data)
        skip = data.corrupt_images == "skip"
        train_dataset, collate_fn = StagedDataset(train_data, pipeline, data.image_size, skip), collate
    loader = DataLoader(
        train_dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=data.num_workers,
        persistent_workers=False,
        pin_memory=False,
    )
    batches = iter(loader)
    skipped_files: list[str] = []

    def skip_report(messages: list[str]) -> None:  # data.corrupt_images: skip
        skipped_files.extend(messages)
        for message in messages:
            reporter.print(f"skipped undecodable image ({len(skipped_files)} so far): {message}")

    trace = SampleTrace(rank)
    trace.attach(accelerator.unwrap_model(model))

    checkpoint_path, stopped_early = None, False
    running_loss = torch.zeros((), device=accelerator.device)
    running_count, samples_since, clock = 0, 0, time.perf_counter()
    guard = StepGuard(accelerator, recipe.training.on_nonfinite, interrupts)
    guard.skipped_nonfinite = point.state.get("skipped_steps", 0) if point is not None else 0
    carried = carried_state(point)
    reporter.start(plan.total_steps, start_step)
    model.train()
    interrupts.arm()
    step = start_step
    for step in range(start_step, stop_step):
        state = plan.states[step]
        lr, weight_decay = learning_rate.lr_at(step), learning_rate.weight_decay_at(step)
        apply_to_optimizer(optimizer, lr, weight_decay)
        seed_model_randomness(step_seed(recipe.seed, step, rank))
        step_loss = torch.zeros((), device=accelerator.device)
        guard.keep_buffers(model)
        for micro in range(sizes.accumulation):
            augment_seed = step_seed(recipe.seed, step, rank) + micro
            host = _host_batch(checked_batch(next(batches), skip_report), eraser, replay, step, augment_seed)
            batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in host.items()}
            if fft_on_device and state.bandwidth is not None:
                batch["image"] = fft_low_frequency_crop(batch["image"], state.bandwidth)
            if mixer is not None:  # after the FFT crop, as ICCV's engine.py L49-50 orders them
                batch = mix_batch(batch, mixer, augment_seed)
            trace.begin()
            last_micro = micro == sizes.accumulation - 1
            # Gradients are all-reduced only on the last micro-batch of the accumulation window.
            sync = contextlib.nullcontext() if last_micro else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                loss = setup.training_loss(model, batch, state)
            trace.record(step, micro, int(plan.epoch_index[step]), batch, state)
            accelerator.backward(loss / sizes.accumulation)
            step_loss += loss.detach()
        grad_norm = None
        if recipe.training.grad_clip:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), recipe.training.grad_clip)
        nonfinite, interrupted = guard.check(step_loss, grad_norm)
        if nonfinite:  # stops (exit 3) or, with on_nonfinite: skip_step, drops this update
            last = latest_checkpoint(run_dir) or (point.path if point is not None else None)
            guard.on_nonfinite(step, plan.epoch_at(step), _stage_fields(state), last, reporter)
        else:
            optimizer.step()
            guard.count_scaler_skip(optimizer)
            running_loss += step_loss
            running_count += sizes.accumulation
        optimizer.zero_grad(set_to_none=True)
        if ema is not None and not nonfinite:
            ema.update(accelerator.unwrap_model(model), step + 1)
        samples_since += int(plan.global_batches[step])
        done = step + 1

        if done % recipe.training.log_every_steps == 0 or done == stop_step:
            mean_loss = accelerator.reduce(running_loss / max(running_count, 1), "mean").item()
            elapsed = time.perf_counter() - clock
            record = {
                "epoch": round(plan.epoch_at(done), 4),
                "lr": lr,
                "loss": mean_loss,
                "samples_per_s": samples_since / elapsed if elapsed else 0.0,
                **guard.log_fields(),
                **_stage_fields(state),
            }
            reporter.log(record, done)
            reporter.advance(done, _progress_info(plan.epoch_at(done), state, lr, mean_loss, record["samples_per_s"]))
            running_loss.zero_()
            running_count, samples_since, clock = 0, 0, time.perf_counter()
        else:
            reporter.advance(done, "")

        if eval_data is not None and _due(plan, step, recipe.training.eval, done == plan.total_steps):
            eval_model = ema.module if (ema and recipe.training.eval.use_ema) else model
            metrics = evaluate(
                setup,
                eval_model,
                eval_data,
                data.image_size,
                sizes.per_device,
                accelerator,
                recipe,
            )
            record = {"epoch": round(plan.epoch_at(done), 4), **{f"eval/{k}": v for k, v in metrics.items()}}
            history.append(record)
            reporter.log(record, done)
            _pictures_after_evaluation(setup, accelerator, eval_model, eval_data, data, done, run_dir)
            reporter.print(
                f"eval at step {done} (epoch {plan.epoch_at(done):.2f}): "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            )
            model.train()
            if recipe.training.early_stopping is not None:
                stopped_early = update_early_stopping(recipe.training.early_stopping, metrics, early_stop_state)
        last_step = done == stop_step or stopped_early or interrupted is not None
        if _due(plan, step, recipe.training.checkpoint, done == plan.total_steps) or last_step:
            checkpoint_path = save_run_state(
                run_dir,
                done,
                plan,
                accelerator,
                model,
                optimizer,
                ema,
                resolved,
                learning_rate,
                early_stop_state,
                history,
                recipe,
                {**carried, **({"skipped_steps": guard.skipped_nonfinite} if guard.skipped_nonfinite else {})},
            )
        if interrupted is not None:
            reporter.stop()
            stop_run(
                accelerator,
                EXIT_CODES[interrupted],
                f"stopped at step {done} of {plan.total_steps}; checkpoint {latest_checkpoint(run_dir)};"
                " continue with --resume",
            )
        if stopped_early:
            reporter.print(
                f"early stopping at step {done}: no improvement of "
                f"{recipe.training.early_stopping.metric} for {recipe.training.early_stopping.patience} evaluations"
            )
            break
    reporter.stop()
    finished = stop_step == plan.total_steps or stopped_early  # not a run paused by --stop-after
    if accelerator.is_main_process and hasattr(setup, "export") and finished:
        exported = setup.export(_export_model(accelerator, model, ema, recipe), run_dir)
        if exported is not None:
            reporter.print(f"exported: {exported}")
    trace.finish(accelerator.unwrap_model(model), lr if stop_step > start_step else 0.0)
    final = step + 1 if stop_step > start_step else start_step
    if checkpoint_path is not None:
        reporter.print(f"checkpoint: {checkpoint_path}")
    reporter.print(f"metrics: {run_dir / 'metrics.jsonl'}")
    if history:
        reporter.summary(
            f"{recipe.name}: evaluation",
            [
                (str(h["epoch"]), ", ".join(f"{k.removeprefix('eval/')} {v:.4f}" for k, v in h.items() if k != "epoch"))
                for h in history
            ],
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return RunResult(run_dir, final, checkpoint_path, history, stopped_early)


def _export_model(accelerator, model, ema, recipe):
    """What a setup exports: the EMA weights when evaluation uses them, else the trained model."""
    if ema is not None and recipe.training.eval.use_ema:
        return ema.module
    return accelerator.unwrap_model(model)


def _pictures_after_evaluation(setup, accelerator, model, eval_data, data, step, run_dir) -> None:
    """The setup's optional pictures (reconstructions, samples) from the first evaluation images."""
    if not accelerator.is_main_process or not hasattr(setup, "after_evaluation"):
        return
    from curricurun.data import pipelines

    pipeline = pipelines.build(data.pipeline, data.augment)
    batch = first_evaluation_batch(eval_data, data.image_size, 16, accelerator.device, setup, pipeline)
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()
    with torch.no_grad(), accelerator.autocast():
        setup.after_evaluation(unwrapped, batch, step, run_dir)
    unwrapped.train(was_training)


def _due(plan, step: int, every, is_last: bool) -> bool:
    """Evaluation / checkpoint cadence: every N steps or every N epochs, and always at the end."""
    if is_last:
        return True
    if every.every_steps and (step + 1) % every.every_steps == 0:
        return True
    return bool(every.every_epochs) and plan.epoch_boundary_crossed(step, every.every_epochs)


def _fft_crop_on_device(curriculum) -> bool:
    for member in getattr(curriculum, "members", ()) or ():
        if getattr(member, "name", "") == "low_frequency_crop" and getattr(member.params, "method", "") == "fft":
            return True
    return False


def _batch_augmentations(augment, num_classes: int, per_device: int):
    """timm's random erasing and Mixup/CutMix for the recipe's ``data.augment``, each None when off."""
    mixer = build_mixup(
        augment.mixup,
        augment.cutmix,
        num_classes,
        augment.mixup_prob,
        augment.mixup_switch_prob,
        augment.mixup_mode,
    )
    if mixer is not None and per_device % 2:
        raise UserError(f"data.augment.mixup: needs an even per-device batch (timm pairs images), got {per_device}")
    eraser = build_random_erasing(augment.random_erasing, augment.random_erasing_mode, augment.random_erasing_count)
    return eraser, mixer


def _host_batch(batch, eraser, replay, step: int, seed: int):
    """The micro-batch on the host: the fresh samples erased, then (replay on) the buffer's chunks added.

    Erasing comes first so a replayed sample keeps its erasing, as in ET++ where it is part of the loader.
    """
    if eraser is not None:
        batch = erase_batch(batch, eraser, seed)
    if replay is not None:
        batch = replay.combine(step, batch, torch.Generator().manual_seed(seed))
    return batch


def _replay_ram_lines(replay, curriculum, channels: int, image_size: int) -> list[str]:
    """The host RAM each replaying stage's buffer needs, printed at start (the images the loader delivers)."""
    if replay is None:
        return []
    on_device = _fft_crop_on_device(curriculum)

    def side(step: int) -> int:
        state = replay.plan.states[step]
        return (None if on_device else state.bandwidth) or state.resolution or image_size

    return replay.host_ram_lines(channels, side)


def _stage_fields(state) -> dict[str, Any]:
    return {key: value for key, value in state.as_dict().items() if key != "scale_loss_weights"}


def _progress_info(epoch: float, state, lr: float, loss: float, rate: float) -> str:
    stage = " ".join(f"{k}={v}" for k, v in _stage_fields(state).items())
    return f"epoch {epoch:.2f} {stage} lr {lr:.2e} loss {loss:.4f} {rate:.0f} samples/s"


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
