"""``inspect-schedule --measure``: time real forward+backward steps at each distinct stage shape.

The plan's relative cost is a model (pixel count for image curricula, ET++'s ``epoch_scale_ratio``; a
setup's token count for token-scale curricula); this measures what the model actually costs at each shape,
so a user sees before training whether a low-resolution stage is really as cheap as predicted (small
stages are often overhead-bound and cost more than their pixel share).

A setup may provide ``measure_batch(stage, batch_size) -> dict`` to build its own random batch; the
default is random images ``[B, C, r, r]`` (r = the stage's bandwidth, else resolution, else the recipe's
image size) with random labels, which suits the classification setup.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from curricurun.commands.inspect_schedule.schedule import Schedule
from curricurun.commands.inspect_schedule.terminal import print_unsqueezed
from curricurun.curriculum.base import StageState

WARMUP_STEPS = 2
TIMED_STEPS = 5
SHAPE_FIELDS = ("resolution", "bandwidth", "scale_index", "batch_size")


@dataclass(frozen=True)
class StageTiming:
    """Measured time of one forward+backward micro-batch at one stage shape.

    Attributes:
        label: the shape, e.g. ``"resolution 16, batch 32"``.
        state: the stage state measured.
        per_device_batch: samples per micro-batch on one device.
        predicted_cost: the plan's cost of one sample at this state relative to a full-size sample.
        seconds_per_step: median wall time of one micro-batch (forward + backward).
        is_reference: whether this is the full-size shape the others are compared with.
    """

    label: str
    state: StageState
    per_device_batch: int
    predicted_cost: float
    seconds_per_step: float
    is_reference: bool = False

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds_per_step / self.per_device_batch

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": self.label,
            **{field: getattr(self.state, field) for field in SHAPE_FIELDS if getattr(self.state, field) is not None},
            "per_device_batch": self.per_device_batch,
            "predicted_relative_cost": self.predicted_cost,
            "seconds_per_step": self.seconds_per_step,
            "full_size_reference": self.is_reference,
        }


def distinct_shapes(schedule: Schedule) -> list[StageState]:
    """The first state of each distinct (resolution, bandwidth, scale_index, batch_size), in training order."""
    shapes: dict[tuple, StageState] = {}
    for _, _, state in schedule.plan.stages():
        shapes.setdefault(tuple(getattr(state, field) for field in SHAPE_FIELDS), state)
    return list(shapes.values())


def random_image_batch(
    stage: StageState, batch_size: int, channels: int, num_classes: int, image_size: int
) -> dict[str, torch.Tensor]:
    """Random images at the stage's side (bandwidth, else resolution, else ``image_size``) and random labels."""
    side = stage.bandwidth or stage.resolution or image_size
    return {
        "image": torch.randn(batch_size, channels, side, side),
        "label": torch.randint(num_classes, (batch_size,)),
    }


def measure_stages(recipe, schedule: Schedule, data=None, device: torch.device | None = None) -> list[StageTiming]:
    """Time :data:`TIMED_STEPS` micro-batches after :data:`WARMUP_STEPS` warm-up ones at each distinct shape.

    The model is the recipe's setup model; channels and classes come from the loaded data, else from the
    setup parameters, else 3 and 1000. A full-size reference (no curriculum) is measured too unless a stage
    already is one. ``device`` defaults to the GPU when there is one, else the CPU.
    """
    from curricurun.setups import get as get_setup
    from curricurun.setups.base import DataShape

    image_size = recipe.data.image_size
    channels, classes = (data.channels, data.num_classes) if data is not None else (3, 1000)
    shape = DataShape(channels, classes, image_size)
    setup = get_setup(recipe.setup.name)(recipe.setup_params, shape)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = setup.build_model().to(device)
    model.train()

    sizes = schedule.sizes
    per_micro = sizes.world_size * sizes.accumulation
    states = distinct_shapes(schedule)
    costs = {id(state): schedule.sample_cost[id(state)] for state in states}
    full = [
        s
        for s in states
        if abs(costs[id(s)] - 1.0) < 1e-9 and (s.batch_size or sizes.global_batch) == sizes.global_batch
    ]
    if not full:
        reference = StageState()
        states.append(reference)
        costs[id(reference)] = 1.0
    reference_id = id(full[0]) if full else id(states[-1])

    timings = []
    for state in states:
        batch_size = (state.batch_size or sizes.global_batch) // per_micro
        if hasattr(setup, "measure_batch"):
            batch = setup.measure_batch(state, batch_size)
        else:
            batch = random_image_batch(state, batch_size, setup.channels, setup.num_classes, image_size)
        batch = {key: value.to(device) for key, value in batch.items()}
        seconds = _time_steps(setup, model, batch, state, device)
        timings.append(
            StageTiming(
                _label(state, batch_size), state, batch_size, costs[id(state)], seconds, id(state) == reference_id
            )
        )
    return timings


def _time_steps(
    setup, model: torch.nn.Module, batch: dict[str, torch.Tensor], state: StageState, device: torch.device
) -> float:
    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    for index in range(WARMUP_STEPS + TIMED_STEPS):
        synchronize()
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        setup.training_loss(model, batch, state).backward()
        synchronize()
        if index >= WARMUP_STEPS:
            times.append(time.perf_counter() - start)
    # The median, not the mean: one step slowed by another process would otherwise skew a shape's time.
    return statistics.median(times)


def _label(state: StageState, batch_size: int) -> str:
    parts = [f"{field} {getattr(state, field)}" for field in SHAPE_FIELDS[:3] if getattr(state, field) is not None]
    return ", ".join(parts or ["full size (no curriculum)"]) + f", batch {batch_size}"


def smallest_vs_full(timings: list[StageTiming]) -> str:
    """One line: the cheapest predicted stage's measured time per sample over the full-size one's."""
    reference = next(t for t in timings if t.is_reference)
    smallest = min(timings, key=lambda t: t.predicted_cost)
    measured = smallest.seconds_per_sample / reference.seconds_per_sample
    return (
        f"smallest stage ({smallest.label}): measured {measured:.3f} × the full-size time per sample,"
        f" predicted {smallest.predicted_cost / reference.predicted_cost:.3f} ×"
    )


def print_timings(timings: list[StageTiming], console: Console) -> None:
    """A table of measured step times beside the predicted relative cost, then :func:`smallest_vs_full`."""
    reference = next(t for t in timings if t.is_reference)
    table = Table(
        title="measured forward+backward on random inputs; cost per sample relative to full size", title_justify="left"
    )
    for header in ("stage shape", "batch/device", "ms/step", "predicted cost", "measured cost"):
        table.add_column(header, justify="left" if header == "stage shape" else "right", no_wrap=True)
    for timing in timings:
        table.add_row(
            timing.label,
            str(timing.per_device_batch),
            f"{1000 * timing.seconds_per_step:.1f}",
            f"{timing.predicted_cost:.3f}",
            f"{timing.seconds_per_sample / reference.seconds_per_sample:.3f}",
        )
    print_unsqueezed(table, console)
    console.print(smallest_vs_full(timings), markup=False)
