"""What a run carries across a stop: checkpoint contents, restore, and the early-stopping counter.

The trainer state holds only counters and records (step, epoch, sampler position, stage, LR rule,
early-stopping state, evaluation history, resolved recipe): everything else a resumed run needs is derived
from the step by the plan, so nothing random has to be saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curricurun.engine.checkpoint import load_checkpoint, save_checkpoint
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
    run_dir, step, plan, accelerator, model, optimizer, ema, resolved, learning_rate, early_stop_state, history, recipe
) -> Path | None:
    """All ranks meet; the main process writes the checkpoint (weights, optimizer, trainer state)."""
    accelerator.wait_for_everyone()
    path = None
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
        }
        path = save_checkpoint(
            run_dir,
            step,
            accelerator.unwrap_model(model).state_dict(),
            optimizer.state_dict(),
            trainer_state,
            ema.state_dict() if ema is not None else None,
            keep_last=recipe.training.checkpoint.keep_last,
        )
    accelerator.wait_for_everyone()
    return path or run_dir


def restore_run_state(path: Path, accelerator, model, optimizer, ema, plan):
    """Load a checkpoint into the prepared model, optimizer and EMA; return (step, early stop, history)."""
    loaded = load_checkpoint(path)
    state = loaded["trainer_state"]
    try:
        accelerator.unwrap_model(model).load_state_dict(loaded["model"])
        optimizer.load_state_dict(loaded["optimizer"])
        if ema is not None and "ema" in loaded:
            ema.load_state_dict(loaded["ema"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise UserError(
            f"{path}: checkpoint does not match this recipe's model/optimizer ({str(error).splitlines()[0]})"
        ) from None
    step = int(state["step"])
    if state.get("total_steps") != plan.total_steps:
        raise UserError(
            f"{path}: checkpoint plan has {state.get('total_steps')} steps, this run {plan.total_steps};"
            " resume with the same recipe, world size and batch"
        )
    return step, state.get("early_stopping", {"best": None, "bad_evals": 0}), state.get("eval_history", [])
