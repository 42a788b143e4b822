"""Measured milliseconds per optimizer step, per stage shape, and the check of a stored forecast against them.

``inspect-schedule --measure`` forecasts the training loop's wall-clock from a few timed steps per stage shape
and stores the forecast as ``forecast.json`` in the run directory. The training loop times every step here
(from the top of the step to the end of its optimizer update and logging: evaluation and checkpointing are
outside, as the forecast lists them as excluded), logs ``ms_per_step`` with each metrics record, and at the end
prints one line comparing the forecast with what the run measured, when a forecast for the same recipe is
stored. It also writes ``step_timing.json`` (the measured seconds per shape) next to the metrics, which
``bench/forecast_accuracy.py`` reads.

Torch-free, so ``inspect-schedule`` can import the shared pieces (:func:`shape_key`, the file names, the recipe
fingerprint) without the engine.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

SHAPE_FIELDS = ("resolution", "bandwidth", "scale_index", "batch_size", "stage_ratios")
"""The stage fields that change what one step costs: two steps with the same values have the same shape."""

FORECAST_FILE = "forecast.json"
TIMING_FILE = "step_timing.json"


def shape_key(state) -> dict[str, Any]:
    """The set :data:`SHAPE_FIELDS` of a stage state, tuples as lists (JSON-ready)."""
    key: dict[str, Any] = {}
    for name in SHAPE_FIELDS:
        value = getattr(state, name, None)
        if value is not None:
            key[name] = list(value) if isinstance(value, tuple) else value
    return key


def shape_id(key: dict[str, Any]) -> str:
    """A stable text id of a :func:`shape_key` (``"-"`` for the full size without curriculum)."""
    return ",".join(f"{name}={json.dumps(key[name])}" for name in SHAPE_FIELDS if name in key) or "-"


def recipe_fingerprint(resolved: dict[str, Any]) -> str:
    """sha256 of the resolved recipe (its plain data, keys sorted): a forecast is compared only with its recipe."""
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_forecast(run_dir: Path, resolved: dict[str, Any], forecast: dict[str, Any]) -> Path:
    """Store ``forecast`` (:meth:`RunForecast.as_dict`) for ``train`` to compare with; written atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FORECAST_FILE
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps({"recipe_sha256": recipe_fingerprint(resolved), **forecast}, indent=1))
    partial.replace(path)
    return path


class StepTimer:
    """Wall time of each optimizer step, grouped by stage shape (main process; ranks step together)."""

    def __init__(self) -> None:
        self.per_shape: dict[str, list[float]] = {}
        self.keys: dict[str, dict[str, Any]] = {}
        self.window: list[float] = []
        self._start: float | None = None

    def begin(self) -> None:
        self._start = time.perf_counter()

    def end(self, state) -> None:
        """Close the step begun by :meth:`begin` at ``state``'s shape."""
        if self._start is None:
            return
        seconds = time.perf_counter() - self._start
        self._start = None
        key = shape_key(state)
        name = shape_id(key)
        self.keys.setdefault(name, key)
        self.per_shape.setdefault(name, []).append(seconds)
        self.window.append(seconds)

    def log_fields(self) -> dict[str, float]:
        """``ms_per_step``: the mean over the steps since the last call (the metrics record's window)."""
        if not self.window:
            return {}
        mean = 1000 * sum(self.window) / len(self.window)
        self.window = []
        return {"ms_per_step": round(mean, 3)}

    @property
    def total_seconds(self) -> float:
        return sum(sum(times) for times in self.per_shape.values())

    def summary(self) -> dict[str, Any]:
        """What ``step_timing.json`` holds: per shape the steps, their total and median seconds."""
        return {
            "loop_seconds": self.total_seconds,
            "shapes": [
                {
                    "shape": name,
                    **self.keys[name],
                    "steps": len(times),
                    "seconds": sum(times),
                    "median_ms_per_step": 1000 * statistics.median(times),
                }
                for name, times in self.per_shape.items()
            ],
        }

    def write(self, run_dir: Path) -> Path:
        path = run_dir / TIMING_FILE
        path.write_text(json.dumps(self.summary(), indent=1))
        return path

    def forecast_line(self, run_dir: Path, resolved: dict[str, Any]) -> str | None:
        """The forecast-vs-actual line, or None when no forecast is stored; a stale one is named, not compared."""
        path = run_dir / FORECAST_FILE
        if not path.is_file() or not self.per_shape:
            return None
        try:
            forecast = json.loads(path.read_text())
            stored = forecast["recipe_sha256"]
            stages = {shape_id(_key(stage)): stage for stage in forecast["stages"]}
        except (OSError, ValueError, KeyError, TypeError):
            return f"forecast: {path} cannot be read as a forecast; not compared"
        if stored != recipe_fingerprint(resolved):
            return f"forecast: {path} was made for another recipe (or other --set values); not compared"
        predicted = 0.0
        parts = []
        for name, times in self.per_shape.items():
            stage = stages.get(name)
            if stage is None:
                return f"forecast: {path} has no stage of shape {name}; not compared"
            ms = float(stage["ms_per_step"])
            # Only the steps this run made (a resumed or --stop-after run makes part of the plan).
            predicted += len(times) * ms / 1000 + (float(stage.get("first_step_extra_ms", 0)) / 1000)
            parts.append(f"{stage['shape']} {ms:.1f} → {1000 * statistics.median(times):.1f} ms")
        predicted += float(forecast.get("startup_seconds", 0.0))
        actual = self.total_seconds
        error = 100 * (predicted - actual) / actual if actual else 0.0
        return (
            f"forecast vs actual: training loop {predicted / 60:.2f} min predicted, {actual / 60:.2f} min measured"
            f" ({error:+.1f} %); ms/step predicted → measured median: {'; '.join(parts)}"
        )


def _key(stage: dict[str, Any]) -> dict[str, Any]:
    return {name: stage[name] for name in SHAPE_FIELDS if stage.get(name) is not None}
