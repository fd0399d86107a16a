"""The process-wide thread count (set_num_threads from any thread, its validation, its default) and
calls that keep one snapshot of the runtime switches while other threads flip them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import relucore as rc

TIMEOUT = 60.0


@pytest.fixture
def restore_threads():
    before = rc.get_num_threads()
    yield
    rc.set_num_threads(before)


def _in_thread(f):
    """f() on a new threading.Thread; its result (or exception) back here, bounded in time."""
    out = {}

    def run():
        try:
            out["value"] = f()
        except BaseException as e:  # noqa: BLE001  (re-raised below)
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(TIMEOUT)
    assert not t.is_alive(), "thread hung"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_set_num_threads_is_process_wide(restore_threads):
    rc.set_num_threads(1)
    assert _in_thread(rc.get_num_threads) == 1
    with ThreadPoolExecutor(2) as ex:
        assert ex.submit(rc.get_num_threads).result(TIMEOUT) == 1
        ex.submit(rc.set_num_threads, 3).result(TIMEOUT)  # set on a pool thread ...
    assert rc.get_num_threads() == 3  # ... seen here
    assert _in_thread(rc.get_num_threads) == 3
    assert rc.runtime_info()["num_threads"] == 3


def test_set_num_threads_from_many_threads(restore_threads):
    values = [1, 2, 3, 4, 5, 6, 7, 8]
    barrier = threading.Barrier(len(values))

    def set_then_read(n):
        barrier.wait(TIMEOUT)
        for _ in range(200):
            rc.set_num_threads(n)
            got = rc.get_num_threads()
            assert got in values, got
        return n

    with ThreadPoolExecutor(len(values)) as ex:
        assert sorted(f.result(TIMEOUT) for f in [ex.submit(set_then_read, n) for n in values]) == values
    final = rc.get_num_threads()
    assert final in values
    with ThreadPoolExecutor(4) as ex:  # every thread agrees on the one value
        assert {f.result(TIMEOUT) for f in [ex.submit(rc.get_num_threads) for _ in range(8)]} == {final}


def test_thread_count_is_used_by_other_threads(restore_threads):
    """A count set on one thread decides how many threads another thread's call uses."""
    x = np.random.default_rng(0).standard_normal((1, 64, 56, 56)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((64, 64, 3, 3)).astype(np.float32)

    def most_threads(seconds):
        """Calls until a job ran on 2 threads (on a busy machine the pool uses fewer threads for a
        while after a straggler, then tries again)."""
        rc.runtime._reset_pool_stats()
        deadline = time.monotonic() + seconds
        while rc.runtime._pool_stats()["most_threads"] < 2 and time.monotonic() < deadline:
            rc.conv2d(x, w, padding=1)
        return rc.runtime._pool_stats()["most_threads"]

    rc.set_num_threads(1)
    assert _in_thread(lambda: most_threads(0.2)) == 0  # no job ran on two threads
    rc.set_num_threads(2)
    assert _in_thread(lambda: most_threads(30)) == 2


@pytest.mark.parametrize("bad", [1.7, "2", True, False, None, 2.0, [2]])
def test_set_num_threads_type_error(restore_threads, bad):
    with pytest.raises(TypeError, match="n must be an int"):
        rc.set_num_threads(bad)


@pytest.mark.parametrize("bad", [0, -1, 2**31, 2**63, 2**100, -(2**100)])
def test_set_num_threads_value_error(restore_threads, bad):
    limit = rc.runtime.thread_limit()
    with pytest.raises(ValueError, match=rf"n must be in \[1, {limit}\], got {bad}"):
        rc.set_num_threads(bad)


def test_thread_limit(restore_threads):
    limit = rc.runtime.thread_limit()
    assert limit == min(4096, max(256, 4 * os.cpu_count()))
    rc.set_num_threads(limit)
    assert rc.get_num_threads() == limit
    rc.set_num_threads(np.int64(2))  # any integer type
    assert rc.get_num_threads() == 2
    with pytest.raises(ValueError):
        rc.set_num_threads(limit + 1)


def _default_threads(env, cpus=None):
    e = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    e.update(env)
    pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    r = subprocess.run([sys.executable, "-c", "import relucore; print(relucore.get_num_threads())"],
                       capture_output=True, text=True, env=e, timeout=TIMEOUT, preexec_fn=pre,
                       cwd=os.path.dirname(__file__))
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


def test_default_thread_count():
    assert _default_threads({}) == len(os.sched_getaffinity(0))
    assert _default_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert _default_threads({"OMP_NUM_THREADS": "5,2"}) == 5
    assert _default_threads({"OMP_NUM_THREADS": "bogus"}) == len(os.sched_getaffinity(0))
    assert _default_threads({}, cpus={min(os.sched_getaffinity(0))}) == 1


# ---- one snapshot of the switches per call -------------------------------------------------------

def _switch_values():
    return {
        "isa": list(rc.runtime_info()["usable_isas"]),
        "gemm": ["auto", "own", "blas"],
        "conv_algo": ["auto", "gemm", "winograd"],
    }


def _calls():
    """name -> call; shapes that take both conv algorithms, both GEMMs and more than one thread."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 24, 24)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    dy = rng.standard_normal((2, 32, 24, 24)).astype(np.float32)
    v = rng.standard_normal(1 << 20).astype(np.float32)
    return {
        "conv2d": lambda: (rc.conv2d(x, w, padding=1),),
        "conv2d_backward": lambda: rc.conv2d_backward(dy, x, w, padding=1),
        "relu": lambda: (rc.relu(v),),
    }


def _key(result):
    return tuple(np.ascontiguousarray(a).tobytes() for a in result if a is not None)


def test_switches_flipped_during_calls(restore_threads):
    """Threads flip isa/gemm/conv_algo while others compute: every result is exactly one that some
    fixed setting gives (a call mixing two kernel tables gives garbage)."""
    get = {"isa": rc.get_isa, "gemm": rc.get_gemm, "conv_algo": rc.get_conv_algorithm}
    put = {"isa": rc.use_isa, "gemm": rc.use_gemm, "conv_algo": rc.use_conv_algorithm}
    values = _switch_values()
    saved = {k: get[k]() for k in values}
    calls = _calls()
    rc.set_num_threads(2)
    allowed = {name: set() for name in calls}
    try:
        for isa in values["isa"]:
            for gemm in values["gemm"]:
                for algo in values["conv_algo"]:
                    put["isa"](isa), put["gemm"](gemm), put["conv_algo"](algo)
                    for name, f in calls.items():
                        allowed[name].add(_key(f()))
        stop = threading.Event()
        flips = []

        def flipper(seed):
            r = np.random.default_rng(seed)
            while not stop.is_set():
                k = list(values)[r.integers(len(values))]
                put[k](values[k][r.integers(len(values[k]))])
                flips.append(1)
                time.sleep(0.0002)

        def worker(name):
            bad, n, deadline = 0, 0, time.monotonic() + 8
            while n < 300 and time.monotonic() < deadline:
                bad += _key(calls[name]()) not in allowed[name]
                n += 1
            return name, n, bad

        flippers = [threading.Thread(target=flipper, args=(s,)) for s in range(2)]
        for t in flippers:
            t.start()
        try:
            with ThreadPoolExecutor(len(calls)) as ex:
                results = [f.result(TIMEOUT) for f in [ex.submit(worker, name) for name in calls]]
        finally:
            stop.set()
            for t in flippers:
                t.join(TIMEOUT)
    finally:
        for k, v in saved.items():
            put[k](v)
    assert len(flips) > 100
    for name, n, bad in results:
        assert n > 10, (name, n)
        assert bad == 0, f"{name}: {bad} of {n} results match no fixed setting"
