"""A process forked after relucore ran threaded ops (or while another thread is inside one) computes
the parent's answers, with its own thread pool of at least 2 threads. Every child runs under a
timeout: a hang fails the test instead of blocking the run."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import select
import signal
import threading
import time

import numpy as np
import pytest

import relucore as rc
from relucore import ufuncs

TIMEOUT = 60.0  # seconds a child may take (it needs well under one)
BUDGET = 20.0  # seconds a child keeps calling until its pool has run a job on 2 threads


def _ops():
    """name -> (function of no arguments, big enough to be threaded on 2 threads)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    v = rng.standard_normal(1 << 21).astype(np.float32)
    s = np.float32(0.1)
    return {
        "conv2d": lambda: rc.conv2d(x, w, padding=1),
        "relu": lambda: rc.relu(v),
        "ufunc": lambda: ufuncs.leaky_relu(v, s),
    }


OPS = _ops()


def _child_work(name):
    """In the child: the op's result, and the most threads one pool job used (calls repeat until 2
    did, or BUDGET runs out: a worker may wake after the caller has taken every piece)."""
    rc.runtime._reset_pool_stats()
    deadline = time.monotonic() + BUDGET
    while True:
        y = OPS[name]()
        most = rc.runtime._pool_stats()["most_threads"]
        if most >= 2 or time.monotonic() > deadline:
            return y, most


def _mp_target(name, conn):
    conn.send(_child_work(name))
    conn.close()


def _run_mp(name):
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_mp_target, args=(name, send))
    p.start()
    send.close()
    try:
        if not recv.poll(TIMEOUT):
            pytest.fail(f"multiprocessing fork child hung in {name}")
        result = recv.recv()
    finally:
        p.join(TIMEOUT)
        if p.is_alive():
            p.kill()
            p.join()
    assert p.exitcode == 0
    return result


def _in_os_fork(work, timeout=TIMEOUT):
    """work() in a child made by os.fork, its result sent back pickled; fails after `timeout`."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(r)
            with os.fdopen(w, "wb") as f:
                pickle.dump(work(), f)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    chunks = []
    with os.fdopen(r, "rb", buffering=0) as f:  # read as it comes: the child blocks on a full pipe
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("os.fork child hung")
            chunk = f.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)  # it closed the pipe on its way out
    assert os.waitstatus_to_exitcode(status) == 0
    return pickle.loads(b"".join(chunks))


def _run_os_fork(name):
    return _in_os_fork(lambda: _child_work(name))


RUNNERS = {"mp_fork": _run_mp, "os_fork": _run_os_fork}


@pytest.fixture
def two_threads():
    before = rc.get_num_threads()
    rc.set_num_threads(2)
    try:
        yield
    finally:
        rc.set_num_threads(before)


@pytest.mark.parametrize("how", RUNNERS)
@pytest.mark.parametrize("name", OPS)
def test_fork_after_threaded_op(two_threads, how, name):
    want = OPS[name]()
    for other in OPS.values():  # every kind of threaded call has run in the parent
        other()
    got, most = RUNNERS[how](name)
    np.testing.assert_array_equal(got, want)
    assert most >= 2, f"the child's pool never ran a job on 2 threads ({most})"


@pytest.mark.parametrize("how", RUNNERS)
def test_fork_while_another_thread_is_inside_an_op(two_threads, how):
    want = OPS["conv2d"]()
    stop = threading.Event()
    calls = []

    def busy():
        while not stop.is_set():
            OPS["conv2d"]()
            calls.append(1)

    t = threading.Thread(target=busy)
    t.start()
    try:
        while not calls:  # it is running conv2d calls back to back now
            time.sleep(0.001)
        got, most = RUNNERS[how]("conv2d")
    finally:
        stop.set()
        t.join(TIMEOUT)
    assert not t.is_alive()
    np.testing.assert_array_equal(got, want)
    assert most >= 2, f"the child's pool never ran a job on 2 threads ({most})"


def test_child_of_child(two_threads):
    """A forked child runs threaded calls, then forks again: the grandchild works too."""
    want = OPS["conv2d"]()

    def child():
        mine, most = _child_work("conv2d")
        theirs, their_most = _in_os_fork(lambda: _child_work("conv2d"))
        return mine, theirs, min(most, their_most)

    mine, theirs, most = _in_os_fork(child, 2 * TIMEOUT)
    np.testing.assert_array_equal(mine, want)
    np.testing.assert_array_equal(theirs, want)
    assert most >= 2
