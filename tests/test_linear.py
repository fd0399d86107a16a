"""linear / linear_backward: literals, numeric gradients, native against the reference on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
import relucore.reference as R
from _conv_helpers import KINDS, assert_grad, assert_terms_close, numeric_grad, view
from _helpers import assert_bitwise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# --------------------------------------------------------------------------- reference: literals


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_literal(dtype):
    w = np.array([[1.0, 1.0], [0.0, 1.0], [2.0, -1.0]], dtype)
    b = np.array([0.5, 0.0, -1.0], dtype)
    assert_bitwise(R.linear(np.array([1.0, 2.0], dtype), w, b), np.array([3.5, 2.0, -1.0], dtype))
    assert_bitwise(R.linear(np.array([[1.0, 2.0], [3.0, 0.0]], dtype), w),
                   np.array([[3.0, 2.0, 0.0], [3.0, 0.0, 6.0]], dtype))
    dy = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]], dtype)
    x = np.array([[1.0, 2.0], [3.0, 0.0]], dtype)
    dx, dw, db = R.linear_backward(dy, x, w)
    assert_bitwise(dx, np.array([[3.0, 0.0], [0.0, 2.0]], dtype))          # dy @ W
    assert_bitwise(dw, np.array([[1.0, 2.0], [6.0, 0.0], [1.0, 2.0]], dtype))  # dy.T @ x
    assert_bitwise(db, np.array([1.0, 2.0, 1.0], dtype))


SHAPES = [  # (x.shape, out_features)
    ((7,), 3),                 # 1-D x
    ((5, 7), 4),
    ((2, 3, 7), 5),            # leading dims are flattened
    ((2, 1, 3, 6), 2),
    ((1, 1), 1),
    ((9, 33), 17),             # odd sizes around SIMD widths
    ((64, 65), 10),
]


def shape_id(s):
    return f"x{s[0]}o{s[1]}".replace(" ", "")


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_shapes(shape, rng):
    xs, o = shape
    x, w, b = rng.standard_normal(xs), rng.standard_normal((o, xs[-1])), rng.standard_normal(o)
    y = R.linear(x, w, b)
    assert y.shape == xs[:-1] + (o,)
    np.testing.assert_allclose(y, np.einsum("...i,oi->...o", x, w) + b, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = R.linear_backward(dy, x, w)
    assert dx.shape == xs and dw.shape == w.shape and db.shape == (o,)
    lead = tuple(range(len(xs) - 1))
    np.testing.assert_allclose(db, dy.sum(lead) if lead else dy, rtol=1e-12)
    outer_sum = sum(np.outer(dy[i], x[i]) for i in np.ndindex(xs[:-1]))
    np.testing.assert_allclose(dw, outer_sum, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32(rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (2, 4), (2,)))
    assert R.linear(x, w, b).dtype == np.float32
    assert all(a.dtype == np.float32 for a in R.linear_backward(np.ones((3, 2), np.float32), x, w))


def test_empty_batch_reference():
    x, w = np.zeros((0, 4)), np.ones((3, 4))
    assert R.linear(x, w, np.ones(3)).shape == (0, 3)
    dx, dw, db = R.linear_backward(np.zeros((0, 3)), x, w)
    assert dx.shape == (0, 4) and not dw.any() and not db.any()


# --------------------------------------------------------------------------- gradients (float64)


def _numeric(m, xs, o):
    lin, back = m.linear, m.linear_backward
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal(xs), rng.standard_normal((o, xs[-1])), rng.standard_normal(o)
    dy = rng.standard_normal(xs[:-1] + (o,))
    dx, dw, db = back(dy, x, w)
    assert_grad(dx, numeric_grad(lambda v: np.sum(dy * lin(v, w, b)), x), "dx")
    assert_grad(dw, numeric_grad(lambda v: np.sum(dy * lin(x, v, b)), w), "dweight")
    assert_grad(db, numeric_grad(lambda v: np.sum(dy * lin(x, w, v)), b), "dbias")


@pytest.mark.parametrize("shape", SHAPES[:4], ids=shape_id)
def test_backward_numeric(shape):
    _numeric(R, *shape)


@pytest.mark.parametrize("shape", SHAPES[:4], ids=shape_id)
def test_backward_numeric_native(rc, shape):
    _numeric(rc, *shape)


# --------------------------------------------------------------------------- native vs reference


def _abs64(*arrays):
    return [None if a is None else np.abs(a.astype(np.float64)) for a in arrays]


def check(m, x, w, b, dy, what=""):
    lin, back = m.linear, m.linear_backward
    ax, aw, ab, ady = _abs64(x, w, b, dy)
    assert_terms_close(lin(x, w, b), R.linear(x, w, b), R.linear(ax, aw, ab), f"linear {what}")
    got = back(dy, x, w)
    assert isinstance(got, tuple) and len(got) == 3
    for name, g, e, t in zip(("dx", "dweight", "dbias"), got, R.linear_backward(dy, x, w),
                             R.linear_backward(ady, ax, aw)):
        assert_terms_close(g, e, t, f"linear_backward {name} {what}")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_native(rc, gemm, shape, bias, dtype, rng):
    xs, o = shape
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal((o, xs[-1])).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    dy = rng.standard_normal(xs[:-1] + (o,)).astype(dtype)
    saved = [a.copy() for a in (x, w, dy)]
    check(rc, x, w, b, dy, f"{shape}")
    for a, s in zip((x, w, dy), saved):
        assert_bitwise(a, s, "input modified")


@pytest.mark.parametrize("kind", KINDS)
def test_layouts_native(rc, kind, dtype, rng):
    x, w = rng.standard_normal((6, 5)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    b, dy = rng.standard_normal(4).astype(dtype), rng.standard_normal((6, 4)).astype(dtype)
    check(rc, view(x, kind), view(w, kind), view(b, kind), view(dy, kind), kind)
    x3 = rng.standard_normal((2, 3, 5)).astype(dtype)
    check(rc, view(x3, kind), w, b, view(rng.standard_normal((2, 3, 4)).astype(dtype), kind), kind + " 3-D")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lead=st.lists(st.integers(1, 4), min_size=0, max_size=3), n_in=st.integers(1, 40),
       n_out=st.integers(1, 20), seed=st.integers(0, 2**32 - 1), f64=st.booleans(), bias=st.booleans())
def test_random_native(rc, lead, n_in, n_out, seed, f64, bias):
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(lead) + (n_in,)).astype(dtype)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    check(rc, x, w, b, rng.standard_normal(tuple(lead) + (n_out,)).astype(dtype), f"{x.shape}->{n_out}")


def test_empty_batch_native(rc, dtype):
    x, w, b = np.zeros((0, 4), dtype), np.ones((3, 4), dtype), np.ones(3, dtype)
    assert_bitwise(rc.linear(x, w, b), R.linear(x, w, b))
    for g, e in zip(rc.linear_backward(np.zeros((0, 3), dtype), x, w),
                    R.linear_backward(np.zeros((0, 3), dtype), x, w)):
        assert_bitwise(g, e)


def by_threads(rc, x, w, b, dy):
    """``[(y, dx, dweight, dbias)]`` with 1 thread, then with 2."""
    before = rc.get_num_threads()
    res = []
    try:
        for t in (1, 2):
            rc.set_num_threads(t)
            res.append((rc.linear(x, w, b), *rc.linear_backward(dy, x, w)))
    finally:
        rc.set_num_threads(before)
    return res


def test_threads_native(rc, dtype, rng):
    x, w = rng.standard_normal((256, 128)).astype(dtype), rng.standard_normal((64, 128)).astype(dtype)
    b, dy = rng.standard_normal(64).astype(dtype), rng.standard_normal((256, 64)).astype(dtype)
    res = by_threads(rc, x, w, b, dy)
    ax, aw, ab, ady = _abs64(x, w, b, dy)
    terms = (R.linear(ax, aw, ab), *R.linear_backward(ady, ax, aw))
    for name, one, two, t in zip(("y", "dx", "dweight", "dbias"), *res, terms):
        assert_terms_close(two, one, t, f"{name}: 2 threads vs 1")
