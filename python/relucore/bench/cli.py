"""``relucore-bench``: relucore next to NumPy and PyTorch, as a fraction of this machine's limits."""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import importlib
import inspect
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import cases as cases_mod
from .cases import IMPLS, Case, parse_size, size_label, snapshot
from .limits import (BLAS_IDLE_TIME, REFERENCE_COPY_ELEMENTS, SGEMM_SIZE, Limits, copy_figure, gemm_call,
                     gemm_figure)
from .machine import machine_info, memory_bytes, usable_cores
from .malloc import keep_freed_memory
from .noise import SPREAD_LIMIT, CacheProbe, check_machine, last_level_cache_bytes, noisy_spreads, verdict
from .peers import load_torch, to_numpy, to_torch
from .report import Progress, Table, fmt_num, write_json
from .timing import TimerConfig, Timing, measure, measure_interleaved

DEFAULT_SIZES = ("1K", "64K", "1M", "16M")
QUICK_SIZES = ("1K", "1M", "16M")
REF_LABEL = size_label(REFERENCE_COPY_ELEMENTS)


class BenchError(Exception):
    """A case that cannot be benchmarked (wrong result, or relucore raised): aborts the run."""


def collect_cases(sizes: Sequence[int], dtype: str, suites: Sequence[str], ops: Optional[str],
                  quick: bool) -> List[Case]:
    """:func:`relucore.bench.cases.collect`, passing ``quick`` to the suites whose ``cases`` take it."""
    patterns = [p.strip() for p in ops.split(",") if p.strip()] if ops else None
    found: List[Case] = []
    for name in suites:
        fn = importlib.import_module(name).cases
        kwargs = {"quick": quick} if "quick" in inspect.signature(fn).parameters else {}
        for case in fn(sizes, np.dtype(dtype), **kwargs):
            if patterns is None or any(fnmatch.fnmatchcase(case.op, p) for p in patterns):
                found.append(case)
    return found


def _gemm_label(dtype: str) -> str:
    return "%dgemm" if dtype == "float64" else "%sgemm"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="relucore-bench",
        description="Time relucore's kernels next to NumPy and (if installed) PyTorch, and as a "
        "fraction of this machine's copy bandwidth measured in the same run. Every relucore "
        "result is checked against NumPy before it is timed.",
    )
    p.add_argument("--sizes", metavar="LIST",
                   help=f"comma-separated element counts, e.g. 1K,1M or 1000 (default {','.join(DEFAULT_SIZES)}; "
                        f"--quick: {','.join(QUICK_SIZES)})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default float32")
    p.add_argument("--quick", action="store_true",
                   help="fewer sizes, layers and samples (whole run well under a minute)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="relucore.set_num_threads(N) (PyTorch gets the same); default: leave as is (all cores)")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch even if it is installed")
    p.add_argument("--ops", metavar="GLOBS", help="comma-separated op names or globs, e.g. 'relu*,elu' (see --list)")
    p.add_argument("--pct-of", choices=("same-size", REF_LABEL), default="same-size",
                   help="the %% column is relative to the copy of the same size (default) or to the "
                        f"{REF_LABEL} float32 copy; both go to --json")
    p.add_argument("--json", metavar="FILE", help="also write machine, limits and all rows as JSON")
    p.add_argument("--progress", action="store_true", help="show progress on stderr even when it is not a terminal")
    p.add_argument("--list", action="store_true", help="list the cases that would run, and exit")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's malloc thresholds as they are (by default they are fixed so that freed "
                        "memory is reused without page faults: NumPy's and PyTorch's figures then do not depend "
                        "on what ran before; see relucore.bench.malloc)")
    return p


def _threads(rc: Any) -> int:
    get = getattr(rc, "get_num_threads", None)
    return int(get()) if get is not None else int(rc.runtime_info()["num_threads"])


