"""One uninterrupted reference run per world size, shared by the kill, signal and disk tests."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import run_cli
from reliability.fault_helpers import reliability_recipe


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """Runs made in this process (the final ``--resume`` of a killed run) use the one thread the subprocess runs get
    (``OMP_NUM_THREADS=1``): a CPU convolution's backward sums in a thread-count-dependent order, so a run whose
    parts ran on different thread counts differs from the reference in the last bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """``reference_run(processes)`` -> (recipe, run directory) of the reliability recipe trained to the end.

    The reference is trained the way the interrupted runs are: ``python -m curricurun`` (torchrun for two) in a
    fresh process with ``OMP_NUM_THREADS=1``. An in-process reference differed from them in the last bits of the
    weights (a process that already ran other tests carries other library state), so "resumed == uninterrupted"
    is only tested when both sides start alike.
    """
    made = {}

    def get(processes: int):
        if processes not in made:
            directory = tmp_path_factory.mktemp(f"reference-{processes}")
            recipe, run_dir = reliability_recipe(directory, processes), directory / "run"
            run_cli(["train", str(recipe), "--output-dir", str(run_dir)], processes)
            made[processes] = recipe, run_dir
        return made[processes]

    return get
