"""The pool's straggler detector: which jobs count as late, when a window of fewer threads opens
and how long it lasts (replayed on a fresh detector, so deterministic), and the live pool with a
worker made late by a test hook."""

from __future__ import annotations

import time

import numpy as np
import pytest

import relucore
from relucore import runtime

MS = 1_000_000  # ns


def _job(end_ms, wait_us, cpu_us=40.0, pieces=2):
    """A job record: (end, wait, caller CPU, caller pieces) in ns."""
    return (int(end_ms * MS), int(wait_us * 1000), int(cpu_us * 1000), pieces)


def test_quiet_jobs_never_open_a_window():
    """Delays that slow the caller as much as a worker, or the caller alone, are not a late worker:
    a worker within one piece's time of the caller, a caller whose pieces took long (page faults on
    a fresh output count in its CPU time), a caller that lost its core and ran no piece, and single
    late jobs more than 8 jobs apart."""
    jobs = []
    t = 0.0
    for i in range(400):
        t += 0.1
        if i % 4 == 0:
            jobs.append(_job(t, wait_us=20))                        # worker 1 piece behind (cpu/pieces = 20)
        elif i % 4 == 1:
            jobs.append(_job(t, wait_us=900, cpu_us=1200))          # slow pieces on both threads
        elif i % 4 == 2:
            jobs.append(_job(t, wait_us=5000, cpu_us=0, pieces=0))  # the caller was descheduled
        else:
            jobs.append(_job(t, wait_us=5000 if i % 12 == 3 else 30))  # one late job in 12
    assert runtime._pool_detector_replay(jobs) == [0] * len(jobs)


def test_late_threshold():
    """Late: a wait beyond twice the caller's time per piece plus 100 us."""
    per_piece_us = 50.0
    limit_us = 2 * per_piece_us + 100
    pair = lambda wait_us: runtime._pool_detector_replay(  # noqa: E731
        [_job(1.0, wait_us, cpu_us=4 * per_piece_us, pieces=4)] * 2)
    assert pair(limit_us - 1) == [0, 0]
    assert pair(limit_us + 1) == [0, 2 * MS]


@pytest.mark.parametrize("gap", [0, 3, 6])
def test_two_late_jobs_among_eight_open_a_window(gap):
    jobs = [_job(1.0, 5000)] + [_job(1.0, 10)] * gap + [_job(1.0, 5000)]
    assert runtime._pool_detector_replay(jobs) == [0] * (gap + 1) + [2 * MS]


def test_late_jobs_further_apart_open_none():
    jobs = [_job(1.0, 5000)] + [_job(1.0, 10)] * 7 + [_job(1.0, 5000)]
    assert runtime._pool_detector_replay(jobs) == [0] * 9


def test_window_doubles_while_late_jobs_keep_coming_and_resets_after_a_quiet_spell():
    """Each fire within 100 ms of the last window's end doubles the window, up to 50 ms; a fire
    later than that starts again at 2 ms. History is cleared by a fire: two more late jobs are
    needed for the next one."""
    jobs, t = [], 0.0
    for _ in range(7):  # a busy machine: late pairs 1 ms after each window ends
        jobs += [_job(t, 5000), _job(t + 0.5, 5000)]
        windows = runtime._pool_detector_replay(jobs)
        t += 0.5 + windows[-1] / MS + 1.0
    jobs += [_job(t + 500, 5000), _job(t + 500.5, 5000)]  # then half a second later
    got = [w // MS for w in runtime._pool_detector_replay(jobs) if w]
    assert got == [2, 4, 8, 16, 32, 50, 50, 2]


def test_replay_accepts_no_jobs():
    assert runtime._pool_detector_replay([]) == []


@pytest.fixture
def two_threads():
    before = relucore.get_num_threads()
    relucore.set_num_threads(2)
    yield
    runtime._pool_late_worker(0)
    relucore.set_num_threads(before)


def _calls_until(f, done, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        f()


def test_late_worker_opens_a_window_and_results_do_not_change(rc, ref, dtype, rng, two_threads):
    """A worker that sleeps 3 ms before each piece makes jobs late; the pool then runs jobs on the
    caller alone for a while, with the same results."""
    x = rng.standard_normal(1 << 20).astype(dtype)
    expected = ref.relu(x)
    runtime._pool_late_worker(0.003)
    runtime._reset_pool_stats()
    outs = []
    _calls_until(lambda: outs.append(rc.relu(x)),
                 lambda: runtime._pool_stats()["fewer_jobs"] >= 1)
    stats = runtime._pool_stats()
    assert stats["stragglers"] >= 2, stats
    assert stats["fallbacks"] >= 1, stats
    assert stats["fewer_jobs"] >= 1, stats
    for y in outs:
        np.testing.assert_array_equal(y, expected)


def test_late_worker_conv_bitwise_unchanged(rc, two_threads):
    """conv2d's results are bitwise the same whether its jobs ran on 2 threads or, after late jobs,
    on the caller alone."""
    g = np.random.default_rng(7)
    x = g.standard_normal((1, 64, 56, 56)).astype(np.float32)
    w = (g.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    before = rc.conv2d(x, w, padding=1)
    runtime._pool_late_worker(0.002)
    runtime._reset_pool_stats()
    outs = []
    _calls_until(lambda: outs.append(rc.conv2d(x, w, padding=1)),
                 lambda: runtime._pool_stats()["fewer_jobs"] >= 1)
    assert runtime._pool_stats()["fewer_jobs"] >= 1
    for y in outs:
        np.testing.assert_array_equal(y, before)


def test_no_hook_no_sleep(two_threads):
    """The hook is off by default and clamps negative values to off: a call does not take 3 ms."""
    runtime._pool_late_worker(-1.0)
    x = np.ones(1 << 20, np.float32)
    for _ in range(5):
        relucore.relu(x)
    best = min(_timed(lambda: relucore.relu(x)) for _ in range(30))
    assert best < 0.002


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0