def _print_header(out, machine: Dict[str, Any], dtype: str, quick: bool, torch_note: str) -> None:
    ri = machine["runtime_info"]
    usable = ri.get("usable_isas")
    print(f"relucore {ri.get('version', machine.get('relucore'))}: isa {ri.get('isa')}"
          + (f" (usable: {', '.join(usable)})" if usable else "")
          + f", {ri.get('num_threads')} threads", file=out)
    flags = " ".join(f for f in machine["cpu_flags"] if f in ("avx2", "fma", "avx512f", "asimd", "sve"))
    print(f"machine: {machine['cpu']}, {machine['usable_cpus']} usable cores of {machine['logical_cpus']}"
          + (f" [{flags}]" if flags else ""), file=out)
    print(f"python {machine['python']}, numpy {machine['numpy']}, torch {torch_note}", file=out)
    print(f"dtype {dtype}; times are medians of repeated calls after a warm-up{' (--quick)' if quick else ''}",
          file=out)
    print(f"malloc: {machine['malloc']}", file=out)


def _print_limits(out, limits: Limits, sizes: Sequence[int], dtype: str, pct_of: str) -> None:
    ref = limits.copy_reference
    print(f"copy bandwidth, np.copyto read+write (2 x nbytes): {ref.gbps:.1f} GB/s at {REF_LABEL} float32", file=out)
    same = ", ".join(f"{size_label(n)} {limits.copy_same_size(n, dtype).gbps:.1f}" for n in sizes)
    print(f"  same-size copies ({dtype}), GB/s: {same}", file=out)
    which = ("a same-size copy timed in turns with each case" if pct_of == "same-size"
             else f"the {REF_LABEL} float32 copy above")
    print(f"  % column: share of the bandwidth of {which}", file=out)
    for dtype, gemm in limits.gemm.items():
        name = "dgemm" if dtype == "float64" else "sgemm"
        print(f"{name} {SGEMM_SIZE}^3 {dtype} through relucore's GEMM (relucore.linear): {gemm.gflops:.1f} GFLOP/s "
              f"(numpy.matmul: {gemm.numpy_gflops:.1f})", file=out)
        print(f"  compute rows: GFLOP/s, and % of this {name} rate timed in turns with each case (NumPy is "
              "timed alone, first: its idle BLAS threads spin for ~0.2 s)", file=out)
    if limits.gemm:
        rc = importlib.import_module("relucore")
        coretype = os.environ.get("OPENBLAS_CORETYPE")
        info = rc.runtime_info()
        print(f"  relucore's GEMM: {info.get('gemm')} (RELUCORE_GEMM=blas: {info.get('blas')}"
              + (f"; OPENBLAS_CORETYPE={coretype} is set" if coretype else "") + ")", file=out)
    print(file=out)


