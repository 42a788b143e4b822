"""One uninterrupted reference run per world size, shared by the kill, signal and disk tests."""

from __future__ import annotations

import pytest
from engine_helpers import run_cli
from reliability.fault_helpers import reliability_recipe

from curricurun.cli import run


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """``reference_run(processes)`` -> (recipe, run directory) of the reliability recipe trained to the end."""
    made = {}

    def get(processes: int):
        if processes not in made:
            directory = tmp_path_factory.mktemp(f"reference-{processes}")
            recipe, run_dir = reliability_recipe(directory, processes), directory / "run"
            if processes == 1:  # in this process: no interpreter and torch start-up
                assert run(["train", str(recipe), "--output-dir", str(run_dir)]) == 0
            else:
                run_cli(["train", str(recipe), "--output-dir", str(run_dir)], processes)
            made[processes] = recipe, run_dir
        return made[processes]

    return get
