"""Suite-wide settings for `make test`, which runs the suite on every core with pytest-xdist (``-n auto``).

Each xdist worker is one process on one core: its torch runs one thread (``OMP_NUM_THREADS=1`` for the processes
the tests start), since two workers with a thread per core each would oversubscribe the cores, and an OpenMP team
that waits for a busy core spins (measured on 2 cores: the pose learning tests went from 80 to 364 s). The tests
marked slow are collected first, so that the long ones start at once instead of ending the run on one worker; the
Makefile's ``--maxschedchunk 1`` hands tests out one at a time (xdist's default first sends each worker a contiguous
quarter of the collection, which put every slow test on the same worker).
"""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the order is otherwise kept
