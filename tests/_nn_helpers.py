"""Helpers for the relucore.nn tests: central-difference gradients of a module."""

from __future__ import annotations

import numpy as np

H = 1e-6


def numeric_grad(f, a: np.ndarray) -> np.ndarray:
    """d f() / d a by central differences, perturbing ``a`` in place element by element."""
    g = np.zeros_like(a, dtype=np.float64)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    assert np.shares_memory(flat, a)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        fp = f()
        flat[i] = old - H
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * H)
    return g


def check_module_gradients(m, x: np.ndarray, rng, rtol=1e-5, atol=1e-7) -> None:
    """m.backward against central differences of sum(w * m(x)), for x and every parameter."""
    x = np.array(x, dtype=np.float64)
    w = rng.standard_normal(m(x).shape)
    m.backward(w)  # consume that forward's cache

    def loss():
        return float(np.sum(w * m(x)))

    m.zero_grad()
    loss()  # a forward for the backward below
    dx = m.backward(w)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=rtol, atol=atol, err_msg="dx")
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, numeric_grad(loss, p.data), rtol=rtol, atol=atol, err_msg=name)
