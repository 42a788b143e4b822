"""kill -9 at random moments (and in the middle of a checkpoint write), then ``--resume``: the final
model, EMA and optimizer equal an uninterrupted run's bit for bit, on 1 and 2 processes.

``CURRICURUN_KILL_TRIALS`` sets the number of kills per world size (default 2 on one process, 1 on two).
Kills alternate: at a random moment after a checkpoint, then in the middle of a checkpoint write; the
recipe is one epoch, so two kills give two resumes inside one epoch.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from engine_helpers import needs_fashion_mnist, run_cli
from reliability.fault_helpers import bitwise_equal, kill9, start, wait_for, writing_checkpoint

from curricurun.cli import run
from curricurun.engine.checkpoint import latest_checkpoint

TRIALS = os.environ.get("CURRICURUN_KILL_TRIALS")


def _newest_step(run_dir) -> int:
    latest = latest_checkpoint(run_dir)
    return int(latest.name.split("-")[1]) if latest else 0


def _kill_until_done(recipe, run_dir, processes, rng, kills_left):
    """Start/resume the run, kill -9 it, repeat; then let it finish. Returns (kills, steps killed at)."""
    killed_at = []
    while kills_left > 0:
        before = _newest_step(run_dir)
        args = ["train", str(recipe), "--output-dir", str(run_dir)] + (["--resume"] if before else [])
        process = start(args, processes)
        if len(killed_at) % 2 == 1:  # in the middle of a checkpoint write
            reached = wait_for(writing_checkpoint(run_dir), process)
        else:  # at a random moment after the next checkpoint
            reached = wait_for(lambda before=before: _newest_step(run_dir) > before, process)
            if reached:
                time.sleep(rng.uniform(0.0, 0.4))
        if not reached or process.poll() is not None:
            process.communicate()
            assert process.returncode == 0, process.stderr
            return killed_at
        kill9(process)
        killed_at.append(_newest_step(run_dir))
        kills_left -= 1
    resume = ["train", str(recipe), "--output-dir", str(run_dir), "--resume"]
    if processes == 1:  # in this process: no interpreter and torch start-up
        assert run(resume) == 0
    else:
        assert "Traceback" not in run_cli(resume, processes).stderr
    return killed_at


@needs_fashion_mnist
@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_kill9_anywhere_then_resume_equals_the_uninterrupted_run(tmp_path, processes, reference_run):
    recipe, reference = reference_run(processes)
    trials = int(TRIALS) if TRIALS else 3 - processes  # CI: 2 kills on one process, 1 on two
    rng = random.Random(16 + processes)
    kills, episode, outcomes = 0, 0, []
    while kills < trials:
        run_dir = tmp_path / f"killed-{episode}"
        killed_at = _kill_until_done(recipe, run_dir, processes, rng, min(trials - kills, 4))
        kills += len(killed_at)
        assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")], "stale partial checkpoint kept"
        outcomes.append((killed_at, bitwise_equal(reference, run_dir)))
        episode += 1
    print(f"kill -9 trials on {processes} process(es): {kills}; episodes (checkpoint step at each kill, equal):")
    for killed_at, equal in outcomes:
        print(f"  {killed_at} -> {'bitwise equal' if equal else 'DIFFERENT'}")
    assert all(equal for _, equal in outcomes)
    assert trials < 2 or any(len(killed_at) >= 2 for killed_at, _ in outcomes)  # two resumes in the one epoch
