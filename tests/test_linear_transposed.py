"""linear / linear_backward with transposed operands (the ``W.T`` of ``x @ W``, read in place, and
dweight returned in the weight's layout) and with a long depth over a small output (the depth
split: fixed chunks, the same sums for any thread count), native against the reference on every
ISA and both GEMM backends."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import relucore.reference as R
from _conv_helpers import assert_terms_close
from _helpers import assert_bitwise
from test_linear import _abs64, by_threads, check

SHAPES = [  # (rows, in_features, out_features)
    (5, 7, 4),
    (1, 33, 17),      # batch 1
    (9, 1, 3),        # in_features 1
    (6, 13, 1),       # out_features 1
    (100, 4320, 10),  # long depth, small output: split along it
    (3, 1029, 2),     # a depth not a multiple of the chunking
    (1, 2000, 1),     # a single output element
    (130, 2100, 1),
]


def _operands(rng, dtype, n, n_in, n_out):
    x = rng.standard_normal((n, n_in)).astype(dtype)
    wt = rng.standard_normal((n_in, n_out)).astype(dtype)  # (in, out), C-contiguous: x @ wt
    b = rng.standard_normal(n_out).astype(dtype)
    dy = rng.standard_normal((n, n_out)).astype(dtype)
    return x, wt, b, dy


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_transposed(rc, gemm, dtype, shape, rng):
    x, wt, b, dy = _operands(rng, dtype, *shape)
    check(rc, x, wt.T, b, dy, "W.T")
    y = rc.linear(x, wt.T, b)
    dx, dw, db = rc.linear_backward(dy, x, wt.T)
    assert dw.shape == wt.T.shape and dw.T.flags.c_contiguous, "dweight takes the weight's layout"
    # the copying path gives the same values (up to the order of the sums)
    ax, aw, ab, ady = _abs64(x, wt.T, b, dy)
    copy = np.ascontiguousarray(wt.T)
    assert_terms_close(y, rc.linear(x, copy, b), R.linear(ax, aw, ab), "y vs copied weight")
    for name, g, e, t in zip(("dx", "dweight", "dbias"), (dx, dw, db), rc.linear_backward(dy, x, copy),
                             R.linear_backward(ady, ax, aw)):
        assert_terms_close(g, e, t, f"{name} vs copied weight")


@pytest.mark.parametrize("shape", SHAPES[:5], ids=lambda s: "x".join(map(str, s)))
def test_x_transposed(rc, gemm, dtype, shape, rng):
    x, wt, b, dy = _operands(rng, dtype, *shape)
    xt = np.ascontiguousarray(x.T)  # x read as the transpose of an (in, rows) array
    check(rc, xt.T, wt.T, b, dy, "x.T, W.T")
    check(rc, xt.T, np.ascontiguousarray(wt.T), b, dy, "x.T")


def test_transposed_empty(rc, dtype):
    for n, n_in, n_out in ((0, 4, 3), (2, 0, 3), (2, 4, 0)):
        x, wt = np.ones((n, n_in), dtype), np.ones((n_in, n_out), dtype)
        dy = np.ones((n, n_out), dtype)
        assert_bitwise(rc.linear(x, wt.T), R.linear(x, wt.T))
        got, exp = rc.linear_backward(dy, x, wt.T), R.linear_backward(dy, x, wt.T)
        for g, e in zip(got, exp):
            assert_bitwise(g, e)
        assert got[1].T.flags.c_contiguous


def _peak(f):
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_no_copy(rc):
    """NumPy's allocations are traced: a copy of the 16 MB weight would show in the peak."""
    rng = np.random.default_rng(0)
    x, wt, b, dy = _operands(rng, np.float32, 4, 4096, 1024)
    big = wt.nbytes
    assert _peak(lambda: rc.linear(x, wt.T, b)) < big // 4
    assert _peak(lambda: rc.linear(x, np.ascontiguousarray(wt.T), b)) >= big  # the measure sees a copy
    # backward: dweight itself is one weight-sized array, a copy would be a second
    assert _peak(lambda: rc.linear_backward(dy, x, wt.T)) < big + big // 4
    xt = np.ascontiguousarray(rng.standard_normal((4096, 256)).astype(np.float32))  # x = xt.T, 4 MB
    dy = np.ones((256, 1024), np.float32)
    dx_bytes = xt.nbytes  # dx is x-sized: the outputs alone peak at big + dx_bytes
    assert _peak(lambda: rc.linear_backward(dy, xt.T, wt.T)) < big + dx_bytes + xt.nbytes // 2


@pytest.mark.parametrize("gemm_shape", [(100, 4320, 100), (3, 1029, 2), (1, 4096, 1), (7, 1500, 40)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("transposed", [False, True], ids=["W", "W.T"])
def test_depth_split_threads_bitwise(rc, gemm, dtype, gemm_shape, transposed, rng):
    x, wt, b, dy = _operands(rng, dtype, *gemm_shape)
    w = wt.T if transposed else np.ascontiguousarray(wt.T)
    res = by_threads(rc, x, w, b, dy)
    assert_bitwise(res[1][0], res[0][0], "y (split along the depth): 2 threads vs 1")
    ax, aw, ab, ady = _abs64(x, w, b, dy)
    for name, one, two, t in zip(("dx", "dweight", "dbias"), res[0][1:], res[1][1:], R.linear_backward(ady, ax, aw)):
        assert_terms_close(two, one, t, f"{name}: 2 threads vs 1")
    check(rc, x, w, b, dy, "depth split")
