"""The unpacked row form of the GEMM (at most 4 rows of A, B row-major: batch-1 and small-batch
``rc.linear(x, W.T)`` with ``(in, out)`` weights), which reads B without packing, a strip of
columns at a time: native against the reference on every ISA and both GEMM backends at the edges
of its register tile (4 vectors of columns), along the depth and around the depth split, with
alpha and beta, non-contiguous x, NaN and inf, and bitwise 1-vs-2-thread results where the depth
split promises them."""

from __future__ import annotations

import numpy as np
import pytest
import relucore.reference as R
from _conv_helpers import KINDS, assert_terms_close, view
from _helpers import assert_bitwise
from relucore.runtime import _gemm
from test_linear import _abs64, by_threads, check

M = (1, 2, 3, 4)
N_EDGES = (1, 7, 15, 16, 17, 31, 33, 47, 48, 49, 63, 64, 65, 129)  # vectors and 3/4-vector tiles
K_EDGES = tuple(range(1, 34)) + (63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 4100)  # blocks, depth split


def _expected(a, b, c0, alpha, beta):
    a64, b64, c64 = (v.astype(np.float64) for v in (a, b, c0))
    exp = alpha * (a64 @ b64) + (beta * c64 if beta else 0.0)
    terms = abs(alpha) * (np.abs(a64) @ np.abs(b64)) + (abs(beta) * np.abs(c64) if beta else 0.0)
    return exp, terms


@pytest.mark.parametrize("k", K_EDGES)
def test_rows_depth_edges(rc, gemm, dtype, k, rng):
    for m in M:
        n = 17 + 16 * m  # a masked last vector, 1 to 4 whole vectors before it
        a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        for alpha, beta in ((1.0, 0.0), (1.0, 1.0), (-0.5, 2.0)):
            c0 = rng.standard_normal((m, n)).astype(dtype)
            c = c0.copy()
            _gemm(a, b, c, False, False, alpha, beta)
            exp, terms = _expected(a, b, c0, alpha, beta)
            assert_terms_close(c, exp.astype(dtype), terms, f"{m}x{n}x{k} alpha={alpha} beta={beta}")


@pytest.mark.parametrize("n", N_EDGES)
def test_rows_column_edges(rc, gemm, dtype, n, rng):
    for m in M:
        for k in (5, 70):
            a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
            c0 = rng.standard_normal((m, n)).astype(dtype)
            c = c0.copy()
            _gemm(a, b, c, False, False, 1.0, 1.0)
            exp, terms = _expected(a, b, c0, 1.0, 1.0)
            assert_terms_close(c, exp.astype(dtype), terms, f"{m}x{n}x{k}")


def test_rows_beta_zero_ignores_c(rc, gemm, dtype, rng):
    """beta = 0 never reads C (NaN there does not leak); beta = 1 adds it once."""
    a, b = rng.standard_normal((3, 200)).astype(dtype), rng.standard_normal((200, 50)).astype(dtype)
    c = np.full((3, 50), np.nan, dtype)
    _gemm(a, b, c, False, False, 1.0, 0.0)
    exp, terms = _expected(a, b, np.zeros((3, 50), dtype), 1.0, 0.0)
    assert_terms_close(c, exp.astype(dtype), terms, "beta=0")
    c0 = np.ones((3, 50), dtype)
    c = c0.copy()
    _gemm(a, b, c, False, False, 1.0, 1.0)
    exp, terms = _expected(a, b, c0, 1.0, 1.0)
    assert_terms_close(c, exp.astype(dtype), terms, "beta=1")


@pytest.mark.parametrize("shape", [(1, 4096, 1000), (2, 300, 65), (4, 1100, 33), (3, 20, 130)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", ["C"] + KINDS[:2])
def test_linear_weight_in_out(rc, gemm, dtype, shape, kind, rng):
    """rc.linear(x, W.T, b) for 1..4 rows, x contiguous or not, against the reference."""
    n, n_in, n_out = shape
    x = view(rng.standard_normal((n, n_in)).astype(dtype), kind) if kind != "C" else \
        rng.standard_normal((n, n_in)).astype(dtype)
    wt = rng.standard_normal((n_in, n_out)).astype(dtype)
    b, dy = rng.standard_normal(n_out).astype(dtype), rng.standard_normal((n, n_out)).astype(dtype)
    check(rc, x, wt.T, b, dy, f"{shape} {kind}")


def test_linear_nan_inf(rc, gemm, dtype, rng):
    x = rng.standard_normal((2, 300)).astype(dtype)
    wt = rng.standard_normal((300, 70)).astype(dtype)
    x[0, 5], x[1, 250] = np.nan, np.inf
    wt[100, 3] = -np.inf
    b = rng.standard_normal(70).astype(dtype)
    with np.errstate(invalid="ignore"):
        ax, aw, ab, _ = _abs64(x, wt.T, b, np.zeros((2, 70), dtype))
        exp, terms = R.linear(x, wt.T, b), R.linear(ax, aw, ab)
    got = rc.linear(x, wt.T, b)
    assert np.isnan(got[0]).all() and not np.isfinite(got[1]).any()
    assert_terms_close(got, exp, terms, "NaN and inf")


@pytest.mark.parametrize("shape", [(1, 4096, 1000), (4, 2048, 100), (2, 1024, 7)], ids=lambda s: "x".join(map(str, s)))
def test_rows_depth_split_threads_bitwise(rc, gemm, dtype, shape, rng):
    n, n_in, n_out = shape
    x, wt = rng.standard_normal((n, n_in)).astype(dtype), rng.standard_normal((n_in, n_out)).astype(dtype)
    b, dy = rng.standard_normal(n_out).astype(dtype), rng.standard_normal((n, n_out)).astype(dtype)
    res = by_threads(rc, x, wt.T, b, dy)
    assert_bitwise(res[1][0], res[0][0], "y (split along the depth): 2 threads vs 1")


def test_batch1_linear_runs_on_two_threads():
    """A batch-1 product with a large weight is bandwidth-bound at a fraction of a thread's
    multiply-add grain: it must still run on both threads (it ran on one)."""
    import time

    import relucore

    x = np.ones((1, 4096), np.float32)
    wt = np.ones((4096, 1000), np.float32)
    before = relucore.get_num_threads()
    relucore.set_num_threads(2)
    try:
        relucore.runtime._reset_pool_stats()
        deadline = time.monotonic() + 30  # a busy machine runs jobs on fewer threads for a while
        while relucore.runtime._pool_stats()["most_threads"] < 2 and time.monotonic() < deadline:
            np.testing.assert_array_equal(relucore.linear(x, wt.T), np.full((1, 1000), 4096, np.float32))
        assert relucore.runtime._pool_stats()["most_threads"] == 2
    finally:
        relucore.set_num_threads(before)
