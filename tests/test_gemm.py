"""The GEMM behind conv2d and linear, through ``relucore.runtime._gemm``: relucore's register tile and OpenBLAS,
on every ISA, at the edges of the tile (MR rows, NR columns) and of the cache blocks (KC, MC, NC)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _conv_helpers import assert_terms_close
from relucore.runtime import _gemm

# Edges for every compiled tile: MR 4/6/8, NR 4..48, KC 256, MC 192, NC 240/480.
M_EDGES = (0, 1, 3, 5, 7, 8, 9, 13, 17, 193)
N_EDGES = (0, 1, 7, 9, 15, 17, 23, 25, 47, 48, 49, 97, 241, 481)
K_EDGES = (0, 1, 2, 255, 256, 257, 513)
CASES = ([(m, 25, 19) for m in M_EDGES] + [(9, n, 19) for n in N_EDGES] + [(9, 25, k) for k in K_EDGES]
         + [(193, 481, 257)]
         + [(m, n, 33) for m in (1, 4) for n in (48, 64, 65, 129)])  # the unpacked forms of 1..4 rows
TRANS = ((False, False), (True, False), (False, True), (True, True))


def _operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def _expected(a, b, c0, ta, tb, alpha, beta):
    """float64 result and the sum of the absolute summands (the rounding-error scale)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64, b64 = (a64.T if ta else a64), (b64.T if tb else b64)
    exp = alpha * (a64 @ b64) + (beta * c0.astype(np.float64) if beta else 0.0)
    terms = abs(alpha) * (np.abs(a64) @ np.abs(b64)) + (abs(beta) * np.abs(c0.astype(np.float64)) if beta else 0.0)
    return exp, terms


@pytest.mark.parametrize("mnk", CASES, ids=lambda s: "x".join(map(str, s)))
def test_edges(rc, gemm, mnk, dtype, rng):
    m, n, k = mnk
    for ta, tb in TRANS:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        for alpha, beta in ((1.0, 0.0), (1.0, 1.0), (-0.5, 2.0)):
            c0 = rng.standard_normal((m, n)).astype(dtype)
            c = c0.copy()
            _gemm(a, b, c, ta, tb, alpha, beta)
            exp, terms = _expected(a, b, c0, ta, tb, alpha, beta)
            assert_terms_close(c, exp.astype(dtype), terms, f"{gemm} {m}x{n}x{k} ta={ta} tb={tb} a={alpha} b={beta}")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(0, 70), n=st.integers(0, 130), k=st.integers(0, 600), ta=st.booleans(), tb=st.booleans(),
       pad=st.integers(0, 5), f64=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_random_shapes(rc, gemm, m, n, k, ta, tb, pad, f64, seed):
    """Random sizes and leading dimensions (rows padded by `pad` elements), both transposes."""
    dtype = np.float64 if f64 else np.float32
    r = np.random.default_rng(seed)
    a_full = r.standard_normal(((k, m + pad) if ta else (m, k + pad))).astype(dtype)
    b_full = r.standard_normal(((n, k + pad) if tb else (k, n + pad))).astype(dtype)
    a = a_full[:, :m] if ta else a_full[:, :k]
    b = b_full[:, :k] if tb else b_full[:, :n]
    c_full = r.standard_normal((m, n + pad)).astype(dtype)
    c0 = c_full.copy()
    _gemm(a, b, c_full[:, :n], ta, tb, 1.0, 1.0)
    exp, terms = _expected(a, b, c0[:, :n], ta, tb, 1.0, 1.0)
    assert_terms_close(c_full[:, :n], exp.astype(dtype), terms, f"{gemm} {m}x{n}x{k} ta={ta} tb={tb} pad={pad}")
    assert (c_full[:, n:] == c0[:, n:]).all(), "wrote into the row padding"


def test_beta_zero_never_reads_c(rc, gemm, dtype, rng):
    a, b = _operands(rng, 11, 50, 300, False, False, dtype)
    c = np.full((11, 50), np.nan, dtype)
    _gemm(a, b, c)
    assert not np.isnan(c).any()
    c = np.full((3, 4), np.nan, dtype)  # k = 0: C = 0 * C is zero, not NaN
    _gemm(np.zeros((3, 0), dtype), np.zeros((0, 4), dtype), c)
    assert (c == 0).all()


