"""``inspect-schedule --measure``: time the recipe's model step and data loader at each distinct stage shape.

The plan's relative cost is a pixel (token) count; what a step costs on this machine also depends on fixed
per-step overheads and on the loader, which a small stage does not shrink. So, for every distinct shape of the
run (and the full size without curriculum), this times:

- the **model**: one optimizer step as ``train`` takes it — forward + backward of every micro-batch under the
  recipe's precision (``torch.autocast``, as Accelerate applies ``training.precision``), gradient clipping, the
  recipe's optimizer, the EMA update — on real micro-batches of the recipe's pipeline at the per-device batch;
- the **loader**: the recipe's dataset, pipeline, collate and ``data.num_workers`` delivering one optimizer
  step's micro-batches (host-side random erasing included), on the recipe's data (``data.max_train_samples``
  makes it a sample).

Each is run :data:`WARMUP_STEPS` times untimed-for-the-median (the first one's extra time is kept: a new shape
costs it once in training too), then ``repeats`` times; :mod:`.cost_model` turns the repeats into the forecast.
A setup that cannot train on the loader's batch here (``var`` without its tokenizer) but has
``measure_batch(stage, batch_size)`` is timed on that batch instead, and the report says so.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

from curricurun.commands.inspect_schedule.cost_model import Repeats, StageMeasurement
from curricurun.curriculum.base import StageState
from curricurun.data.sample_pipeline import BatchSteps, SamplePipeline, open_sample_pipeline, open_training_split
from curricurun.engine.step_timing import shape_key
from curricurun.errors import UserError
from curricurun.setups.base import optional_hooks

WARMUP_STEPS = 2
REPEATS = 5
PREFETCH_FACTOR = 2  # torch DataLoader's default: batches each worker loads ahead


@dataclass
class Harness:
    """Everything a timed step needs, built once per command, as ``train`` builds it."""

    recipe: Any
    setup: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    samples: SamplePipeline  # the engine's sample pipeline (open_sample_pipeline)
    dataset: Any  # samples.training_dataset(split)
    steps: BatchSteps  # samples.batch_steps(...): the host and device steps of a training micro-batch
    accumulation: int
    per_device: int
    world_size: int
    device: torch.device
    ema: Any = None
    setup_batch: bool = False  # the model is timed on ``setup.measure_batch`` (see :func:`_loss`)
    notes: list[str] = field(default_factory=list)


def load_training_split(recipe):
    """The setup and the training split, read through the engine's call (``open_training_split``, as ``train``)."""
    _, split, setup = open_training_split(recipe)
    return setup, split


def build_harness(recipe, setup, split, sizes, plan, device: torch.device | None = None) -> Harness:
    """The model, optimizer and EMA of the recipe (seeded by ``recipe.seed``); the dataset, collate and batch
    steps from the engine's sample pipeline, as ``engine/run_builder.py`` asks for them."""
    from curricurun.engine.host_memory import retain_freed_memory
    from curricurun.engine.optimizers import build_optimizer
    from curricurun.param_groups import split_decay_groups

    retain_freed_memory(recipe.training.host_memory)  # the allocator the training run will have
    optim = recipe.optim
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    samples = open_sample_pipeline(recipe, setup)
    steps = samples.batch_steps(plan, plan.curriculum, sizes.per_device, sizes.world_size, split)
    torch.manual_seed(recipe.seed)
    model = setup.build_model().to(device)
    optimizer = build_optimizer(
        optim, split_decay_groups(model, optim.no_decay_names, decay_embeddings=optim.decay_embeddings)
    )
    ema = None
    if recipe.training.ema is not None:
        from curricurun.ema import ModelEma

        cfg = recipe.training.ema
        ema = ModelEma(model, decay=cfg.decay, schedule=cfg.schedule, beta=cfg.beta, total_steps=1000)
    if recipe.training.compile:
        model = torch.compile(model)
    model.train()
    harness = Harness(
        recipe, setup, model, optimizer, samples, samples.training_dataset(split), steps, sizes.accumulation,
        sizes.per_device, sizes.world_size, device, ema,
    )  # fmt: skip
    if recipe.training.precision == "auto":
        harness.notes.append("training.precision auto: timed in full precision (the launcher decides in training)")
    if steps.replay is not None:
        harness.notes.append(
            "data.replay: the loader is timed delivering whole batches (the replayed share is not"
            " subtracted), so loader time is an upper bound"
        )
    return harness


def measure_shape(
    harness: Harness, state: StageState, label: str, pixel_cost: float, repeats: int = REPEATS, first_seed: int = 0
) -> StageMeasurement:
    """Time the loader, then the model on the loader's batches, at one stage shape."""
    per_device = _per_device_batch(harness, state)
    loader_times, batches = _time_loader(harness, state, per_device, repeats, first_seed)
    model_times = _time_model(harness, state, batches, per_device)
    loader_warm, loader_timed = _split_warmup(harness, loader_times)
    model_warm, model_timed = model_times[:WARMUP_STEPS], model_times[WARMUP_STEPS:]
    loader, model = Repeats(tuple(loader_timed)), Repeats(tuple(model_timed))
    return StageMeasurement(
        label,
        shape_key(state),
        model,
        loader,
        model_first_extra=max(0.0, model_warm[0] - model.median),
        loader_first_extra=max(0.0, loader_warm[0] - loader.median),
        pixel_cost=pixel_cost,
    )


