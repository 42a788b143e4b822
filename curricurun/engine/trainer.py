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

from curricurun.engine.checkpoint import latest_checkpoint
from curricurun.engine.device import ScaleCap
from curricurun.engine.evaluation import evaluate, first_evaluation_batch
from curricurun.engine.run_builder import Run, build_run, make_accelerator
from curricurun.engine.run_state import save_run_state, update_early_stopping
from curricurun.engine.step_timing import StepTimer
from curricurun.engine.stopping import EXIT_CODES, InterruptRequests, stop_run
from curricurun.lr import apply_to_optimizer

__all__ = ["RunResult", "make_accelerator", "seed_model_randomness", "step_seed", "train"]


@dataclass
class RunResult:
    """What a finished run reports back (used by the CLI summary and by tests)."""

    run_dir: Path
    final_step: int
    checkpoint: Path | None
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


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
        run = build_run(recipe, resolved, output_dir, resume, stop_after_steps, resume_changed, interrupts)
        return _loop(run, interrupts)
    finally:
        interrupts.disarm()


def _loop(run: Run, interrupts: InterruptRequests) -> RunResult:
    """The training loop: set LR/WD from the step, forward, backward, clip, step; log, evaluate, checkpoint."""
    recipe, plan, sizes, accelerator = run.recipe, run.plan, run.sizes, run.accelerator
    model, optimizer, ema, guard, trace = run.model, run.optimizer, run.ema, run.guard, run.trace
    window = _LossWindow(accelerator.device)
    timer = StepTimer()  # ms per step per stage shape; checked against a stored forecast at the end
    scale_cap = ScaleCap(accelerator, recipe.training.grad_scaler.max_scale)  # VAR's fp16 scale cap
    checkpoint_path, stopped_early, lr = None, False, 0.0
    run.reporter.start(plan.total_steps, run.start_step)
    model.train()
    interrupts.arm()
    step = run.start_step
    for step in range(run.start_step, run.stop_step):
        timer.begin()
        state = plan.states[step]
        lr, weight_decay = run.learning_rate.lr_at(step), run.learning_rate.weight_decay_at(step)
        apply_to_optimizer(optimizer, lr, weight_decay)
        seed_model_randomness(step_seed(recipe.seed, step, run.rank))
        step_loss = torch.zeros((), device=accelerator.device)
        guard.keep_buffers(model)
        for micro in range(sizes.accumulation):
            batch = run.batches.next(step, state, step_seed(recipe.seed, step, run.rank) + micro)
            trace.begin()
            # Gradients are all-reduced only on the last micro-batch of the accumulation window.
            sync = contextlib.nullcontext() if micro == sizes.accumulation - 1 else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                loss = run.setup.training_loss(model, batch, state)
            trace.record(step, micro, int(plan.epoch_index[step]), batch, state)
            accelerator.backward(loss / sizes.accumulation)
            step_loss += loss.detach()
        grad_norm = None
        if recipe.training.grad_clip:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), recipe.training.grad_clip)
        nonfinite, interrupted = guard.check(step_loss, grad_norm)
        if nonfinite:  # stops (exit 3) or, with on_nonfinite: skip_step, drops this update
            last = latest_checkpoint(run.run_dir) or (run.point.path if run.point is not None else None)
            guard.on_nonfinite(step, plan.epoch_at(step), _stage_fields(state), last, run.reporter)
        else:
            scale_cap.before_step()
            optimizer.step()
            scale_cap.after_step()
            guard.count_scaler_skip(optimizer)
            window.add(step_loss, sizes.accumulation)
        optimizer.zero_grad(set_to_none=True)
        if ema is not None and not nonfinite:
            ema.update(accelerator.unwrap_model(model), step + 1)
        done = step + 1
        window.samples += int(plan.global_batches[step])
        timer.end(state)  # evaluation and checkpointing are outside the step time, as the forecast excludes them
        _log_progress(run, window, done, state, lr, timer)

        if run.eval_data is not None and _due(plan, step, recipe.training.eval, done == plan.total_steps):
            stopped_early = _evaluate(run, done)
        last_step = done == run.stop_step or stopped_early or interrupted is not None
        if _due(plan, step, recipe.training.checkpoint, done == plan.total_steps) or last_step:
            checkpoint_path = _save(run, done)
        if interrupted is not None:
            run.reporter.stop()
            stop_run(accelerator, EXIT_CODES[interrupted], f"stopped at step {done} of {plan.total_steps};"
                     f" checkpoint {latest_checkpoint(run.run_dir)}; continue with --resume")  # fmt: skip
        if stopped_early:
            stopping = recipe.training.early_stopping
            run.reporter.print(f"early stopping at step {done}: no improvement of {stopping.metric}"
                               f" for {stopping.patience} evaluations")  # fmt: skip
            break
    return _finish(run, step, checkpoint_path, stopped_early, lr, timer)


class _LossWindow:
    """The mean loss and the sample rate since the last log line."""

    def __init__(self, device) -> None:
        self.loss = torch.zeros((), device=device)
        self.count, self.samples, self.clock = 0, 0, time.perf_counter()

    def add(self, step_loss: torch.Tensor, micro_batches: int) -> None:
        self.loss += step_loss
        self.count += micro_batches

    def reset(self) -> None:
        self.loss.zero_()
        self.count, self.samples, self.clock = 0, 0, time.perf_counter()