def measure_alone(calls: Dict[str, tuple], config: TimerConfig, rounds: int = 2) -> Dict[str, Timing]:
    """Each call timed alone, the calls in turns, ``rounds`` times, idling before each so that the
    previous one's spinning threads have gone to sleep; per call the mean of its rounds' medians
    (spread: the largest)."""
    got: Dict[str, List[Timing]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            time.sleep(BLAS_IDLE_TIME)
            got[name].append(measure(*call, config=config))
    return {k: Timing(median=statistics.fmean(t.median for t in v), min=min(t.min for t in v),
                      samples=sum(t.samples for t in v), number=v[0].number, spread=max(t.spread for t in v))
            for k, v in got.items()}


def run_case(case: Case, config: TimerConfig, limits: Limits, torch: Any, pct_of: str,
             warn=lambda msg: None, memory: Optional[Dict[str, Any]] = None, busy: bool = False) -> Dict[str, Any]:
    """Check relucore against NumPy once, then time every implementation; return the row.

    ``row["noisy"]``: the machine was busy, or a timing's repeats spread too far to trust the row.
    """
    where = f"{case.label} ({case.size}, {case.dtype}, shape {case.shape})"
    inputs = case.make_inputs()
    want = snapshot(case.numpy(*inputs))
    try:
        got = snapshot(case.relucore(*inputs))
    except Exception as exc:
        raise BenchError(f"relucore {where} raised {type(exc).__name__}: {exc}") from exc
    try:
        case.verify(got, want, inputs)
    except AssertionError as exc:
        raise BenchError(f"relucore {where} does not match NumPy; not timing a wrong result.\n{exc}") from exc

    calls = {"relucore": (case.relucore, inputs), "numpy": (case.numpy, inputs)}
    fn = case.impl("torch", torch)
    if fn is not None:
        t_inputs = to_torch(torch, inputs)
        try:
            case.verify(snapshot(to_numpy(torch, fn(*t_inputs))), want, inputs)
        except Exception as exc:  # our mapping to torch is wrong for this version: say so, go on
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            warn(f"torch {where}: result does not match NumPy, not timed ({type(exc).__name__}: {first})")
        else:
            calls["torch"] = (fn, t_inputs)
    if case.bytes:  # the same-size copy, timed in turns with the implementations
        calls["copy"] = (np.copyto, limits.copy_operands(case.n, case.dtype))
    elif case.flops and case.limit == "sgemm":  # likewise the GEMM limit
        calls["gemm"] = (gemm_call(), limits.gemm_operands(case.dtype))

    if case.flops:
        # NumPy's BLAS threads spin for ~0.2 s after each call and would halve whatever runs next: NumPy is
        # timed alone, first, and the others (relucore, PyTorch, the GEMM limit) in turns after it has idled.
        np_call = calls.pop("numpy")
        t_numpy = measure(*np_call, config=config)
        time.sleep(BLAS_IDLE_TIME)
        timings = measure_alone(calls, config) if case.peers_alone else \
            dict(zip(calls, measure_interleaved(list(calls.values()), config)))
        timings["numpy"] = t_numpy
    else:
        timings = dict(zip(calls, measure_interleaved(list(calls.values()), config)))
    t_rc, t_np, t_pt = timings["relucore"], timings["numpy"], timings.get("torch")

    row: Dict[str, Any] = {
        "op": case.op, "label": case.label, "suite": case.suite, "size": case.size, "n": case.n,
        "dtype": case.dtype, "shape": list(case.shape), "bytes": case.bytes, "flops": case.flops,
        "limit": case.limit,
        "relucore": t_rc.as_dict(), "numpy": t_np.as_dict(), "torch": t_pt.as_dict() if t_pt else None,
        "speedup_vs_numpy": t_np.median / t_rc.median,
        "speedup_vs_torch": (t_pt.median / t_rc.median) if t_pt else None,
        "rate": None, "pct": None, "pct_of": pct_of, "copy_same_size": None, "pct_of_copy_same_size": None,
        f"pct_of_copy_{REF_LABEL}": None,
        "target_pct": case.target_pct, "target_met": None,
        "spread": {k: t.spread for k, t in timings.items()},
    }
    row["noisy"] = noisy_spreads(row["spread"], busy)
    if case.bytes:
        rate = case.bytes / t_rc.median / 1e9
        copy = copy_figure(case.n, case.dtype, timings["copy"])
        same = 100 * rate / copy.gbps
        ref = 100 * rate / limits.copy_reference.gbps
        row.update({"rate": rate, "copy_same_size": copy.as_dict(), "pct_of_copy_same_size": same,
                    f"pct_of_copy_{REF_LABEL}": ref, "pct": same if pct_of == "same-size" else ref})
        if case.target_pct is not None:  # stated for a 16M case: its same-size copy is the 16M copy
            row["target_met"] = same >= case.target_pct
    elif case.flops:
        row["rate"] = case.flops / t_rc.median / 1e9
        if "gemm" in timings:
            gemm = gemm_figure(SGEMM_SIZE, timings["gemm"])
            row.update({"pct": 100 * row["rate"] / gemm, "pct_of": "sgemm" if case.dtype == "float32" else "dgemm",
                        "pct_label": _gemm_label(case.dtype),
                        "gemm_same_run": {"gflops": gemm, **timings["gemm"].as_dict()}})
    extra = getattr(case, "row_info", None)
    if extra is not None:
        row.update(extra())
    if memory is not None:
        row["memory"] = memory.get(case.id)
    return row


def row_target_lines(rows: List[Dict[str, Any]]) -> List[str]:
    """The verdict of each row with a target of its own (a % of copy bandwidth)."""
    lines = []
    for row in rows:
        if row["target_pct"] is not None:
            got = row["pct_of_copy_same_size"]
            lines.append(f"target: {row['label']} {row['size']} {row['dtype']} >= {row['target_pct']:.0f}% of "
                         f"copy bandwidth (same-size copy, timed in turns): {fmt_num(got, 0, '%')} -> "
                         f"{verdict(row['target_met'], row.get('noisy', False))}")
    return lines


def _writable(path: str) -> bool:
    """Whether ``path`` can be written: an existing writable file, or a new one in a writable directory."""
    if os.path.isdir(path):
        return False
    if os.path.exists(path):
        return os.access(path, os.W_OK)
    return os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout

    def err(msg: str) -> None:
        print(f"relucore-bench: {msg}", file=sys.stderr)

    try:
        sizes = [parse_size(s) for s in (args.sizes.split(",") if args.sizes is not None else
                                          (QUICK_SIZES if args.quick else DEFAULT_SIZES)) if s.strip()]
        if not sizes:
            raise ValueError("no sizes given")
    except ValueError as exc:
        err(f"error: --sizes: {exc}")
        return 2
    rc = importlib.import_module("relucore")
    limit = importlib.import_module("relucore.runtime").thread_limit()
    if args.threads is not None and not 1 <= args.threads <= limit:
        err(f"error: --threads must be in [1, {limit}], got {args.threads}")
        return 2
    if args.json and not _writable(args.json):  # before the run, not after it
        err(f"error: --json: cannot write {args.json!r}")
        return 2
    too_big = [n for n in sizes if 4 * n * 8 > memory_bytes()]  # a case's few arrays of float64
    if too_big:
        err(f"error: --sizes: {size_label(too_big[0])} elements do not fit in this machine's memory")
        return 2
    if args.threads is not None:
        rc.set_num_threads(args.threads)
    threads = _threads(rc)

    cases = collect_cases(sizes, args.dtype, cases_mod.SUITES, args.ops, args.quick)
    if not cases:
        err(f"error: no case matches --ops {args.ops!r}")
        return 2
    if args.list:
        for c in cases:
            print(f"{c.op:22} {c.size:>5}  {c.dtype}  shape {c.shape}"
                  + ("" if c.torch else "  (no torch peer)"), file=out)
        return 0

    torch = load_torch(not args.no_torch)
    if torch is not None:
        torch.set_num_threads(threads)
    torch_note = ("disabled (--no-torch)" if args.no_torch else
                  "not installed" if torch is None else f"{torch.__version__} ({torch.get_num_threads()} threads)")

    malloc_note = None if args.system_malloc else keep_freed_memory()
    config = TimerConfig.quick() if args.quick else TimerConfig()
    machine = machine_info(rc, torch)
    machine["malloc"] = malloc_note or "as the system sets it"
    _print_header(out, machine, args.dtype, args.quick, torch_note)
    cache_probe = CacheProbe.for_cache(last_level_cache_bytes())
    machine_check = check_machine(usable_cores(), cache=cache_probe.check() if cache_probe else None)
    print(machine_check.describe(), file=out)
    out.flush()

    gemm_dtypes = sorted({c.dtype for c in cases if c.limit == "sgemm"})
    mem_cases = [c for c in cases if getattr(c, "peak_memory", False)]
    progress = Progress(total=1 + len(sizes) + len(gemm_dtypes) + bool(mem_cases) + len(cases),
                        enabled=args.progress or sys.stderr.isatty())
    warnings: List[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        progress.clear()
        err(f"warning: {msg}")

    limits = Limits(config)
    rows: List[Dict[str, Any]] = []
    try:
        progress.step(f"copy bandwidth {REF_LABEL} float32")
        limits.measure_reference()
        for n in sizes:
            progress.step(f"copy bandwidth {size_label(n)} {args.dtype}")
            limits.copy_same_size(n, args.dtype)
        for dtype in gemm_dtypes:
            progress.step(f"gemm rate {SGEMM_SIZE}^3 {dtype}")
            limits.measure_gemm(dtype)
        progress.clear()
        _print_limits(out, limits, sizes, args.dtype, args.pct_of)
        out.flush()

        memory: Optional[Dict[str, Any]] = None
        if mem_cases:
            progress.step(f"peak memory of {len(mem_cases)} cases (child process)")
            from .memory import measure_cases  # here: `python -m relucore.bench.memory` runs the child

            try:
                memory = measure_cases(mem_cases, threads, args.quick)
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                warn(f"peak memory not measured: {exc}")

        table = Table(out, with_torch=torch is not None, pct_label="%copy",
                      op_width=max(len(c.label) for c in cases), size_width=max(len(c.size) for c in cases),
                      memory=memory is not None)
        checks = []  # each case's cache checks, before and after it, judged once the run's fastest is known
        after = None
        for case in cases:
            progress.step(f"{case.label} {case.size}")
            # the cache may be taken for a while: judged per case (the last case's check after it
            # is this one's before it), not from the start's
            before = after if after is not None else cache_probe.check() if cache_probe else None
            contended = before is not None and before.contended
            row = run_case(case, config, limits, torch, args.pct_of, warn, memory,
                           machine_check.cores_busy or contended)
            row["cache_advantage"] = row["cache_share_of_fastest"] = None
            if cache_probe:
                after = cache_probe.check()
                checks.append((row, before, after))
            rows.append(row)
            progress.clear()
            table.row(row)
        for row, before, after in checks:
            row["cache_advantage"] = min(before.advantage, after.advantage)
            row["cache_share_of_fastest"] = cache_probe.share(before, after)
            if cache_probe.slowed(before, after):
                row["noisy"] = True
    except BenchError as exc:
        progress.clear()
        err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        progress.clear()
        err("interrupted")
        return 130

    print(file=out)
    print("vs np / vs pt: NumPy's / PyTorch's median time over relucore's (above 1: relucore is faster)", file=out)
    noisy = [f"{r['label']} {r['size']}" for r in rows if r.get("noisy")]
    if noisy:
        print(f"noisy (busy machine, the last-level cache in use elsewhere, or repeats spread over "
              f"{SPREAD_LIMIT:.0%} of the median): "
              + ", ".join(noisy), file=out)
    for line in row_target_lines(rows):
        print(line, file=out)
    targets: List[Dict[str, Any]] = []
    for name in cases_mod.SUITES:  # a suite's own footnotes and targets, judged on its rows
        module = importlib.import_module(name)
        mine = [r for r in rows if r["suite"] == name]
        if not mine:
            continue
        if hasattr(module, "notes"):
            for line in module.notes(mine, threads):
                print(line, file=out)
        if hasattr(module, "targets"):
            for t in module.targets(mine):
                t = dict(t, suite=name)
                targets.append(t)
                print(f"target: {t['target']}: {t['detail']} -> {verdict(t['met'], t.get('noisy', False))}",
                      file=out)

    if args.json:
        document = {
            "tool": "relucore-bench",
            "schema": 1,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "settings": {
                "argv": list(sys.argv[1:] if argv is None else argv),
                "sizes": [size_label(n) for n in sizes], "dtype": args.dtype, "quick": args.quick,
                "threads": threads, "torch": torch is not None, "pct_of": args.pct_of,
                "impls": [i for i in IMPLS if i != "torch" or torch is not None],
                "timer": config.__dict__,
                "speedup": "other implementation's median time / relucore's median time",
            },
            "machine": machine,
            "machine_check": machine_check.as_dict(),
            "limits": limits.as_dict(),
            "rows": rows,
            "targets": targets,
            "warnings": warnings,
        }
        write_json(args.json, document)
        print(f"wrote {args.json}", file=out)
    return 0
