"""The NumPy reference against hand-computed values and PyTorch 2.13 facts (as literals; no torch needed)."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import relucore.reference as ref
from _helpers import DTYPES, assert_bitwise, assert_ulp, layout, make_data, specials
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

NAN, INF = np.nan, np.inf
# Inputs and outputs below were produced by torch 2.13 (CPU) for both float32 and float64.
X = [-0.0, 0.0, NAN, INF, -INF, -1.0, 2.0]
DY = [INF, NAN, 3.0, NAN, 5.0, INF, 7.0]


def arr(values, dtype):
    return np.array(values, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
class TestTorchFacts:
    def test_relu(self, dtype):
        y = ref.relu(arr(X, dtype))
        assert_bitwise(y, arr([-0.0, 0.0, NAN, INF, 0.0, 0.0, 2.0], dtype))
        assert np.signbit(y[0]) and not np.signbit(y[4])  # relu(-0.0) = -0.0, relu(-inf) = +0.0

    def test_relu_backward(self, dtype):
        dx = ref.relu_backward(arr(DY, dtype), arr(X, dtype))
        # exactly +0 where x <= 0, even for dy = inf/NaN; NaN x passes dy
        assert_bitwise(dx, arr([0.0, 0.0, 3.0, NAN, 0.0, 0.0, 7.0], dtype))
        assert not np.signbit(ref.relu_backward(arr([-2.0], dtype), arr([0.0], dtype))[0])

    def test_leaky_relu(self, dtype):
        x = arr(X, dtype)
        y = ref.leaky_relu(x)
        s = dtype(0.01)
        assert_bitwise(y, arr([-0.0, 0.0, NAN, INF, -INF, dtype(-1.0) * s, 2.0], dtype))
        assert y.dtype == dtype
        if dtype == np.float32:
            assert y[5] == np.float32(-0.009999999776482582)
        dx = ref.leaky_relu_backward(arr(DY, dtype), x)
        assert_bitwise(dx, arr([INF, NAN, dtype(3.0) * s, NAN, dtype(5.0) * s, INF, 7.0], dtype))

    def test_elu(self, dtype):
        y = ref.elu(arr(X, dtype))
        e = {np.float32: -0.6321205496788025, np.float64: -0.6321205588285577}[dtype]
        assert_bitwise(y, arr([-0.0, 0.0, NAN, INF, -1.0, e, 2.0], dtype))
        assert np.signbit(y[0])  # expm1(-0.0) keeps the sign
        assert ref.elu(arr([-INF], dtype), alpha=0.5)[0] == dtype(-0.5)
        dx = ref.elu_backward(arr(DY, dtype), arr(X, dtype))
        assert_bitwise(dx, arr([INF, NAN, 3.0, NAN, 0.0, INF, 7.0], dtype))

    def test_sigmoid_tanh(self, dtype):
        x = arr(X, dtype)
        sig = {
            np.float32: [0.5, 0.5, NAN, 1.0, 0.0, 0.2689414322376251, 0.8807970285415649],
            np.float64: [0.5, 0.5, NAN, 1.0, 0.0, 0.2689414213699951, 0.8807970779778823],
        }[dtype]
        th = {
            np.float32: [-0.0, 0.0, NAN, 1.0, -1.0, -0.7615941762924194, 0.9640275835990906],
            np.float64: [-0.0, 0.0, NAN, 1.0, -1.0, -0.7615941559557649, 0.9640275800758169],
        }[dtype]
        assert_ulp(ref.sigmoid(x), arr(sig, dtype), ulps=2)
        y = ref.tanh(x)
        assert_ulp(y, arr(th, dtype), ulps=2)
        assert np.signbit(y[0]) and not np.signbit(y[1])

    def test_prelu_negative_weight(self, dtype):
        y = ref.prelu(arr(X, dtype), arr([-0.25], dtype))
        assert_bitwise(y, arr([0.0, -0.0, NAN, INF, INF, 0.25, 2.0], dtype))


@pytest.mark.parametrize("dtype", DTYPES)
class TestHandComputed:
    def test_relu_backward_grad_at_zero(self, dtype):
        x = arr([-0.0, 0.0, 0.0, -1.0, 1.0, NAN, 0.0], dtype)
        dy = arr([-2.0, 3.0, INF, 4.0, 5.0, 6.0, NAN], dtype)
        assert_bitwise(ref.relu_backward(dy, x, grad_at_zero=0.5), arr([-1.0, 1.5, INF, 0.0, 5.0, 6.0, NAN], dtype))
        assert_bitwise(ref.relu_backward(dy, x, grad_at_zero=1), arr([-2.0, 3.0, INF, 0.0, 5.0, 6.0, NAN], dtype))
        assert_bitwise(ref.relu_backward(dy, x, grad_at_zero=0.0), arr([0.0, 0.0, 0.0, 0.0, 5.0, 6.0, 0.0], dtype))

    def test_masks(self, dtype):
        x = arr([-1.0, 0.0, 2.0, NAN, -0.0, 3.0, 1e-30, -5.0, 7.0], dtype)
        _, m = ref.relu(x, return_mask=True)  # bits not(x <= 0): 0 0 1 1 0 1 1 0 | 1
        assert_bitwise(m, np.array([0b01101100, 0b1], np.uint8))
        _, m = ref.leaky_relu(x, return_mask=True)  # bits x > 0: 0 0 1 0 0 1 1 0 | 1
        assert_bitwise(m, np.array([0b01100100, 0b1], np.uint8))
        assert_bitwise(ref.relu(x[:0], return_mask=True)[1], np.zeros(0, np.uint8))

    def test_counts(self, dtype):
        x = np.zeros((2, 3, 2), dtype)
        x[0, 0] = [1.0, -1.0]
        x[1, 0] = [NAN, 5.0]
        x[:, 2] = [[1.0, 2.0], [3.0, INF]]
        y, c = ref.relu(x, return_counts=True)
        assert c.dtype == np.int64 and c.shape == (3,)
        assert c.tolist() == [2, 0, 4]
        y, c = ref.relu(x.ravel(), return_counts=True)
        assert c.dtype == np.int64 and c.shape == () and int(c) == 6
        # counts are of outputs y > 0: a negative slope makes negative inputs count
        _, c = ref.leaky_relu(arr([-1.0, -2.0, 3.0, 0.0, -0.0], dtype), -0.5, return_counts=True)
        assert int(c) == 3
        _, c = ref.elu(arr([[-1.0, 2.0, 0.0]], dtype), return_counts=True)
        assert c.tolist() == [0, 1, 0]
        y, m, c = ref.relu(np.zeros((0, 4), dtype), return_mask=True, return_counts=True)
        assert y.shape == (0, 4) and m.shape == (0,) and c.tolist() == [0, 0, 0, 0]

    def test_prelu(self, dtype):
        x = arr([[-1.0, 2.0], [-3.0, -0.0]], dtype)
        dy = arr([[1.0, 1.0], [2.0, 5.0]], dtype)
        w = arr([0.25, 0.5], dtype)
        assert_bitwise(ref.prelu(x, w), arr([[-0.25, 2.0], [-0.75, -0.0]], dtype))
        dx, dw = ref.prelu_backward(dy, x, w)
        assert_bitwise(dx, arr([[0.25, 1.0], [0.5, 2.5]], dtype))
        assert_bitwise(dw, arr([-7.0, 0.0], dtype))
        dx, dw = ref.prelu_backward(dy, x, w[:1])  # one shared slope: sum over everything
        assert_bitwise(dw, arr([-7.0], dtype))
        # x > 0 contributes exactly 0 to dweight even when dy is NaN
        dx, dw = ref.prelu_backward(arr([[NAN, 1.0]], dtype), arr([[INF, -2.0]], dtype), w)
        assert_bitwise(dx, arr([[NAN, 0.5]], dtype))
        assert_bitwise(dw, arr([0.0, -2.0], dtype))
        # no channel axis below 2-D
        assert_bitwise(ref.prelu(arr([-4.0, 4.0], dtype), w[:1]), arr([-1.0, 4.0], dtype))
        assert_bitwise(ref.prelu(arr(-4.0, dtype), w[:1]), arr(-1.0, dtype))

    def test_prelu_nchw_matches_loop(self, dtype):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((3, 4, 5, 2)).astype(dtype)
        dy = rng.standard_normal(x.shape).astype(dtype)
        w = rng.standard_normal(4).astype(dtype)
        y = ref.prelu(x, w)
        dx, dw = ref.prelu_backward(dy, x, w)
        for c in range(4):
            xc, dyc = x[:, c], dy[:, c]
            assert_bitwise(y[:, c], np.where(xc > 0, xc, w[c] * xc))
            assert_bitwise(dx[:, c], np.where(xc > 0, dyc, w[c] * dyc))
            expect = sum(float(v) for v in np.where(xc > 0, 0, xc * dyc).ravel())
            assert dw[c] == pytest.approx(expect, rel=1e-5 if dtype == np.float32 else 1e-12)

    def test_backward_formulas(self, dtype):
        y = arr([0.0, 0.25, 0.5, 1.0, NAN], dtype)
        dy = arr([2.0, 4.0, 1.0, 3.0, 1.0], dtype)
        assert_bitwise(ref.sigmoid_backward(dy, y), arr([0.0, 0.75, 0.25, 0.0, NAN], dtype))
        assert_bitwise(ref.tanh_backward(dy, y), arr([2.0, 3.75, 0.75, 0.0, NAN], dtype))
        assert_bitwise(ref.elu_backward(arr([2.0], dtype), arr([0.0], dtype), alpha=0.5), arr([1.0], dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_computes_in_input_dtype(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(1000).astype(dtype) - 1
    s = dtype(0.1)
    assert_bitwise(ref.leaky_relu(x, 0.1), np.where(x > 0, x, x * s))
    assert_bitwise(ref.elu(x, 0.3), np.where(x <= 0, dtype(0.3) * np.expm1(x), x))
    one = dtype(1)
    assert_bitwise(ref.sigmoid(x), one / (one + np.exp(-x)))
    for f in (ref.relu, ref.leaky_relu, ref.elu, ref.sigmoid, ref.tanh):
        assert f(x).dtype == dtype
    if dtype == np.float32:  # the f64-then-round result differs somewhere: we really stay in float32
        assert (ref.leaky_relu(x, 0.1) != (x.astype(np.float64) * 0.1).astype(np.float32)).any()


def test_zero_d_and_empty_return_arrays():
    for dtype in DTYPES:
        x = np.array(-2.0, dtype)
        for f in (ref.relu, ref.leaky_relu, ref.elu, ref.sigmoid, ref.tanh):
            y = f(x)
            assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == dtype
        for f in (ref.relu_backward, ref.leaky_relu_backward, ref.elu_backward, ref.sigmoid_backward,
                  ref.tanh_backward):
            dx = f(x, x)
            assert isinstance(dx, np.ndarray) and dx.shape == () and dx.dtype == dtype
        dx, dw = ref.prelu_backward(x, x, np.ones(1, dtype))
        assert dx.shape == () and dw.shape == (1,) and dw[0] == 4.0
        e = np.zeros((0, 2), dtype)
        assert ref.relu(e).shape == (0, 2)
        assert ref.prelu_backward(e, e, np.ones(2, dtype))[1].tolist() == [0.0, 0.0]


def test_array_likes_are_converted():
    assert_bitwise(ref.relu([-1.0, 2.0]), np.array([0.0, 2.0]))
    with pytest.raises(TypeError, match="float32 and float64"):
        ref.relu([-1, 2])  # ints are never cast


def test_no_warnings_on_specials():
    for dtype in DTYPES:
        x = specials(dtype)
        dy = x[::-1].copy()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ref.relu(x, return_mask=True, return_counts=True)
            ref.relu_backward(dy, x, grad_at_zero=0.5)
            ref.leaky_relu_backward(dy, x, 3.0)
            ref.elu(x, 2.0)
            ref.elu_backward(dy, x, 2.0)
            ref.sigmoid_backward(dy, ref.sigmoid(x))
            ref.tanh_backward(dy, ref.tanh(x))
            ref.prelu_backward(dy, x, np.ones(1, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["x", "dy", "view", "overlap"])
def test_out(dtype, kind):
    rng = np.random.default_rng(3)
    x = make_data(rng, (6, 5), dtype)
    dy = make_data(rng, (6, 5), dtype)
    expect_y, expect_m = ref.relu(x, return_mask=True)
    expect_dx = ref.leaky_relu_backward(dy, x, 0.2)
    if kind == "x":
        xc = x.copy()
        r = ref.relu(xc, out=xc, return_mask=True)
        assert r[0] is xc
        assert_bitwise(r[1], expect_m)  # the mask is of the input, not the overwritten output
        assert_bitwise(xc, expect_y)
    elif kind == "dy":
        dyc = dy.copy()
        assert ref.leaky_relu_backward(dyc, x, 0.2, out=dyc) is dyc
        assert_bitwise(dyc, expect_dx)
    elif kind == "view":
        out = layout(np.zeros_like(x), "step2")
        assert ref.relu(x, out=out) is out
        assert_bitwise(out, expect_y)
        assert np.isnan(out.base[..., 1::2]).all()  # gaps untouched
    else:
        buf = make_data(rng, 31, dtype)
        src = buf[1:].copy()
        out = buf[:-1]
        assert ref.elu(buf[1:], out=out) is out
        assert_bitwise(buf[:-1], ref.elu(src))


def test_reference_does_not_touch_the_extension():
    import ast

    import relucore._checks as checks
    import relucore.reference as reference
    import relucore.reference.activations as act
    import relucore.reference.conv as conv

    for mod in (reference, act, conv, checks):
        for node in ast.walk(ast.parse(inspect.getsource(mod))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            else:
                continue
            for name in names:  # docstrings may mention the native modules; imports may not
                assert not any(bad in name for bad in ("_core", "functional", "convolution", "ufuncs")), (mod, name)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float32, np.float64]), hnp.array_shapes(min_dims=0, max_dims=3, max_side=9),
                  elements=st.floats(width=32)))
def test_mask_round_trip_property(x):
    dy = np.arange(x.size, dtype=x.dtype).reshape(x.shape) - 3
    y, m, c = ref.relu(x, return_mask=True, return_counts=True)
    assert m.shape == ((x.size + 7) // 8,)
    assert_bitwise(ref.relu_backward(dy, mask=m), ref.relu_backward(dy, x))
    _, m2 = ref.leaky_relu(x, 0.25, return_mask=True)
    assert_bitwise(ref.leaky_relu_backward(dy, mask=m2, negative_slope=0.25), ref.leaky_relu_backward(dy, x, 0.25))
    assert int(np.sum(c)) == int(np.count_nonzero(y > 0))


def test_docstring_examples():
    import doctest

    import relucore.reference.activations as act

    globs = {"np": np, **{name: getattr(act, name) for name in act.__all__}}
    result = doctest.testmod(act, extraglobs=globs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 12 and result.failed == 0
