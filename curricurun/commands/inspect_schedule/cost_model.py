"""The cost model of ``inspect-schedule --measure``: from a few timed steps per stage to the run's wall-clock.

Pure arithmetic on measured seconds (no torch), so that every number the forecast prints can be worked out by
hand from the repeats (``tests/commands/test_cost_model.py`` does).

Per stage shape, two things are timed, each a few times after a warm-up: the model's optimizer step
(forward + backward of every micro-batch, clipping, the optimizer step) and the loader delivering that step's
micro-batches. They are combined by the **overlap model** of PyTorch's DataLoader:

- ``serial`` (``data.num_workers: 0``): the main process loads a batch, then steps the model; a step costs
  loader + model;
- ``parallel`` (workers): workers prepare the next batches while the model steps; a step costs the slower of the
  two (this assumes spare cores for the workers; on a machine with none the forecast is optimistic).

The **bound** of a stage is the larger of the two. A run's forecast is Σ over shapes of steps × median step time,
plus each shape's measured first-step extra (the warm-up a new shape costs once: allocation, autotuning). The
uncertainty (±) of a median is its standard error, 1.2533 · σ/√n with σ = 1.4826 · MAD of the repeats (the
normal-consistent median absolute deviation, robust to one step slowed by another process); stage errors are
added linearly over a run (a machine that is slower is slower for every stage). Shapes are timed in alternated
rounds (:func:`merged` pools them), so that a machine slowing down for a few seconds slows every shape a little
rather than one shape a lot: the saving compares shapes, and drift common to all of them cancels there.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

Overlap = Literal["serial", "parallel"]
Bound = Literal["model", "loader"]

MAD_TO_SIGMA = 1.4826
"""σ of a normal distribution over its median absolute deviation."""
MEDIAN_EFFICIENCY = 1.2533
"""Standard error of the median of n normal samples over σ/√n (√(π/2))."""


@dataclass(frozen=True)
class Repeats:
    """Timed repeats of one quantity, in seconds, warm-up already excluded."""

    seconds: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.seconds:
            raise ValueError("Repeats: at least one timed repeat is needed")

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def error(self) -> float:
        """Standard error of the median: 1.2533 · 1.4826 · MAD / √n (0 for a single repeat)."""
        n = len(self.seconds)
        if n < 2:
            return 0.0
        middle = self.median
        mad = statistics.median(abs(value - middle) for value in self.seconds)
        return MEDIAN_EFFICIENCY * MAD_TO_SIGMA * mad / math.sqrt(n)


@dataclass(frozen=True)
class StageMeasurement:
    """What was timed at one stage shape.

    Attributes:
        label: the shape, e.g. ``"resolution 20, batch 128"``.
        key: the shape's fields (resolution, bandwidth, scale_index, batch_size, stage_ratios) that are set.
        model: seconds of one optimizer step of the model.
        loader: seconds for the loader to deliver one optimizer step's micro-batches.
        model_first_extra: seconds the first model step at this shape took beyond the median (its warm-up).
        loader_first_extra: the same for the loader's first step (worker start-up); counted once per run.
        pixel_cost: the plan's cost of one optimizer step at this shape relative to a full-size step (its
            per-sample pixel or token cost × its batch over the full batch).
    """

    label: str
    key: dict[str, Any]
    model: Repeats
    loader: Repeats
    model_first_extra: float = 0.0
    loader_first_extra: float = 0.0
    pixel_cost: float = 1.0


def merged(rounds: list[StageMeasurement]) -> StageMeasurement:
    """One shape's measurement from several timing rounds: the timed repeats pooled; the first-step extras (a
    shape's warm-up, the loader's start-up, paid once in a run) from the first round, when the shape was new."""
    if not rounds:
        raise ValueError("merged: at least one round is needed")
    first = rounds[0]
    return StageMeasurement(
        first.label,
        first.key,
        Repeats(tuple(t for part in rounds for t in part.model.seconds)),
        Repeats(tuple(t for part in rounds for t in part.loader.seconds)),
        first.model_first_extra,
        first.loader_first_extra,
        first.pixel_cost,
    )


@dataclass(frozen=True)
class StageForecast:
    """One shape's predicted step time under the overlap model, and how many optimizer steps of a run use it."""

    measurement: StageMeasurement
    steps: int
    overlap: Overlap

    @property
    def seconds_per_step(self) -> float:
        model, loader = self.measurement.model.median, self.measurement.loader.median
        return model + loader if self.overlap == "serial" else max(model, loader)

    @property
    def error(self) -> float:
        """± of :attr:`seconds_per_step`: the errors of both parts when serial, of the slower one when parallel."""
        model, loader = self.measurement.model, self.measurement.loader
        if self.overlap == "serial":
            return model.error + loader.error
        return model.error if self.bound == "model" else loader.error

    @property
    def bound(self) -> Bound:
        return "loader" if self.measurement.loader.median > self.measurement.model.median else "model"

    @property
    def seconds(self) -> float:
        """This shape's share of the run: steps × step time + the shape's model warm-up once."""
        return self.steps * self.seconds_per_step + (self.measurement.model_first_extra if self.steps else 0.0)


