"""Peak extra memory of a case's relucore call, measured in a fresh process (Linux).

A case that asks for it (``peak_memory = True``) is run again by ``python -m relucore.bench.memory``:
inputs built, one warm-up call (OpenMP threads, OpenBLAS's buffers, first-touch of code), then the
scratch buffers relucore keeps between calls are freed (``relucore.release_scratch()``, so the measured
call allocates them again), ``VmHWM`` (the peak resident set) is reset through
``/proc/self/clear_refs``, the call runs once more, and its peak over the resident set just before
it is the call's extra memory. ``scratch`` is that minus the bytes of the returned arrays (outputs a
caller needs anyway); ``retained`` is what stays resident after the call (the kept scratch).

The process runs with ``MALLOC_MMAP_THRESHOLD_`` fixed at 64 KiB: every large buffer is then its own
mapping, returned to the system when freed, so one call's freed buffers cannot hide the next call's
(glibc's default threshold adapts upward and keeps freed blocks resident). Inputs are faulted in
before the measurement, so they are not counted. The kernel's RSS counters are per-CPU and read
approximately (up to ~128 KiB per CPU unaccounted), so figures below ~0.25 MB are noise.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

_STATUS = "/proc/self/status"


def _status_kb(key: str) -> int:
    with open(_STATUS, encoding="ascii") as f:
        m = re.search(rf"^{key}:\s+(\d+)\s+kB", f.read(), re.M)
    if m is None:
        raise OSError(f"{key} not in {_STATUS}")
    return int(m.group(1))


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/self/clear_refs``); False if not permitted."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _nbytes(result) -> int:
    if isinstance(result, (tuple, list)):
        return sum(_nbytes(r) for r in result)
    return int(getattr(result, "nbytes", 0))


def measure_call(fn, inputs: tuple) -> Dict[str, int]:
    """Peak RSS growth of ``fn(*inputs)`` (after one warm-up call), and the bytes it returned."""
    fn(*inputs)  # warm-up
    gc.collect()
    import relucore as rc

    rc.release_scratch()
    if not reset_peak():
        raise OSError("cannot reset VmHWM (/proc/self/clear_refs not writable)")
    base = _status_kb("VmRSS")
    result = fn(*inputs)
    peak = _status_kb("VmHWM")
    outputs = _nbytes(result)
    del result
    gc.collect()
    retained = max(0, _status_kb("VmRSS") - base) * 1024
    delta = max(0, peak - base) * 1024
    return {"peak_rss_delta_bytes": delta, "output_bytes": outputs, "scratch_bytes": max(0, delta - outputs),
            "retained_bytes": retained}


def _child(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m relucore.bench.memory")
    p.add_argument("--suite", required=True)
    p.add_argument("--dtype", required=True)
    p.add_argument("--threads", type=int)
    p.add_argument("--quick", action="store_true")
    p.add_argument("ids", nargs="+")
    args = p.parse_args(argv)

    import importlib

    import relucore as rc

    if args.threads:
        rc.set_num_threads(args.threads)
    module = importlib.import_module(args.suite)
    try:
        all_cases = module.cases([], np.dtype(args.dtype), quick=args.quick)
    except TypeError:
        all_cases = module.cases([], np.dtype(args.dtype))
    by_id = {c.id: c for c in all_cases}
    out: Dict[str, Optional[dict]] = {}
    for case_id in args.ids:
        case = by_id.get(case_id)
        if case is None:
            out[case_id] = None
            continue
        inputs = case.make_inputs()
        out[case_id] = measure_call(case.relucore, inputs)
        del inputs
    json.dump(out, sys.stdout)
    return 0


def measure_cases(cases: Iterable, threads: int, quick: bool = False, timeout: float = 600) -> Dict[str, dict]:
    """``{case.id: figures}`` for the cases that set ``peak_memory``, one child process per suite.

    Raises OSError (with the child's message) when it cannot be measured here.
    """
    by_suite: Dict[tuple, List[str]] = {}
    for c in cases:
        if getattr(c, "peak_memory", False):
            by_suite.setdefault((c.suite, c.dtype), []).append(c.id)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    results: Dict[str, dict] = {}
    for (suite, dtype), ids in by_suite.items():
        cmd = [sys.executable, "-m", "relucore.bench.memory", "--suite", suite, "--dtype", dtype,
               "--threads", str(threads)] + (["--quick"] if quick else []) + ids
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise OSError(f"peak-memory child failed: {tail}")
        results.update({k: v for k, v in json.loads(proc.stdout).items() if v is not None})
    return results


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