def _log_progress(run: Run, window: _LossWindow, done: int, state, lr: float, timer: StepTimer) -> None:
    """Every ``log_every_steps`` (and at the last step): the mean loss over all ranks, the rate, the stage."""
    if not (done % run.recipe.training.log_every_steps == 0 or done == run.stop_step):
        run.reporter.advance(done, "")
        return
    plan = run.plan
    mean_loss = run.accelerator.reduce(window.loss / max(window.count, 1), "mean").item()
    elapsed = time.perf_counter() - window.clock
    record = {
        "epoch": round(plan.epoch_at(done), 4),
        "lr": lr,
        "loss": mean_loss,
        "samples_per_s": window.samples / elapsed if elapsed else 0.0,
        **run.guard.log_fields(),
        **timer.log_fields(),
        **_stage_fields(state),
    }
    run.reporter.log(record, done)
    run.reporter.advance(done, _progress_info(plan.epoch_at(done), state, lr, mean_loss, record["samples_per_s"]))
    window.reset()


def _evaluate(run: Run, done: int) -> bool:
    """Evaluate, log, draw the setup's pictures; returns whether early stopping ends the run here."""
    recipe, plan = run.recipe, run.plan
    eval_model = run.model_for_evaluation()
    metrics = evaluate(
        run.setup, eval_model, run.eval_data, recipe.data.image_size, run.sizes.per_device, run.accelerator, recipe,
        run.samples,
    )  # fmt: skip
    record = {"epoch": round(plan.epoch_at(done), 4), **{f"eval/{k}": v for k, v in metrics.items()}}
    run.history.append(record)
    run.reporter.log(record, done)
    _pictures_after_evaluation(run, eval_model, done)
    run.reporter.print(
        f"eval at step {done} (epoch {plan.epoch_at(done):.2f}): "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    )
    run.model.train()
    if recipe.training.early_stopping is None:
        return False
    return update_early_stopping(recipe.training.early_stopping, metrics, run.early_stop_state)


def _pictures_after_evaluation(run: Run, model, step: int) -> None:
    """The setup's optional pictures (reconstructions, samples) from the first evaluation images."""
    accelerator, pictures = run.accelerator, run.hooks.pictures
    if not accelerator.is_main_process or pictures is None:
        return
    batch = first_evaluation_batch(run.eval_data, run.recipe.data.image_size, 16, accelerator.device, run.samples)
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()
    with torch.no_grad(), accelerator.autocast():
        pictures.after_evaluation(unwrapped, batch, step, run.run_dir)
    unwrapped.train(was_training)


def _save(run: Run, done: int) -> Path:
    skipped = run.guard.skipped_nonfinite
    return save_run_state(
        run.run_dir, done, run.plan, run.accelerator, run.model, run.optimizer, run.ema, run.resolved,
        run.learning_rate, run.early_stop_state, run.history, run.recipe,
        {**run.carried, **({"skipped_steps": skipped} if skipped else {})},
    )  # fmt: skip


def _finish(
    run: Run, step: int, checkpoint_path: Path | None, stopped_early: bool, lr: float, timer: StepTimer
) -> RunResult:
    """Export (a finished run only), the sample trace, the summary lines; tear down the process group."""
    accelerator, reporter, history = run.accelerator, run.reporter, run.history
    ran = run.stop_step > run.start_step
    reporter.stop()
    finished = run.stop_step == run.plan.total_steps or stopped_early  # not a run paused by --stop-after
    if accelerator.is_main_process and run.hooks.exporter is not None and finished:
        exported = run.hooks.exporter.export(run.model_to_export(), run.run_dir)
        if exported is not None:
            reporter.print(f"exported: {exported}")
    run.trace.finish(accelerator.unwrap_model(run.model), lr if ran else 0.0)
    final = step + 1 if ran else run.start_step
    if checkpoint_path is not None:
        reporter.print(f"checkpoint: {checkpoint_path}")
    reporter.print(f"metrics: {run.run_dir / 'metrics.jsonl'}")
    if accelerator.is_main_process and ran:
        timer.write(run.run_dir)
        forecast_line = timer.forecast_line(run.run_dir, run.resolved)
        if forecast_line is not None:
            reporter.print(forecast_line)
    if history:
        reporter.summary(
            f"{run.recipe.name}: evaluation",
            [
                (str(h["epoch"]), ", ".join(f"{k.removeprefix('eval/')} {v:.4f}" for k, v in h.items() if k != "epoch"))
                for h in history
            ],
        )
    # end_training() tears down the gloo group, which otherwise sometimes aborts at exit.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return RunResult(run.run_dir, final, checkpoint_path, history, stopped_early)


def _due(plan, step: int, every, is_last: bool) -> bool:
    """Evaluation / checkpoint cadence: every N steps or every N epochs, and always at the end."""
    if is_last:
        return True
    if every.every_steps and (step + 1) % every.every_steps == 0:
        return True
    return bool(every.every_epochs) and plan.epoch_boundary_crossed(step, every.every_epochs)


def _stage_fields(state) -> dict[str, Any]:
    return {key: value for key, value in state.as_dict().items() if key != "scale_loss_weights"}


def _progress_info(epoch: float, state, lr: float, loss: float, rate: float) -> str:
    stage = " ".join(f"{k}={v}" for k, v in _stage_fields(state).items())
    return f"epoch {epoch:.2f} {stage} lr {lr:.2e} loss {loss:.4f} {rate:.0f} samples/s"
