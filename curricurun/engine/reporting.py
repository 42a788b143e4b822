"""What a run tells its user: a live progress bar, JSON-lines metrics, trackers and a final summary.

Only the main process reports; other ranks get a reporter that does nothing, so the loop has no
``if is_main_process`` scattered through it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


class Reporter:
    """Progress bar on stderr, ``metrics.jsonl`` in the run directory, Accelerate trackers when asked.

    Args:
        run_dir: where ``metrics.jsonl`` goes.
        accelerator: used for ``accelerator.log`` when trackers are configured.
        enabled: False on non-main ranks.
        live: False when stderr is not a terminal-like stream worth redrawing (tests, CI logs).
    """

    def __init__(self, run_dir: Path, accelerator, enabled: bool, use_trackers: bool, live: bool = True):
        self.enabled = enabled
        self.accelerator = accelerator
        self.use_trackers = use_trackers
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.metrics_path = run_dir / "metrics.jsonl"
        self._bar: Progress | None = None
        self._task = None
        self._live = live and self.console.is_terminal
        self._last_print = 0.0
        self._total = 0

    def print(self, message: str) -> None:
        if self.enabled:  # markup off: "[reference_batch 128 given]" is text, not a rich tag
            self.console.print(message, markup=False)

    def start(self, total_steps: int, start_step: int) -> None:
        self._total = total_steps
        if not (self.enabled and self._live):
            return
        self._bar = Progress(
            TextColumn("[bold]step"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=total_steps, completed=start_step, info="")

    def advance(self, step: int, info: str) -> None:
        """Called after each optimizer step; cheap (the bar redraws on its own timer)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=info)
        elif info and time.monotonic() - self._last_print > 10:
            # Not a terminal (CI, a log file): one plain line at most every 10 s instead of a redrawn bar.
            self._last_print = time.monotonic()
            self.console.print(f"step {step}/{self._total} {info}", markup=False)

    def log(self, record: dict[str, Any], step: int) -> None:
        """Append one JSON line and forward to the trackers."""
        if not self.enabled:
            return
        with self.metrics_path.open("a") as stream:
            stream.write(json.dumps({"step": step, **record}) + "\n")
        if self.use_trackers:
            numbers = {k: v for k, v in record.items() if isinstance(v, (int, float))}
            self.accelerator.log(numbers, step=step)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def summary(self, title: str, rows: list[tuple[str, str]]) -> None:
        if not self.enabled:
            return
        table = Table(title=title, show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(key, value)
        self.console.print(table)
