"""What the run was measured on: CPU, cores, relucore's runtime, library versions."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any, Optional

import numpy as np


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> list:
    """The SIMD-related CPU flags /proc/cpuinfo reports (x86: sse4_2, avx2, fma, avx512*)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags = value.split()
                    keep = ("sse4_2", "avx", "avx2", "fma", "f16c", "asimd", "sve")
                    return sorted(fl for fl in flags if fl in keep or fl.startswith("avx512"))
    except OSError:
        pass
    return []


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_bytes() -> int:
    """The machine's physical memory (a very large number where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def machine_info(rc: Any, torch: Optional[Any]) -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cores(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "relucore": getattr(rc, "__version__", None),
        "runtime_info": dict(rc.runtime_info()),
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "env": {k: v for k, v in os.environ.items() if k.startswith(("RELUCORE_", "OMP_", "OPENBLAS_"))},
    }
    return info