def _per_device_batch(harness: Harness, state: StageState) -> int:
    """A batch-size curriculum's global batch on one device and micro-step, else the recipe's per-device batch."""
    if state.batch_size is None:
        return harness.per_device
    return max(1, state.batch_size // (harness.world_size * harness.accumulation))


def loader_warmup_steps(num_workers: int, accumulation: int) -> int:
    """Warm-up steps of the loader: enough to drain what the workers prefetched while they started (else the
    first timed steps would be served from that buffer and look free)."""
    return max(WARMUP_STEPS, math.ceil((PREFETCH_FACTOR * num_workers + 1) / accumulation) + 1)


def _split_warmup(harness: Harness, times: list[float]) -> tuple[list[float], list[float]]:
    warm = loader_warmup_steps(harness.recipe.data.num_workers, harness.accumulation)
    return times[:warm], times[warm:]


def _time_loader(harness: Harness, state: StageState, per_device: int, repeats: int, first_seed: int):
    """Seconds per optimizer step's micro-batches from a real DataLoader, and the batches (for the model)."""
    from curricurun.data.sampler import SampleKey, sample_seed
    from curricurun.data.staged import checked_batch

    recipe = harness.recipe
    workers = recipe.data.num_workers
    steps = loader_warmup_steps(workers, harness.accumulation) + repeats
    count = len(harness.dataset)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(recipe.seed + first_seed)).tolist()
    bandwidth = state.bandwidth if harness.steps.loader_applies_bandwidth else None
    keys = []
    for position in range(steps * harness.accumulation):
        indices = [order[(position * per_device + i) % count] for i in range(per_device)]
        keys.append(
            [
                SampleKey(i, state.resolution, state.aug_magnitude, bandwidth, sample_seed(recipe.seed, 0, i))
                for i in indices
            ]
        )
    loader = DataLoader(
        harness.dataset,
        batch_sampler=keys,
        collate_fn=harness.samples.collate,
        num_workers=workers,
        persistent_workers=False,
        pin_memory=False,
    )
    batches, times = iter(loader), []
    kept: list[list[dict]] = []
    for step in range(steps):
        start = time.perf_counter()
        micro_batches = []
        for micro in range(harness.accumulation):
            batch = checked_batch(next(batches))
            if harness.steps.host is not None:  # random erasing (replay is not applied: see build_harness)
                batch = harness.steps.host(batch, step, step * harness.accumulation + micro)
            micro_batches.append(batch)
        times.append(time.perf_counter() - start)
        kept.append(micro_batches)
    return times, kept[-(WARMUP_STEPS + repeats) :] if len(kept) > WARMUP_STEPS + repeats else kept


def _precision_context(precision: str, device: torch.device):
    if precision in ("fp16", "bf16"):
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def _time_model(harness: Harness, state: StageState, steps: list[list[dict]], per_device: int) -> list[float]:
    """Seconds of each optimizer step on the given micro-batches (WARMUP_STEPS first, then the timed ones)."""
    device, recipe = harness.device, harness.recipe
    clip = recipe.training.grad_clip
    times = []
    for index, micro_batches in enumerate(steps):
        _synchronize(device)
        start = time.perf_counter()
        for micro, host in enumerate(micro_batches):
            if harness.setup_batch:
                host = harness.setup.measure_batch(state, per_device)
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in host.items()}
            if harness.steps.device is not None:  # the FFT crop, then Mixup/CutMix, as in training
                batch = harness.steps.device(batch, state, index * harness.accumulation + micro)
            loss = _loss(harness, batch, state, per_device)
            (loss / harness.accumulation).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(harness.model.parameters(), clip)
        harness.optimizer.step()
        harness.optimizer.zero_grad(set_to_none=True)
        if harness.ema is not None:
            harness.ema.update(harness.model, index + 1)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def _loss(harness: Harness, batch: dict, state: StageState, per_device: int) -> torch.Tensor:
    """The setup's training loss; a setup that cannot train on this batch here falls back to ``measure_batch``."""
    precision = harness.recipe.training.precision
    try:
        with _precision_context(precision, harness.device):
            return harness.setup.training_loss(harness.model, batch, state)
    except UserError as error:
        if harness.setup_batch or optional_hooks(harness.setup).measure is None:
            raise
        harness.setup_batch = True
        harness.notes.append(f"the model is timed on the setup's own random batch, not the loader's ({error})")
        batch = {k: v.to(harness.device) for k, v in harness.setup.measure_batch(state, per_device).items()}
        with _precision_context(precision, harness.device):
            return harness.setup.training_loss(harness.model, batch, state)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
