"""Call latency of relucore with and without another process busy on the machine.

Times relu on 1M float32 elements (``out=`` given) and a batch-1 conv2d (1x64x56x56 -> 64, 3x3,
padding 1), call by call, once quiet and once while a ``while True: pass`` process of our own
runs (pinned to one CPU with ``--pin``), and prints the median and 90th percentile of each,
with both as multiples of the quiet median. Several builds (``--python``, one interpreter each, e.g.
one venv with the old build and one with the new) are measured in turns, round after round, so
that other load on the machine falls on all of them alike. ``--one-thread`` adds each build run with
``OMP_NUM_THREADS=1``: what the machine gives one thread at the same moments. ``--torch`` adds
PyTorch's relu and conv2d in the same interpreters (the first ``--python`` must have torch), timed
the same way under the same load.

    python benchmarks/under_load.py --python /venv-old/bin/python --python /venv-new/bin/python --rounds 3

Not collected by pytest (it takes a minute and its figures depend on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CASES = ("relu 1M", "conv 1x64x56x56")
POOL_STATS = ("parallel_jobs", "stragglers", "fallbacks", "fewer_jobs")


def measure(calls: int, peer: str = "relucore") -> dict:
    """Per-call seconds of each case in this interpreter (the child side), of relucore or PyTorch."""
    import numpy as np
    import relucore as rc

    rng = np.random.default_rng(0)
    x = rng.standard_normal(1 << 20).astype(np.float32)
    y = np.empty_like(x)
    img = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32) * 0.05
    run = {CASES[0]: lambda: rc.relu(x, out=y), CASES[1]: lambda: rc.conv2d(img, w, padding=1)}
    if peer == "torch":
        import torch

        torch.set_grad_enabled(False)
        tx, ty, timg, tw = (torch.from_numpy(a) for a in (x, y, img, w))
        run = {CASES[0]: lambda: torch.clamp_min(tx, 0, out=ty),
               CASES[1]: lambda: torch.nn.functional.conv2d(timg, tw, padding=1)}
    out = {"pool": {}}
    for name, f in run.items():
        # warm up for at least 0.3 s, not a count: a fresh process's pool worker runs on a vCPU the
        # hypervisor halted while it was idle, and for its first ~20-50 ms the worker joins late or
        # not at all (jobs then run on the caller alone: half speed, not the steady state)
        t_end = time.perf_counter() + 0.3
        n = 0
        while n < max(10, calls // 10) or time.perf_counter() < t_end:
            f()
            n += 1
        reset = getattr(rc.runtime, "_reset_pool_stats", None)  # an OpenMP build has no pool
        if reset:
            reset()
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        out[name] = times
        s = rc.runtime._pool_stats() if reset else {}
        out["pool"][name] = [s.get(k) for k in POOL_STATS]  # an older build lacks some
    out["threads"] = rc.get_num_threads()
    return out


def quantile(v: list, q: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def busy(pin: int | None) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    if pin is not None:
        os.sched_setaffinity(p.pid, {pin})
    time.sleep(0.3)  # let it get going
    return p


def run_child(build: str, calls: int) -> dict:
    build, torch = (build[:-len(" torch")], True) if build.endswith(" torch") else (build, False)
    python, _, threads = build.partition(" threads=")
    env = dict(os.environ, OMP_NUM_THREADS=threads) if threads else None
    cmd = [python, os.path.abspath(__file__), "--measure", str(calls)] + (["--peer", "torch"] if torch else [])
    r = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                       cwd=os.path.dirname(os.path.abspath(__file__)) + "/..")
    return json.loads(r.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", action="append", help="interpreter of a build to time (repeatable; default: this one)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (every build quiet, then loaded)")
    ap.add_argument("--calls", type=int, default=200, help="timed calls per case and measurement")
    ap.add_argument("--one-thread", action="store_true", help="also time each build with OMP_NUM_THREADS=1")
    ap.add_argument("--pin", type=int, default=None, help="pin the busy process to this CPU")
    ap.add_argument("--torch", action="store_true", help="also time PyTorch's relu and conv2d (first --python)")
    ap.add_argument("--measure", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--peer", default="relucore", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure is not None:
        print(json.dumps(measure(a.measure, a.peer)))
        return
    builds = a.python or [sys.executable]
    if a.one_thread:
        builds = [v for b in builds for v in (b, b + " threads=1")]
    if a.torch:
        builds.append(builds[0] + " torch")
    # results[build][state][case] = every call's seconds, over all rounds
    results = {b: {"quiet": {c: [] for c in CASES}, "loaded": {c: [] for c in CASES}} for b in builds}
    per_round = []
    for r in range(a.rounds):
        for b in builds:
            for state in ("quiet", "loaded"):
                hog = busy(a.pin) if state == "loaded" else None
                try:
                    got = run_child(b, a.calls)
                finally:
                    if hog:
                        hog.kill()
                        hog.wait()
                for c in CASES:
                    results[b][state][c] += got[c]
                    per_round.append((r, b, state, c, 1e3 * quantile(got[c], 0.5), 1e3 * quantile(got[c], 0.9),
                                      got.get("pool", {}).get(c, "")))
    print(f"CPUs usable: {len(os.sched_getaffinity(0))}; busy process pinned to: {a.pin}; "
          f"{a.rounds} rounds x {a.calls} calls")
    print(f"\nper round (ms): round, build, state, case, median, p90, relucore's pool ({', '.join(POOL_STATS)})")
    for r, b, state, c, med, p90, pool in per_round:
        print(f"  {r} {b} {state:6} {c:16} {med:8.3f} {p90:8.3f} {pool}")
    print("\nall rounds (ms): build, case, quiet median, loaded median (x quiet), loaded p90 (x quiet)")
    for b in builds:
        for c in CASES:
            q = quantile(results[b]["quiet"][c], 0.5)
            lm, lp = quantile(results[b]["loaded"][c], 0.5), quantile(results[b]["loaded"][c], 0.9)
            print(f"  {b} {c:16} {1e3 * q:8.3f} {1e3 * lm:8.3f} ({lm / q:5.2f}x) {1e3 * lp:8.3f} ({lp / q:5.2f}x)")


if __name__ == "__main__":
    main()
