"""What a run carries across a stop: checkpoint contents, restore, and the early-stopping counter.

The trainer state holds only counters and records (step, epoch, sampler position, stage, LR rule,
early-stopping state, evaluation history, resolved recipe): everything else a resumed run needs is derived
from the step by the plan, so nothing random has to be saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curricurun.engine.checkpoint import latest_checkpoint, save_checkpoint
from curricurun.engine.resume import ResumePoint
from curricurun.engine.sharding import full_model_state, full_optimizer_state, is_sharded, load_full_state
from curricurun.engine.stopping import EXIT_NONFINITE, stop_run
from curricurun.errors import UserError


def update_early_stopping(config, metrics: dict[str, float], state: dict[str, Any]) -> bool:
    """Count evaluations without an improvement of ``min_delta``; True when ``patience`` is used up."""
    name = config.metric.removeprefix("eval/")
    if name not in metrics:
        raise UserError(
            f"training.early_stopping.metric: '{config.metric}' is not reported; reported: {', '.join(metrics)}"
        )
    value, best = metrics[name], state["best"]
    improved = best is None or (
        value > best + config.min_delta if config.mode == "max" else value < best - config.min_delta
    )
    if improved:
        state["best"], state["bad_evals"] = value, 0
    else:
        state["bad_evals"] += 1
    return state["bad_evals"] >= config.patience


def save_run_state(
    run_dir,
    step,
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
    extra: dict[str, Any] | None = None,
) -> Path | None:
    """All ranks meet; the main process writes the checkpoint (weights, optimizer, trainer state).

    Weights that are not all finite are never written (:class:`NonFiniteStop`, exit code 3). A failed write
    on the main process (full disk) stops every rank: the ranks agree on the outcome before returning.
    """
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    # Under FSDP both are gathered to the main process (collectives: every rank calls them; others get {}).
    weights, optimizer_state = full_model_state(unwrapped), full_optimizer_state(unwrapped, optimizer)
    finite = all_finite(weights, ema.state_dict() if ema is not None else {})
    if is_sharded(unwrapped):  # only the main process holds the weights: it decides for every rank
        finite = not ranks_agree_on_failure(accelerator, not finite)
    if not finite:
        last = latest_checkpoint(run_dir)
        stop_run(
            accelerator,
            EXIT_NONFINITE,
            f"non-finite weights after step {step}: not saved; last good checkpoint: {last or 'none'}",
        )
    path, failure = None, None
    if accelerator.is_main_process:
        trainer_state = {
            "step": step,
            "epoch": plan.epoch_at(step),
            "sampler": {
                "seed": recipe.seed,
                "next_step": step,
                "epoch_index": int(plan.epoch_index[min(step, plan.total_steps - 1)]),
                "epoch_offset": int(plan.epoch_offset[min(step, plan.total_steps - 1)]),
            },
            "curriculum": plan.states[min(step, plan.total_steps - 1)].as_dict(),
            "total_steps": plan.total_steps,
            "world_size": accelerator.num_processes,
            "lr_rule": learning_rate.rule.as_dict(),
            "early_stopping": early_stop_state,
            "eval_history": history,
            "recipe": resolved,
            "rng": "derived from (seed, step, rank) at every step; nothing to restore",
            **(extra or {}),
        }
        try:
            path = save_checkpoint(
                run_dir,
                step,
                weights,
                optimizer_state,
                trainer_state,
                ema.state_dict() if ema is not None else None,
                keep_last=recipe.training.checkpoint.keep_last,
            )
        except UserError as error:
            failure = error
    if ranks_agree_on_failure(accelerator, failure is not None):
        accelerator.end_training()
        if failure is not None:
            raise failure
        raise UserError("checkpoint: the main process could not write the checkpoint (its message says why)")
    return path or run_dir


def all_finite(*states: dict[str, Any]) -> bool:
    """Every floating tensor finite: one reduction per tensor and a single host sync for all of them."""
    import torch

    flags = [
        torch.isfinite(tensor).all()
        for state in states
        for tensor in state.values()
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
    ]
    return bool(torch.stack([flag.cpu() for flag in flags]).all()) if flags else True


def ranks_agree_on_failure(accelerator, failed: bool) -> bool:
    """True on every rank when any rank failed (an all-reduce of one flag; no collective on one process)."""
    if accelerator.num_processes == 1:
        return failed
    import torch

    flag = torch.tensor([1.0 if failed else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(flag, "sum").item() > 0)


def restore_run_state(point: ResumePoint, accelerator, model, optimizer, ema):
    """Load a checked checkpoint into the prepared model, optimizer and EMA; return (step, early stop, history)."""
    loaded, state = point.loaded, point.state
    try:
        optimizer_state = None if point.optimizer_replaced else loaded["optimizer"]
        load_full_state(accelerator.unwrap_model(model), optimizer, loaded["model"], optimizer_state)  # FSDP too
        if ema is not None and "ema" in loaded:
            ema.load_state_dict(loaded["ema"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise UserError(
            f"{point.path}: checkpoint does not match this recipe's model/optimizer ({str(error).splitlines()[0]})"
        ) from None
    return state["step"], state["early_stopping"], state["eval_history"]


def carried_state(point: ResumePoint | None) -> dict[str, Any]:
    """Trainer-state fields a resumed run carries on: the record of recipe changes accepted on resume."""
    changes = list(point.state.get("resume_changes", [])) if point is not None else []
    if point is not None and point.changes:
        changes.append({"at_step": point.state["step"], "changes": point.changes})
    return {"resume_changes": changes} if changes else {}
