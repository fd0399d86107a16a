"""The output cache: relucore's output arrays of at least 256 KiB come from a NumPy memory handler
that keeps freed blocks for the next array of the same size. A reused block holds stale contents
(here poisoned with NaN or the largest integer), so every op must write all of its outputs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import relucore
from relucore import nn, optim
from test_fork import _in_os_fork

stats = relucore.runtime._output_cache_stats
MIN_BYTES = stats()["min_array_bytes"]
MAX_BLOCK = stats()["max_block_bytes"]
MAX_CACHED = stats()["max_cached_bytes"]


@pytest.fixture(autouse=True)
def empty_cache():
    assert stats()["enabled"], "these tests need the cache on (RELUCORE_OUTPUT_CACHE unset)"
    relucore.release_scratch()
    yield
    relucore.release_scratch()


def _arrays(r):
    """The arrays among an op's results (a tuple, an array, or a float total)."""
    return [a for a in (r if isinstance(r, tuple) else (r,)) if isinstance(a, np.ndarray)]


def _poison(r):
    for a in _arrays(r):
        a[...] = np.nan if a.dtype.kind == "f" else np.iinfo(a.dtype).max


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)


def _cases(rng, dtype):
    """name -> (native call, reference call); each has at least one output of >= 256 KiB."""
    def r(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    x = r(4, 64, 16, 16)
    w = r(128, 64, 3, 3, scale=0.05)
    dy = r(4, 128, 16, 16)
    xl, wl, dyl = r(1024, 256), r(96, 256, scale=0.1), r(1024, 96)
    wlt = np.ascontiguousarray(wl.T).T  # the weight stored transposed, as nn.Linear may hold it
    g, b = r(64) + 2, r(64)
    _, mean, invstd = relucore.reference.batch_norm(x, None, None, g, b, training=True)
    xp = r(8, 64, 32, 32)
    idx = relucore.reference.max_pool2d(xp, 2)[1]
    dyp = r(8, 64, 16, 16)
    logits, target = r(8192, 10), rng.integers(0, 10, 8192)
    big = r(1 << 17)
    return {
        "relu": (lambda m: m.relu(big, return_mask=True, return_counts=True)),
        "relu_backward": (lambda m: m.relu_backward(big, big)),
        "conv2d": (lambda m: m.conv2d(x, w, padding=1)),
        "conv2d_backward": (lambda m: m.conv2d_backward(dy, x, w, padding=1)),
        "max_pool2d": (lambda m: m.max_pool2d(xp, 2)),
        "max_pool2d_backward": (lambda m: m.max_pool2d_backward(dyp, idx, xp.shape)),
        "linear": (lambda m: m.linear(xl, wl)),
        "linear_backward": (lambda m: m.linear_backward(dyl, xl, wl)),
        "linear_backward_wt": (lambda m: m.linear_backward(dyl, xl, wlt)),
        "batch_norm": (lambda m: m.batch_norm(x, None, None, g, b, training=True)),
        "batch_norm_backward": (lambda m: m.batch_norm_backward(x, x, g, mean, invstd, bias=b, activation="relu")),
        "softmax": (lambda m: m.softmax(logits)),
        "cross_entropy": (lambda m: m.cross_entropy(logits, target, reduction="none")),
    }


NAMES = list(_cases(np.random.default_rng(0), np.float32))


def _same(got, want, dtype):
    got, want = (got if isinstance(got, tuple) else (got,)), (want if isinstance(want, tuple) else (want,))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        if isinstance(b, np.ndarray) and b.dtype.kind == "f":
            np.testing.assert_allclose(a, b, **_tol(dtype))
        elif isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == pytest.approx(b, rel=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_reused_blocks_give_reference_results(rc, dtype, rng, name):
    """Call an op twice, poison and free its outputs, call it again: the third call runs on the
    poisoned blocks (hits) and still equals the reference, for ops that accumulate into outputs too."""
    native = _cases(rng, dtype)[name]
    want = native(relucore.reference)
    first = native(rc)
    _same(first, want, dtype)
    second = native(rc)
    _poison(first)
    _poison(second)
    large = sum(a.nbytes >= MIN_BYTES for a in _arrays(second))
    assert large >= 1
    del first, second
    before = stats()["hits"]
    third = native(rc)
    assert stats()["hits"] - before >= large
    _same(third, want, dtype)


def test_small_outputs_never_touch_the_cache(rng):
    x = rng.standard_normal(1024).astype(np.float32)
    before = stats()
    for _ in range(10):
        relucore.relu(x)
    after = stats()
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])


def test_calloc_zeroes_a_reused_block():
    n = MIN_BYTES // 8 * 3
    a = relucore.runtime._output_cache_zeros(n)
    a[...] = np.nan
    del a
    before = stats()["hits"]
    z = relucore.runtime._output_cache_zeros(n)
    assert stats()["hits"] == before + 1
    assert z.dtype == np.float64 and z.shape == (n,)
    np.testing.assert_array_equal(z, np.zeros(n))


