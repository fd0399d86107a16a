"""Median-of-samples timer with a warm-up and adaptive repeat counts, for one or several callables.

One *sample* runs a callable ``number`` times back to back; ``number`` is chosen so that a sample
lasts at least ``sample_time`` (timer resolution and loop overhead then do not matter for tiny
arrays). The reported figure is the median of the per-call sample times: on a noisy two-core
machine the median is stable where the mean is not.

:func:`measure_interleaved` times several callables (relucore, NumPy, PyTorch, the same-size copy)
*in turns*, one sample of each per round, with samples of similar length, so that a slow phase of
the machine hits all of them alike and their ratios hold even when absolute times drift. Rounds go
on until there are ``min_samples`` rounds and ``min_time`` measured seconds per callable on
average, or the time budget (``max_time`` per callable) runs out, whichever is first.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, List, Sequence, Tuple


@dataclass(frozen=True)
class TimerConfig:
    warmup_time: float = 0.05  # seconds of calls before measuring (at least one call)
    sample_time: float = 0.005  # a sample lasts at least this long
    min_samples: int = 7
    min_time: float = 0.3  # keep sampling until this much measured time (per callable, on average) ...
    max_time: float = 3.0  # ... but stop after this much per callable (whatever min_samples says)
    balance_cap: float = 0.02  # interleaved samples last about as long as the slowest call, up to this
    settle_time: float = 0.01  # idle first, so the previous callable's spinning OpenMP workers go to sleep

    @classmethod
    def quick(cls) -> "TimerConfig":
        return cls(warmup_time=0.01, sample_time=0.002, min_samples=3, min_time=0.06, max_time=0.6,
                   balance_cap=0.01, settle_time=0.005)


@dataclass(frozen=True)
class Timing:
    median: float  # seconds per call (median over samples)
    min: float  # seconds per call (fastest sample)
    samples: int  # how many samples
    number: int  # calls per sample
    spread: float = 0.0  # (p90 - p10) / median of the samples: how far one repeat can be trusted

    def as_dict(self) -> dict:
        return asdict(self)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation between order statistics)."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def spread(samples: Sequence[float]) -> float:
    """``(p90 - p10) / median``: 0 for identical repeats; inf when the median is 0."""
    med = statistics.median(samples)
    width = quantile(samples, 0.9) - quantile(samples, 0.1)
    return width / med if med > 0 else (0.0 if width == 0 else float("inf"))


def _run(fn: Callable[..., Any], args: Sequence[Any], number: int) -> float:
    perf = time.perf_counter
    t0 = perf()
    for _ in range(number):
        fn(*args)
    return perf() - t0


def _calibrate(fn: Callable[..., Any], args: Sequence[Any], sample_time: float) -> float:
    """Seconds per call, from a run of at least ``sample_time``."""
    number = 1
    t = _run(fn, args, number)
    while t < sample_time:
        number *= 10 if t <= 0 else min(10, max(2, int(1.2 * sample_time / t) + 1))
        t = _run(fn, args, number)
    return t / number


def measure_interleaved(calls: Sequence[Tuple[Callable[..., Any], Sequence[Any]]],
                        config: TimerConfig = TimerConfig()) -> List[Timing]:
    """Time each ``fn(*args)`` of ``calls`` in turns (see the module docstring); one Timing each."""
    if config.settle_time > 0:
        time.sleep(config.settle_time)  # let the previous callable's spinning OpenMP workers sleep
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for fn, args in calls:  # warm-up: caches, page faults of fresh outputs, thread-pool start
            spent = _run(fn, args, 1)
            while spent < config.warmup_time:
                spent += _run(fn, args, max(1, int(config.warmup_time / max(spent, 1e-9))))
        per_call = [_calibrate(fn, args, config.sample_time) for fn, args in calls]
        # Samples of similar length for all: as long as the slowest call (capped), >= sample_time.
        target = max(config.sample_time, min(max(per_call), config.balance_cap))
        numbers = [max(1, round(target / t)) if t > 0 else 1000 for t in per_call]

        samples: List[List[float]] = [[] for _ in calls]
        totals = [0.0] * len(calls)
        budget = config.max_time * len(calls)
        while True:
            for i, (fn, args) in enumerate(calls):
                t = _run(fn, args, numbers[i])
                samples[i].append(t / numbers[i])
                totals[i] += t
            if len(samples[0]) >= config.min_samples and sum(totals) >= config.min_time * len(calls):
                break
            if sum(totals) >= budget:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return [Timing(median=statistics.median(s), min=min(s), samples=len(s), number=n, spread=spread(s))
            for s, n in zip(samples, numbers)]


def measure(fn: Callable[..., Any], args: Sequence[Any] = (), config: TimerConfig = TimerConfig()) -> Timing:
    """Time ``fn(*args)``; return the median seconds per call (see the module docstring)."""
    return measure_interleaved([(fn, args)], config)[0]