def test_strided_views(rc, gemm, dtype, rng):
    """Leading dimensions larger than the row: submatrices of bigger arrays, C included."""
    big_a, big_b = rng.standard_normal((40, 300)).astype(dtype), rng.standard_normal((300, 120)).astype(dtype)
    big_c = rng.standard_normal((40, 120)).astype(dtype)
    a, b = big_a[3:20, 5:262], big_b[5:262, 7:60]
    c0 = big_c.copy()
    _gemm(a, b, big_c[2:19, 10:63], False, False, 1.0, 1.0)
    exp, terms = _expected(a, b, c0[2:19, 10:63], False, False, 1.0, 1.0)
    assert_terms_close(big_c[2:19, 10:63], exp.astype(dtype), terms, "strided")
    outside = np.ones(big_c.shape, bool)
    outside[2:19, 10:63] = False
    assert (big_c[outside] == c0[outside]).all(), "wrote outside C"


def test_special_values_propagate(rc, gemm, dtype, rng):
    """NaN/inf in a row of A reach exactly that row of C (no zero padding or skipped block hides them)."""
    a, b = _operands(rng, 13, 50, 260, False, False, dtype)
    a[4, 258] = np.nan
    a[9, 0] = np.inf
    b[0] = np.abs(b[0]) + 1  # inf * positive: +inf in row 9
    c = np.zeros((13, 50), dtype)
    _gemm(a, b, c)
    assert np.isnan(c[4]).all() and np.isposinf(c[9]).all()
    rest = np.delete(c, [4, 9], axis=0)
    assert np.isfinite(rest).all()


def test_errors(rc):
    f32 = np.zeros((2, 2), np.float32)
    c = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match="rows"):  # reversed rows: never written past the buffer
        _gemm(np.ones((8, 8), np.float32), np.ones((8, 8), np.float32), c[::-1])
    with pytest.raises(ValueError, match="rows"):  # broadcast rows (stride 0): never read past the buffer
        _gemm(np.ones((4, 64), np.float32), np.broadcast_to(np.ones(8, np.float32), (64, 8)),
              np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        _gemm(np.ones(4, np.float32), f32, f32)
    assert (c == 0).all()
    with pytest.raises(TypeError, match="float32, float64"):
        _gemm(f32.astype(np.int32), f32.astype(np.int32), f32.astype(np.int32))
    with pytest.raises(TypeError, match="one dtype"):
        _gemm(f32, f32.astype(np.float64), f32)
    with pytest.raises(ValueError, match="mismatched"):
        _gemm(np.zeros((2, 3), np.float32), f32, f32)
    with pytest.raises(ValueError, match="'auto', 'own', 'blas'"):
        rc.use_gemm("mkl")


def test_backend_setting_and_info(rc):
    with rc.use_gemm("blas"):
        assert rc.runtime_info()["gemm"] == "scipy-openblas32"
    with rc.use_gemm("own"):
        assert rc.runtime_info()["gemm"].startswith(f"relucore {rc.get_isa()} ")
    with rc.use_gemm("auto"):  # own where it measured faster than OpenBLAS: the avx512 tile
        own = rc.runtime_info()["gemm"].startswith("relucore")
        assert own == (rc.get_isa() == "avx512")


def test_release_scratch_then_reuse(rc, gemm, rng):
    """The kept scratch (packed panels, column blocks, dweight partials) can be freed at any time;
    the next calls allocate it again and give the same results bit for bit."""
    x = rng.standard_normal((3, 4, 20, 20)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((3, 8, 20, 20)).astype(np.float32)
    first = [rc.conv2d(x, w, None, 1, 1)] + list(rc.conv2d_backward(dy, x, w, 1, 1))
    rc.release_scratch()
    again = [rc.conv2d(x, w, None, 1, 1)] + list(rc.conv2d_backward(dy, x, w, 1, 1))
    for a, b in zip(first, again):
        assert a.tobytes() == b.tobytes()
