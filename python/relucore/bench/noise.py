"""Whether this run's figures can be trusted: a busy-machine check before timing, and the rule that
turns a missed target on noisy figures into "noisy, rerun" instead of "NOT met".

On shared cores another process can take a core for a while: the medians move, and a target can
look missed when the machine was only busy. Three signals say so:

* before timing, :func:`check_machine` measures the CPU time other processes take while it sleeps
  half a second (:func:`cores_in_use`, from ``/proc/stat``) and times a fixed spin loop a few
  times; :data:`OTHERS_BUSY_CORES` or more cores in use, or spin times that differ by more than
  :data:`SPIN_SPREAD_LIMIT`, mark the machine busy. Where ``/proc/stat`` cannot be read, a 1-minute
  load average of one per core or more does instead (it lags: a build that just finished keeps it
  high for a minute, and one busy process on two cores never reaches it);
* before and after each case, :class:`CacheProbe` times a copy of half the last-level cache
  against a copy through DRAM (timed once): another tenant of a shared cache (a neighbouring
  virtual machine) can leave a case whose data should stay in that cache running at DRAM speed
  while the cores look idle; below :data:`CACHE_ADVANTAGE_LIMIT`, or below
  :data:`CACHE_SLOWDOWN_LIMIT` of the fastest such copy of the run, the case's figures are noisy
  (each check first idles :data:`PROBE_SETTLE`, so the threads of the case before stop spinning);
* each timed figure keeps the spread of its repeats (``Timing.spread``, (p90 - p10) / median);
  above :data:`SPREAD_LIMIT` the figure is noisy.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, Optional, Tuple

import numpy as np

from .limits import copy_operands
from .timing import quantile

#: A timed figure whose repeats spread more than this ((p90 - p10) / median) is noisy.
SPREAD_LIMIT = 0.25
#: Spin-loop times (max - min) / min above this mean something else is running.
SPIN_SPREAD_LIMIT = 0.2
SPIN_REPEATS = 5
SPIN_ITERATIONS = 200_000
#: Cores' worth of CPU time other processes took while the check slept that make the machine busy.
OTHERS_BUSY_CORES = 0.5
OTHERS_INTERVAL = 0.5  # seconds
#: A copy of half the last-level cache should run this many times faster than a copy through DRAM
#: (both read + write, the same run); below it much of that cache is in use elsewhere. On a 2-vCPU
#: EPYC guest with a 32 MiB L3 (2026-12-01) the advantage was 2.5-2.8x while the training step ran
#: at its usual speed and 1.4x while it ran 1.5-1.8x slower with the cores idle.
CACHE_ADVANTAGE_LIMIT = 1.8
#: Milder contention slows everything a case runs without taking the whole cache: in a series on the
#: same guest (a reading every ~1.6 s, 2026-12-01) the float64 training step ran 1.94-2.1 ms while
#: the copy of half the cache ran at 109-124 GB/s, and 2.5-3.4 ms in most intervals where it ran at
#: 74-104 (still about 2-3x DRAM). A check before or after a case below this share of the run's
#: fastest copy makes the case noisy.
CACHE_SLOWDOWN_LIMIT = 0.85
#: Seconds idle before each cache check: the OpenMP and BLAS threads of the case just timed
#: (PyTorch's, NumPy's) keep spinning for a while and slowed the copy that followed. In a full run
#: (2026-12-01) the checks' copies ran at 0.64-0.82 of the run's fastest (deciles) without the pause,
#: and the rule above marked 114 of 123 cases; after 0.2 s idle, 0.77-0.96, and 25.
PROBE_SETTLE = 0.2
CACHE_SYSFS = "/sys/devices/system/cpu/cpu0/cache"
DRAM_PROBE_MAX = 256 << 20  # bytes per array of the DRAM copy: caches past half of it get no check


@dataclass(frozen=True)
class CacheCheck:
    llc_bytes: int       # the last-level cache's size
    in_cache_gbps: float  # a copy of half of it (two arrays of a quarter)
    dram_gbps: float      # a copy of four times it

    @property
    def advantage(self) -> float:
        return self.in_cache_gbps / self.dram_gbps if self.dram_gbps > 0 else float("inf")

    @property
    def contended(self) -> bool:
        return self.advantage < CACHE_ADVANTAGE_LIMIT

    def as_dict(self) -> dict:
        return dict(asdict(self), advantage=self.advantage, contended=self.contended)

    def describe(self) -> str:
        return (f"last-level cache {self.llc_bytes >> 20} MiB: half of it copies at {self.in_cache_gbps:.0f} GB/s, "
                f"{self.advantage:.1f}x a copy through DRAM ({self.dram_gbps:.0f} GB/s)")


def last_level_cache_bytes(root: str = CACHE_SYSFS) -> Optional[int]:
    """The size of CPU 0's highest-level data or unified cache from sysfs (None where unknown)."""
    best = None
    try:
        names = os.listdir(root)
    except OSError:
        return None
    for name in names:
        try:
            with open(os.path.join(root, name, "level"), encoding="ascii") as f:
                level = int(f.read())
            with open(os.path.join(root, name, "type"), encoding="ascii") as f:
                kind = f.read().strip()
            with open(os.path.join(root, name, "size"), encoding="ascii") as f:
                text = f.read().strip()
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or not text:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
        try:
            size = int(text.rstrip("KMG")) * unit
        except ValueError:
            continue
        if best is None or level > best[0]:
            best = (level, size)
    return best[1] if best else None


