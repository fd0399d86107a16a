"""Every backward against central differences of its forward (float64, away from the kinks)."""

from __future__ import annotations

import numpy as np
import pytest

H = 1e-6


def _away_from_kinks(rng, shape):
    """Values with |x| in [0.1, 2]: no finite-difference step crosses 0."""
    return np.asarray(rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape), dtype=np.float64)


def numeric_grad(f, x, w):
    """d/dx of sum(w * f(x)) by central differences, element by element."""
    assert isinstance(x, np.ndarray) and x.flags.c_contiguous
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        fp = np.sum(w * f(x))
        flat[i] = old - H
        fm = np.sum(w * f(x))
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * H)
    return g


def _check(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


SHAPE = (2, 3, 4)


@pytest.mark.parametrize("g0", [0.0, 0.5])
def test_relu(rc, ref, g0):
    for m in (rc, ref):
        rng = np.random.default_rng(10)
        x, w = _away_from_kinks(rng, SHAPE), rng.standard_normal(SHAPE)
        _check(m.relu_backward(w, x, grad_at_zero=g0), numeric_grad(m.relu, x, w))
        _, mask = m.relu(x, return_mask=True)
        _check(m.relu_backward(w, mask=mask), numeric_grad(m.relu, x, w))


@pytest.mark.parametrize("slope", [0.01, 0.3, -1.5])
def test_leaky_relu(rc, ref, slope):
    for m in (rc, ref):
        rng = np.random.default_rng(11)
        x, w = _away_from_kinks(rng, SHAPE), rng.standard_normal(SHAPE)
        def f(v, m=m):
            return m.leaky_relu(v, slope)

        _check(m.leaky_relu_backward(w, x, slope), numeric_grad(f, x, w))
        _, mask = m.leaky_relu(x, slope, return_mask=True)
        _check(m.leaky_relu_backward(w, negative_slope=slope, mask=mask), numeric_grad(f, x, w))


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_elu(rc, ref, alpha):
    for m in (rc, ref):
        rng = np.random.default_rng(12)
        x, w = _away_from_kinks(rng, SHAPE), rng.standard_normal(SHAPE)
        _check(m.elu_backward(w, x, alpha), numeric_grad(lambda v, m=m: m.elu(v, alpha), x, w))


def test_sigmoid_tanh(rc, ref):
    for m in (rc, ref):
        rng = np.random.default_rng(13)
        x, w = rng.uniform(-4, 4, SHAPE), rng.standard_normal(SHAPE)
        _check(m.sigmoid_backward(w, m.sigmoid(x)), numeric_grad(m.sigmoid, x, w))
        _check(m.tanh_backward(w, m.tanh(x)), numeric_grad(m.tanh, x, w))


def test_relu6(rc, ref):
    for m in (rc, ref):
        rng = np.random.default_rng(14)
        x = rng.uniform(0.1, 5.9, SHAPE) * rng.choice([-1.0, 1.0], SHAPE)
        x[0, 0] = [6.5, 7.0, 100.0, -6.5]  # past the cap, away from it
        w = rng.standard_normal(SHAPE)
        _check(m.relu6_backward(w, x), numeric_grad(m.relu6, x, w))
        _, mask = m.relu6(x, return_mask=True)
        _check(m.relu6_backward(w, mask=mask), numeric_grad(m.relu6, x, w))


@pytest.mark.parametrize("shape, nw", [((2, 3, 4), 3), ((2, 3, 4), 1), ((3, 2, 2, 2), 2), ((7,), 1), ((), 1)])
def test_prelu(rc, ref, shape, nw):
    for m in (rc, ref):
        rng = np.random.default_rng(14)
        x, dy = _away_from_kinks(rng, shape), np.asarray(rng.standard_normal(shape))
        weight = rng.uniform(-0.5, 0.5, nw)
        dx, dweight = m.prelu_backward(dy, x, weight)
        assert dweight.shape == weight.shape
        _check(dx, numeric_grad(lambda v, m=m, w=weight: m.prelu(v, w), x, dy))
        _check(dweight, numeric_grad(lambda wv, m=m, x=x: m.prelu(x, wv), weight, dy))
