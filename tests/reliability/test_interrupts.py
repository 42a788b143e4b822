"""Ctrl-C (SIGINT) and SIGTERM during ``train``: stop at the step boundary with a checkpoint, exit 130/143,
and ``--resume`` continues bit for bit; a second signal stops at once."""

from __future__ import annotations

import signal
import time

import psutil
import pytest
from engine_helpers import needs_fashion_mnist, small_recipe
from reliability.fault_helpers import bitwise_equal, kill9, reliability_recipe, start, wait_for

from curricurun.cli import run
from curricurun.engine.checkpoint import latest_checkpoint


def _started(run_dir):
    return lambda: (run_dir / "metrics.jsonl").exists()


@needs_fashion_mnist
@pytest.mark.slow
def test_ctrl_c_checkpoints_at_the_step_boundary_exits_130_and_resumes_exactly(tmp_path, reference_run):
    recipe, reference = reference_run(1)
    run_dir = tmp_path / "interrupted"
    process = start(["train", str(recipe), "--output-dir", str(run_dir)])
    assert wait_for(_started(run_dir), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopping after this step" in stderr
    stopped = latest_checkpoint(run_dir)
    step = int(stopped.name.split("-")[1])
    assert 5 <= step < 40 and f"stopped at step {step} of 40; checkpoint {stopped}" in stderr
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")]
    assert run(["train", str(recipe), "--output-dir", str(run_dir), "--resume"]) == 0
    assert bitwise_equal(reference, run_dir)


@needs_fashion_mnist
@pytest.mark.slow
def test_a_second_signal_stops_at_once(tmp_path):
    recipe = small_recipe(tmp_path, training={"epochs": 20, "log_every_steps": 5})
    run_dir = tmp_path / "run"
    process = start(["train", str(recipe), "--output-dir", str(run_dir)])
    assert wait_for(_started(run_dir), process)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            kill9(process)
    assert process.returncode in (-signal.SIGTERM, 143)


@needs_fashion_mnist
@pytest.mark.slow
def test_sigterm_to_torchrun_stops_both_ranks_at_the_same_step_with_a_checkpoint(tmp_path):
    recipe = reliability_recipe(tmp_path, 2)
    run_dir = tmp_path / "run"
    process = start(["train", str(recipe), "--output-dir", str(run_dir)], processes=2)
    assert wait_for(_started(run_dir), process)
    workers = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)  # torchrun forwards it to its workers
    _, stderr = process.communicate(timeout=120)
    time.sleep(0.5)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    # The only traceback is torchrun's own (it re-raises the signal as SignalException and exits 1).
    assert stderr.count("Traceback") <= 1 and ("Traceback" not in stderr or "SignalException" in stderr)
    stopped = latest_checkpoint(run_dir)
    step = int(stopped.name.split("-")[1])
    # Both ranks report the same step (the all-reduced stop flag); the resume itself is the kill test's business.
    assert stderr.count(f"stopped at step {step} of 40; checkpoint {stopped}") == 2, stderr
