"""training.host_memory: 'retain' keeps freed host memory for the next step; 'system' leaves malloc alone.

Each case runs in its own interpreter: the setting is process-wide and must not leak into the test process.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from curricurun.engine.host_memory import retain_freed_memory

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# A step-like pattern: a 48 MB activation (above glibc's largest dynamic mmap threshold, 32 MB) and a few
# smaller ones, allocated, written and freed; minor page faults counted per repetition after a warm-up.
_PROBE = """
import resource, sys
import torch
from curricurun.engine.host_memory import retain_freed_memory
applied = retain_freed_memory(sys.argv[1])
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    tensors = [torch.empty(12_000_000).fill_(1.0)] + [torch.empty(1_500_000).fill_(2.0) for _ in range(6)]
    del tensors
for _ in range(3):
    step()
start = faults()
for _ in range(10):
    step()
print(applied, (faults() - start) / 10)
"""


def _faults_per_step(policy: str) -> tuple[str, float]:
    done = subprocess.run([sys.executable, "-c", _PROBE, policy], capture_output=True, text=True, check=True)
    applied, faults = done.stdout.split()
    return applied, float(faults)


@glibc_only
def test_retain_reuses_the_pages_of_the_last_step_where_the_system_default_faults_them_in_again():
    applied, retained = _faults_per_step("retain")
    assert applied == "True"
    system_applied, system = _faults_per_step("system")
    assert system_applied == "False"
    # 48 MB are 11,700 pages: the default allocator maps and unmaps them on every step, 'retain' keeps them.
    assert system > 10_000
    assert retained < 200


def test_system_changes_nothing():
    assert retain_freed_memory("system") is False
