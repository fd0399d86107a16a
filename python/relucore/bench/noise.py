"""Whether this run's figures can be trusted: a busy-machine check before timing, and the rule that
turns a missed target on noisy figures into "noisy, rerun" instead of "NOT met".

On shared cores another process can take a core for a while: the medians move, and a target can
look missed when the machine was only busy. Two signals say so:

* before timing, :func:`check_machine` reads the 1-minute load average against the usable cores
  and times a fixed spin loop a few times; a load of a whole core or more from elsewhere, or spin
  times that differ by more than :data:`SPIN_SPREAD_LIMIT`, mark the machine busy;
* each timed figure keeps the spread of its repeats (``Timing.spread``, (p90 - p10) / median);
  above :data:`SPREAD_LIMIT` the figure is noisy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, Optional

#: A timed figure whose repeats spread more than this ((p90 - p10) / median) is noisy.
SPREAD_LIMIT = 0.25
#: Spin-loop times (max - min) / min above this mean something else is running.
SPIN_SPREAD_LIMIT = 0.2
SPIN_REPEATS = 5
SPIN_ITERATIONS = 200_000


@dataclass(frozen=True)
class MachineCheck:
    load: Optional[float]  # 1-minute load average (None where /proc/loadavg does not exist)
    cores: int
    spin_spread: float  # (max - min) / min of the spin-loop times
    busy: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        load = "load unknown" if self.load is None else f"load {self.load:.2f} on {self.cores} cores"
        verdict = f"busy ({self.reason}): figures may be noisy" if self.busy else "quiet"
        return f"machine check: {load}, spin-loop spread {100 * self.spin_spread:.0f}% -> {verdict}"


def read_loadavg() -> Optional[float]:
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _spin(iterations: int) -> int:
    acc = 0
    for i in range(iterations):
        acc ^= i
    return acc


def check_machine(cores: int, timer: Callable[[], float] = time.perf_counter,
                  load: Callable[[], Optional[float]] = read_loadavg,
                  spin: Callable[[], object] = lambda: _spin(SPIN_ITERATIONS),
                  repeats: int = SPIN_REPEATS) -> MachineCheck:
    """The busy-machine check (module docstring); ``timer``, ``load`` and ``spin`` are for tests."""
    times = []
    for _ in range(repeats):
        t0 = timer()
        spin()
        times.append(timer() - t0)
    fastest = min(times)
    spin_spread = (max(times) - fastest) / fastest if fastest > 0 else 0.0
    avg = load()
    reasons = []
    if avg is not None and avg >= cores:  # this process is idle here: the load is someone else's
        reasons.append(f"load {avg:.2f} >= {cores} cores")
    if spin_spread > SPIN_SPREAD_LIMIT:
        reasons.append(f"spin-loop times differ by {100 * spin_spread:.0f}%")
    return MachineCheck(avg, cores, spin_spread, bool(reasons), "; ".join(reasons))


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