def copy_rate(nbytes: int, repeats: int, timer: Callable[[], float] = time.perf_counter) -> float:
    """GB/s of np.copyto between two float64 arrays of ``nbytes`` (read + write), median of repeats
    (a few ms: the limits' copy operands without their timer's warm-up and settling)."""
    dst, src = copy_operands(max(nbytes // 8, 1), np.float64)
    np.copyto(dst, src)
    times = []
    for _ in range(repeats):
        t0 = timer()
        np.copyto(dst, src)
        times.append(timer() - t0)
    t = quantile(times, 0.5)
    return 2 * src.nbytes / t / 1e9 if t > 0 else float("inf")


class CacheProbe:
    """The last-level cache check: a copy through DRAM timed once, then :meth:`check` times a copy of
    half the cache (a few ms, after :data:`PROBE_SETTLE` idle) whenever asked, keeping the fastest
    (:attr:`best_gbps`)."""

    @classmethod
    def for_cache(cls, llc_bytes: Optional[int]) -> Optional["CacheProbe"]:
        """A probe for a last-level cache of ``llc_bytes``, or None where there is none to check:
        size unknown, or a cache past half of :data:`DRAM_PROBE_MAX`, which the DRAM copy's arrays
        (twice the cache each) would partly stay in."""
        return cls(llc_bytes) if llc_bytes and 2 * llc_bytes <= DRAM_PROBE_MAX else None

    def __init__(self, llc_bytes: int, rate: Callable[[int, int], float] = copy_rate,
                 settle: float = PROBE_SETTLE):
        self.llc_bytes, self.rate, self.settle = llc_bytes, rate, settle
        self.dram_gbps = rate(2 * llc_bytes, 5)
        self.best_gbps = 0.0

    def check(self) -> CacheCheck:
        if self.settle > 0:
            time.sleep(self.settle)
        c = CacheCheck(self.llc_bytes, self.rate(self.llc_bytes // 4, 15), self.dram_gbps)
        if math.isfinite(c.in_cache_gbps):  # a copy too quick to time is no yardstick
            self.best_gbps = max(self.best_gbps, c.in_cache_gbps)
        return c

    def share(self, *checks: CacheCheck) -> Optional[float]:
        """The slowest of these checks' copies as a share of the fastest so far (None before any)."""
        return min(c.in_cache_gbps for c in checks) / self.best_gbps if self.best_gbps > 0 else None

    def slowed(self, *checks: CacheCheck) -> bool:
        """Whether any of these checks was contended, or its copy ran below
        :data:`CACHE_SLOWDOWN_LIMIT` of the fastest so far (judge at the end of a run)."""
        share = self.share(*checks)
        return any(c.contended for c in checks) or (share is not None and share < CACHE_SLOWDOWN_LIMIT)


@dataclass(frozen=True)
class MachineCheck:
    load: Optional[float]  # 1-minute load average (None where /proc/loadavg does not exist)
    cores: int
    spin_spread: float  # (max - min) / min of the spin-loop times
    busy: bool
    reason: str
    cache: Optional[CacheCheck] = None
    cores_busy: bool = False  # busy from the load or the spin loop (not the cache)
    others: Optional[float] = None  # cores other processes used just now (None: not measurable)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cache"] = None if self.cache is None else self.cache.as_dict()
        return d

    def describe(self) -> str:
        load = "load unknown" if self.load is None else f"load {self.load:.2f} on {self.cores} cores"
        if self.others is not None:
            load += f" (other processes using {self.others:.2f} cores now)"
        cache = "" if self.cache is None else f", {self.cache.advantage:.1f}x cache advantage"
        verdict = f"busy ({self.reason}): figures may be noisy" if self.busy else "quiet"
        return f"machine check: {load}, spin-loop spread {100 * self.spin_spread:.0f}%{cache} -> {verdict}"


def read_loadavg() -> Optional[float]:
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_cpu_ticks(path: str = "/proc/stat") -> Optional[Tuple[int, int, int]]:
    """(busy, total) clock ticks of all CPUs since boot and the CPU count, from ``/proc/stat``
    (None where it cannot be read)."""
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
        values = [int(v) for v in lines[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    if len(values) < 4 or not lines[0].startswith("cpu "):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle, iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal (guests are in user)
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu") and line[3:4].isdigit())
    return busy, busy + idle, max(cpus, 1)


def cores_in_use(interval: float = OTHERS_INTERVAL,
                 ticks: Callable[[], Optional[Tuple[int, int, int]]] = read_cpu_ticks,
                 sleep: Callable[[float], None] = time.sleep) -> Optional[float]:
    """Cores' worth of CPU time the machine used while this process slept ``interval`` seconds:
    other processes' (None where ``/proc/stat`` cannot be read)."""
    a = ticks()
    if a is None:
        return None
    sleep(interval)
    b = ticks()
    if b is None or b[1] <= a[1]:
        return None
    return (b[0] - a[0]) / (b[1] - a[1]) * b[2]


def _spin(iterations: int) -> int:
    acc = 0
    for i in range(iterations):
        acc ^= i
    return acc


def check_machine(cores: int, timer: Callable[[], float] = time.perf_counter,
                  load: Callable[[], Optional[float]] = read_loadavg,
                  spin: Callable[[], object] = lambda: _spin(SPIN_ITERATIONS),
                  repeats: int = SPIN_REPEATS, cache: Optional[CacheCheck] = None,
                  in_use: Callable[[], Optional[float]] = cores_in_use) -> MachineCheck:
    """The busy-machine check (module docstring), with ``cache`` (a :meth:`CacheProbe.check`) if
    given; ``timer``, ``load``, ``spin`` and ``in_use`` are for tests."""
    times = []
    for _ in range(repeats):
        t0 = timer()
        spin()
        times.append(timer() - t0)
    fastest = min(times)
    spin_spread = (max(times) - fastest) / fastest if fastest > 0 else 0.0
    avg, others = load(), in_use()
    reasons = []
    if others is not None and others >= OTHERS_BUSY_CORES:
        reasons.append(f"other processes using {others:.2f} cores")
    elif others is None and avg is not None and avg >= cores:  # this process is idle here
        reasons.append(f"load {avg:.2f} >= {cores} cores")
    if spin_spread > SPIN_SPREAD_LIMIT:
        reasons.append(f"spin-loop times differ by {100 * spin_spread:.0f}%")
    cores_busy = bool(reasons)
    if cache is not None and cache.contended:
        reasons.append(f"the last-level cache is in use elsewhere: {cache.describe()}")
    return MachineCheck(avg, cores, spin_spread, bool(reasons), "; ".join(reasons), cache, cores_busy, others)


def noisy_spreads(spreads: Dict[str, float], busy: bool) -> bool:
    """True if a figure built from timings with these spreads cannot be trusted."""
    return busy or any(s > SPREAD_LIMIT for s in spreads.values())


def verdict(met: Optional[bool], noisy: bool) -> str:
    """"met", "NOT met", or "noisy, rerun" for a miss on figures that cannot be trusted."""
    if met is None:
        return "not measured"
    if met:
        return "met"
    return "noisy, rerun" if noisy else "NOT met"


def any_noisy(rows: Iterable[dict]) -> bool:
    return any(r.get("noisy") for r in rows)