@dataclass(frozen=True)
class RunForecast:
    """The whole training loop's predicted wall-clock with the curriculum and without it.

    Attributes:
        stages: the curriculum run's shapes in training order, each with its step count.
        reference: the full-size shape with the step count of the same recipe without its curriculum.
        has_curriculum: False for a recipe without one (then both runs are the same run).
        excluded: what the forecast does not time (evaluation, checkpointing), one phrase each.
    """

    stages: list[StageForecast]
    reference: StageForecast
    has_curriculum: bool = True
    excluded: list[str] = field(default_factory=list)

    @property
    def with_curriculum_seconds(self) -> float:
        startup = self.stages[0].measurement.loader_first_extra if self.stages else 0.0
        return sum(stage.seconds for stage in self.stages) + startup

    @property
    def without_curriculum_seconds(self) -> float:
        return self.reference.seconds + self.reference.measurement.loader_first_extra

    @property
    def with_curriculum_error(self) -> float:
        return sum(stage.steps * stage.error for stage in self.stages)

    @property
    def without_curriculum_error(self) -> float:
        return self.reference.steps * self.reference.error

    @property
    def saving_seconds(self) -> float:
        return self.without_curriculum_seconds - self.with_curriculum_seconds

    @property
    def saving_percent(self) -> float:
        without = self.without_curriculum_seconds
        return 100.0 * self.saving_seconds / without if without else 0.0

    @property
    def saving_error(self) -> float:
        return self.with_curriculum_error + self.without_curriculum_error

    @property
    def saves_time(self) -> bool:
        """A saving is claimed only when it is larger than its uncertainty."""
        return self.has_curriculum and self.saving_seconds > self.saving_error

    def limiting_stage(self) -> StageForecast | None:
        """The curriculum stage that falls furthest short of its pixel saving: its measured cost per sample over
        the full size's, minus its pixel cost (what the forecast's "does not save" line names)."""
        reduced = [s for s in self.stages if s.steps and s.measurement.pixel_cost < 1.0 - 1e-9]
        if not reduced:
            return None
        return max(reduced, key=lambda s: self.measured_cost(s) - s.measurement.pixel_cost)

    def measured_cost(self, stage: StageForecast) -> float:
        """Predicted step time of ``stage`` over the full-size step's (per step; a stage with another batch size
        compares per step too, so its pixel cost is per sample × its batch share)."""
        full = self.reference.seconds_per_step
        return stage.seconds_per_step / full if full else 0.0

    def verdict(self) -> str:
        """One line: the saving in minutes and percent, or that there is none and which bound stops it."""
        if not self.has_curriculum:
            return "no curriculum: nothing to save"
        if self.saves_time:
            return (
                f"the curriculum saves {duration(self.saving_seconds, self.saving_error)}"
                f" ({self.saving_percent:.1f} %) of the training loop"
            )
        stage = self.limiting_stage()
        change = "costs" if self.saving_seconds < 0 else "saves"
        spread = 100 * self.saving_error / max(self.without_curriculum_seconds, 1e-12)
        amount = f"{change} {abs(self.saving_percent):.1f} % ± {spread:.1f}"
        if stage is None:
            return f"the curriculum does not save time on this machine ({amount})"
        parts = stage.measurement
        return (
            f"the curriculum does not save time on this machine ({amount}): its {parts.label} stage is"
            f" {stage.bound}-bound, {self.measured_cost(stage):.2f} × the full-size step for"
            f" {parts.pixel_cost:.2f} × the pixels (model {1000 * parts.model.median:.1f} ms,"
            f" loader {1000 * parts.loader.median:.1f} ms per step)"
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` ``forecast`` object and the stored ``forecast.json`` (times in seconds)."""
        return {
            "stages": [stage_dict(stage, self.measured_cost(stage)) for stage in self.stages],
            "without_curriculum": stage_dict(self.reference, 1.0),
            "overlap": self.reference.overlap,
            "startup_seconds": self.stages[0].measurement.loader_first_extra if self.stages else 0.0,
            "with_curriculum_seconds": self.with_curriculum_seconds,
            "with_curriculum_error_seconds": self.with_curriculum_error,
            "without_curriculum_seconds": self.without_curriculum_seconds,
            "without_curriculum_error_seconds": self.without_curriculum_error,
            "saving_minutes": self.saving_seconds / 60,
            "saving_percent": self.saving_percent,
            "saving_error_minutes": self.saving_error / 60,
            "saves_time": self.saves_time,
            "verdict": self.verdict(),
            "excluded": list(self.excluded),
        }


def duration(seconds: float, error: float) -> str:
    """``1.23 ± 0.04 min``, or seconds under two minutes (``41.0 ± 1.2 s``)."""
    if abs(seconds) < 120:
        return f"{seconds:.1f} ± {error:.1f} s"
    return f"{seconds / 60:.2f} ± {error / 60:.2f} min"


def stage_dict(stage: StageForecast, measured_cost: float) -> dict[str, Any]:
    """One stage of :meth:`RunForecast.as_dict`: its shape, steps, ms per step ± and the parts."""
    parts = stage.measurement
    return {
        "shape": parts.label,
        **parts.key,
        "steps": stage.steps,
        "ms_per_step": 1000 * stage.seconds_per_step,
        "ms_per_step_error": 1000 * stage.error,
        "bound": stage.bound,
        "model_ms_per_step": 1000 * parts.model.median,
        "loader_ms_per_step": 1000 * parts.loader.median,
        "first_step_extra_ms": 1000 * parts.model_first_extra,
        "pixel_cost": parts.pixel_cost,
        "measured_cost": measured_cost,
        "seconds": stage.seconds,
    }
