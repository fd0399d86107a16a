"""The benchmark process's malloc: keep freed memory, so that no library's figures depend on what ran
before it.

glibc serves large blocks with ``mmap`` and gives them back on ``free``; its threshold for that, and
for trimming the heap, moves with the sizes freed so far. A NumPy temporary of a few MB is therefore
page-faulted in again on every call in a fresh process and not after some earlier case freed a
larger block: the same NumPy training step measured 62 ms fresh and 41 ms later in one process
(2026-11-30). relucore's outputs come from its own cache and do not care. Fixing both thresholds at
the start makes every library's freed blocks come back without page faults, which is the steady
state NumPy and PyTorch can reach at best: ratios against them are the conservative ones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Optional

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the heap (glibc's largest accepted threshold on 64-bit)
MMAP_THRESHOLD = 32 << 20
#: free heap memory kept before the top is given back
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> Optional[str]:
    """Fix glibc's mmap and trim thresholds for this process; a description of what was set, or None
    where there is no glibc ``mallopt`` (other C libraries: left as they are)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return None
    return (f"glibc malloc keeps freed memory (mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold "
            f"{TRIM_THRESHOLD >> 20} MiB): freed temporaries are reused without page faults")