def test_training_steps_hit_the_cache():
    """From the second step of a training loop on, the step's outputs come from the cache."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    m = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(16 * 14 * 14, 10))
    loss = nn.CrossEntropyLoss()
    opt = optim.SGD(m.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        loss(m(x), y)
        m.backward(loss.backward(), input_grad=False)
        opt.step()

    step()
    s1 = stats()
    step()
    s2 = stats()
    assert s2["hits"] - s1["hits"] >= 3  # the conv and pooled outputs among them
    assert s2["misses"] == s1["misses"]


def test_cap_is_honoured():
    """More than the cap in distinct sizes: the oldest are dropped; blocks above the block bound
    are never kept."""
    x = np.ones(MAX_BLOCK // 4 + 1024, np.float32)
    n = 40
    sizes = [(MAX_CACHED // (n - 8)) // 4 + 256 * k for k in range(n)]  # > the cap in all
    assert sum(sizes) * 4 > MAX_CACHED
    for s in sizes:
        y = relucore.relu(x[:s])
        assert y.nbytes == 4 * s
        del y
        assert stats()["cached_bytes"] <= MAX_CACHED
    st = stats()
    assert MAX_CACHED - 4 * max(sizes) < st["cached_bytes"] <= MAX_CACHED
    # the newest sizes were kept, the oldest dropped
    before = stats()["hits"]
    relucore.relu(x[:sizes[-1]])
    assert stats()["hits"] == before + 1
    before = stats()["misses"]
    relucore.relu(x[:sizes[0]])
    assert stats()["misses"] == before + 1
    relucore.release_scratch()
    y = relucore.relu(x)  # above the block bound
    assert y.nbytes > MAX_BLOCK
    del y
    assert stats()["cached_bytes"] == 0


def test_release_scratch_empties_the_cache():
    y = relucore.relu(np.ones(1 << 18, np.float32))
    del y
    assert stats()["cached_bytes"] == 1 << 20 and stats()["blocks"] == 1
    relucore.release_scratch()
    assert stats()["cached_bytes"] == 0 and stats()["blocks"] == 0


def test_env_var_turns_the_cache_off():
    code = (
        "import numpy as np, relucore as rc\n"
        "x = np.ones(1 << 20, np.float32)\n"
        "for _ in range(5): y = rc.relu(x); assert (y == 1).all(); del y\n"
        "s = rc.runtime._output_cache_stats()\n"
        "print(s['enabled'], s['hits'], s['misses'], s['cached_bytes'])\n"
    )
    env = dict(os.environ, RELUCORE_OUTPUT_CACHE="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "0", "0", "0"]


def test_threads_freeing_concurrently(rng):
    """Arrays made on one thread and freed on others, while those threads make their own."""
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    want = relucore.reference.relu(x)
    before = stats()["hits"]

    def work(arrays):
        for a in arrays:
            np.testing.assert_array_equal(a, want)
        arrays.clear()  # freed on this thread
        for _ in range(20):
            y = relucore.relu(x)
            np.testing.assert_array_equal(y, want)
            y[...] = np.nan
        return True

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(work, [relucore.relu(x) for _ in range(3)]) for _ in range(16)]
        assert all(f.result() for f in futures)
    assert stats()["hits"] > before


def test_fork_then_compute_in_the_child(rng):
    x = rng.standard_normal(1 << 18).astype(np.float32)
    for _ in range(3):
        relucore.relu(x)[...] = np.nan  # cached, poisoned blocks inherited by the child

    def child():
        before = stats()["hits"]
        ys = [relucore.relu(x) for _ in range(3)]
        return ys, stats()["hits"] - before

    ys, hits = _in_os_fork(child)
    assert hits >= 1
    for y in ys:
        np.testing.assert_array_equal(y, relucore.reference.relu(x))
    np.testing.assert_array_equal(relucore.relu(x), relucore.reference.relu(x))  # the parent's cache still works


def test_cached_arrays_are_plain_numpy_arrays(rng):
    x = rng.standard_normal(1 << 17).astype(np.float64)
    relucore.relu(x)[...] = np.nan
    before = stats()["hits"]
    y = relucore.relu(x)
    assert stats()["hits"] == before + 1
    assert y.flags.owndata and y.flags.writeable and y.flags.c_contiguous and y.base is None
    want = relucore.reference.relu(x)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(y)), want)
    y.resize(x.size + 1000, refcheck=False)  # realloc through the handler: values kept, new ones zero
    np.testing.assert_array_equal(y[: x.size], want)
    np.testing.assert_array_equal(y[x.size:], 0)
    y.resize(10, refcheck=False)
    np.testing.assert_array_equal(y, want[:10])
    y[...] = 1
    assert y.sum() == 10
