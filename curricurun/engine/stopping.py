"""Stopping a run on purpose: a non-finite loss or gradient norm, and SIGINT / SIGTERM.

Both are decided once per optimizer step, before ``optimizer.step()``, and every rank decides the same:
with more than one process the three flags (non-finite, SIGINT, SIGTERM) travel in one all-reduce (MAX)
of a 3-element tensor. The cost is that all-reduce (none on one process) plus one device-to-host copy of
the flags, i.e. one host sync per step on a GPU; on CPU it is a few microseconds.

Signals: the first SIGINT/SIGTERM only sets a flag; the loop finishes the step, writes a checkpoint (so
``--resume`` continues exactly) and exits 130 / 143. The handler then puts the default action back, so a
second signal ends the process at once, even inside a blocking collective.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

import torch

from curricurun.errors import Interrupted, NonFiniteStop

EXIT_NONFINITE = 3
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def stop_run(accelerator, code: int, message: str) -> NoReturn:
    """Tear the process group down, then raise what ``cli.run`` maps to ``code`` (3, or 128 + signal)."""
    accelerator.end_training()
    if code == EXIT_NONFINITE:
        raise NonFiniteStop(message)
    raise Interrupted(code - 128, message)


class InterruptRequests:
    """SIGINT/SIGTERM handlers that ask the loop to stop at the next step boundary.

    Before :meth:`arm` (data loading, model building) a signal acts as usual: there is nothing to save.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def arm(self) -> None:
        if not _in_main_thread():
            return  # signal handlers can only be set from the main thread (tests may train in a thread)
        for signum in EXIT_CODES:
            self._previous[signum] = signal.signal(signum, self._handle)

    def disarm(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        self.received = signum
        signal.signal(signum, signal.SIG_DFL)  # a second one stops at once
        if signum == signal.SIGINT:  # Ctrl-C: a second Ctrl-C (SIGINT) or a SIGTERM both stop at once
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if os.environ.get("RANK", "0") != "0":
            return
        print(
            f"{signal.Signals(signum).name}: stopping after this step (a checkpoint is written);"
            " send it again to stop at once",
            file=sys.stderr,
            flush=True,
        )


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class StepGuard:
    """The per-step decision: go on, skip this update (``on_nonfinite: skip_step``), or stop.

    Args:
        accelerator: the run's Accelerator (process count, device, gradient scaler).
        policy: ``training.on_nonfinite`` (``stop`` or ``skip_step``).
        interrupts: the run's signal flags.
    """

    def __init__(self, accelerator, policy: str, interrupts: InterruptRequests):
        self.accelerator = accelerator
        self.policy = policy
        self.interrupts = interrupts
        # With fp16's GradScaler an infinite gradient norm is the scaler's business: it skips the step and
        # lowers the scale (torch.amp.GradScaler.step); only a non-finite loss stops the run.
        self.scaler_decides_gradients = getattr(accelerator, "scaler", None) is not None
        self.skipped_nonfinite = 0
        self.skipped_by_scaler = 0

    def keep_buffers(self, model) -> None:
        """``skip_step`` only: copy the buffers (BatchNorm running statistics) before the step's forward passes,
        which update them even when the update is then dropped; a non-finite forward would poison them."""
        if self.policy == "skip_step":
            self._buffers = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]

    def restore_buffers(self) -> None:
        with torch.no_grad():
            for buffer, kept in getattr(self, "_buffers", ()):
                buffer.copy_(kept)

    def check(self, step_loss: torch.Tensor, grad_norm: torch.Tensor | None) -> tuple[bool, int | None]:
        """(non-finite on any rank, signal to stop for) — the same answer on every rank."""
        values = [step_loss.detach().float().reshape(())]
        if grad_norm is not None and not self.scaler_decides_gradients:
            values.append(torch.as_tensor(grad_norm, device=step_loss.device).detach().float().reshape(()))
        bad = (~torch.isfinite(torch.stack(values))).any()
        if self.accelerator.num_processes == 1:
            return bool(bad), self.interrupts.received
        received = self.interrupts.received
        flags = torch.stack(
            [
                bad.float(),
                torch.tensor(float(received == signal.SIGINT), device=bad.device),
                torch.tensor(float(received == signal.SIGTERM), device=bad.device),
            ]
        )
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        nonfinite, sigint, sigterm = (bool(flag) for flag in flags.cpu())
        return nonfinite, signal.SIGTERM if sigterm else signal.SIGINT if sigint else None

    def on_nonfinite(self, step: int, epoch: float, stage: dict, last_checkpoint, reporter) -> None:
        """``stop``: one line naming the step, stage and last good checkpoint, exit 3. ``skip_step``: count it."""
        where = f"step {step + 1} (epoch {epoch:.2f}, {' '.join(f'{k}={v}' for k, v in stage.items()) or 'no stage'})"
        if self.policy == "stop":
            reporter.stop()
            stop_run(
                self.accelerator,
                EXIT_NONFINITE,
                f"non-finite loss or gradient norm at {where}: stopped before the update;"
                f" last good checkpoint: {last_checkpoint or 'none'}",
            )
        self.skipped_nonfinite += 1
        self.restore_buffers()
        reporter.print(f"skipped {where}: non-finite loss or gradient norm ({self.skipped_nonfinite} so far)")

    def count_scaler_skip(self, optimizer) -> None:
        """fp16: count the steps the GradScaler skipped (Accelerate's ``step_was_skipped``)."""
        if self.scaler_decides_gradients and getattr(optimizer, "step_was_skipped", False):
            self.skipped_by_scaler += 1

    def log_fields(self) -> dict[str, int]:
        fields = {}
        if self.policy == "skip_step":
            fields["skipped_nonfinite_steps"] = self.skipped_nonfinite
        if self.scaler_decides_gradients:
            fields["skipped_by_grad_scaler"] = self.skipped_by_scaler
        return fields
