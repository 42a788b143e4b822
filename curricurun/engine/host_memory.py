"""Keep freed host memory in the process during training, so that each step reuses the pages of the last.

On CPU, PyTorch allocates every activation and gradient with the C library's ``malloc`` (there is no caching
allocator as on CUDA). glibc returns the top of its heap to the kernel whenever more than ``M_TRIM_THRESHOLD``
bytes are free there, and serves large blocks with ``mmap`` that it unmaps on ``free``. Whether a training
step's tens of megabytes of activations end up returned and faulted back in (zeroed page by page) on every step
depends on what else happens to sit at the top of the heap: measured on bench/loader_throughput.py's whole run
(test_convnext, batch 16 at 224 px) curricurun's process did ~9 brk calls and ~14,000 minor page faults per step
where the plain timm loop did none, which cost it ~10 % of the step. ``retain`` tells glibc to keep what it
frees (``mallopt``: no trimming, no ``mmap`` for large blocks, so they come from the heap and are reused): the
behaviour of CUDA's caching allocator, and of the jemalloc/tcmalloc preload that PyTorch's CPU performance guide
recommends. The resident size then stays at the peak of a step. Other C libraries than glibc: nothing changes.

Loader workers fork from the process after this runs, and inherit the setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # bytes: mallopt takes a C int


@functools.cache
def _glibc():
    """glibc's handle, or None on another C library (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def retain_freed_memory(policy: str) -> bool:
    """Apply ``training.host_memory``: ``retain`` keeps freed memory (glibc); ``system`` leaves malloc as it is.

    Returns True when glibc accepted the setting.
    """
    libc = _glibc() if policy == "retain" else None
    if libc is None:
        return False
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)) and bool(libc.mallopt(_M_MMAP_MAX, 0))
