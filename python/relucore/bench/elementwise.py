"""Elementwise cases: the ReLU family, sigmoid and tanh, forward and backward.

Inputs are standard-normal (half negative, so branchy code pays for its mispredictions as it
would on real activations) in an NCHW-like shape, generated once per (size, dtype) and shared by
every case of that size. The NumPy baselines are what one would write by hand; ``bytes`` counts
each operand read or written once.
"""

from __future__ import annotations

import functools
from typing import List, Sequence

import numpy as np

import relucore as rc

from .cases import Case, assert_results_match

SLOPE = 0.01  # leaky_relu negative_slope (the default)
ALPHA = 1.0  # elu alpha (the default)
TARGET_OUT_PCT = 80.0  # relu out= at 16M float32: >= 80% of copy bandwidth
TARGET_OUT_N = 16 * 1024 * 1024


def _ref():
    import relucore.reference as reference

    return reference


def nchw_shape(n: int) -> tuple:
    """An (N, C, H, W) shape with ``n`` elements: C = 16 when it divides, H = W <= 32."""
    c = next(k for k in (16, 8, 4, 2, 1) if n % k == 0)
    rest = n // c
    h = 1
    while h < 32 and rest % ((2 * h) * (2 * h)) == 0:
        h *= 2
    return (rest // (h * h), c, h, h)


class Inputs:
    """Operands for one (size, dtype), each generated on first use and then shared."""

    def __init__(self, n: int, dtype: np.dtype, seed: int = 0):
        self.n, self.dtype, self.shape = n, np.dtype(dtype), nchw_shape(n)
        self.channels = self.shape[1]
        self._seed = seed

    def _normal(self, salt: int) -> np.ndarray:
        rng = np.random.default_rng([self._seed, self.n, salt])
        return rng.standard_normal(self.shape, dtype=np.float64).astype(self.dtype)

    @functools.cached_property
    def x(self) -> np.ndarray:
        return self._normal(1)

    @functools.cached_property
    def dy(self) -> np.ndarray:
        return self._normal(2)

    @functools.cached_property
    def weight(self) -> np.ndarray:  # prelu, one slope per channel
        rng = np.random.default_rng([self._seed, self.n, 3])
        return rng.uniform(0.05, 0.3, self.channels).astype(self.dtype)

    @functools.cached_property
    def y_sigmoid(self) -> np.ndarray:
        return (1 / (1 + np.exp(-self.x))).astype(self.dtype)

    @functools.cached_property
    def y_tanh(self) -> np.ndarray:
        return np.tanh(self.x)

    @functools.cached_property
    def out(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        out.fill(0)  # fault the pages in
        return out


# ---- NumPy baselines (straightforward NumPy) -------------------------------------------------


def np_relu(x):
    return np.maximum(x, 0)


def np_relu_out(x, out):
    return np.maximum(x, 0, out=out)


def np_relu_mask(x):
    return np.maximum(x, 0), np.packbits(x > 0, bitorder="little")


def np_relu_counts(x):
    y = np.maximum(x, 0)
    return y, np.count_nonzero(y > 0, axis=(0, 2, 3))


def np_relu_backward(dy, x):
    return np.where(x > 0, dy, dy.dtype.type(0))


def np_relu6(x):
    return np.clip(x, 0, 6)


def np_relu6_backward(dy, x):
    return np.where((x > 0) & (x < 6), dy, dy.dtype.type(0))


def np_leaky_relu(x, s):
    return np.where(x > 0, x, x * s)


def np_leaky_relu_backward(dy, x, s):
    return np.where(x > 0, dy, dy * s)


def np_elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(x))


def np_elu_backward(dy, x, alpha):
    return np.where(x > 0, dy, dy * alpha * np.exp(x))


def _per_channel(w, ndim):
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def np_prelu(x, w):
    return np.where(x > 0, x, _per_channel(w, x.ndim) * x)


def np_prelu_backward(dy, x, w):
    pos = x > 0
    dx = np.where(pos, dy, _per_channel(w, x.ndim) * dy)
    dw = np.where(pos, 0, x * dy).sum(axis=(0, 2, 3))
    return dx, dw


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_sigmoid_backward(dy, y):
    return dy * y * (1 - y)


def np_tanh_backward(dy, y):
    return dy * (1 - y * y)


# ---- PyTorch peers: each maker takes the torch module and returns the callable to time --------


def _t_relu_out(t):
    clamp_min = t.clamp_min  # torch.relu has no out=; clamp_min(x, 0) is relu

    return lambda x, out: clamp_min(x, 0, out=out)


def _t_relu_backward(t):
    op = t.ops.aten.threshold_backward
    return lambda dy, x: op(dy, x, 0)


def _t_relu6_backward(t):
    op = t.ops.aten.hardtanh_backward
    return lambda dy, x: op(dy, x, 0.0, 6.0)


def _t_leaky_relu_backward(t):
    op = t.ops.aten.leaky_relu_backward
    return lambda dy, x, s: op(dy, x, s, False)


def _t_elu_backward(t):
    op = t.ops.aten.elu_backward
    return lambda dy, x, alpha: op(dy, alpha, 1, 1, False, x)


def _t_prelu_backward(t):
    op = t.ops.aten._prelu_kernel_backward  # what autograd runs for F.prelu; dweight then summed

    def prelu_backward(dy, x, w):
        dx, dw = op(dy, x, w.reshape((1, -1) + (1,) * (x.ndim - 2)))
        return dx, dw.sum(dim=(0, 2, 3))

    return prelu_backward


def _t_sigmoid_backward(t):
    op = t.ops.aten.sigmoid_backward
    return lambda dy, y: op(dy, y)


def _t_tanh_backward(t):
    op = t.ops.aten.tanh_backward
    return lambda dy, y: op(dy, y)


# ---- checks ------------------------------------------------------------------------------------


def _check_prelu_backward(dtype):
    eps = float(np.finfo(dtype).eps)

    def check(got, want, inputs):
        dy, x, _ = inputs
        assert_results_match(got[0], want[0])  # dx: exact
        dw, dw_want = np.asarray(got[1]), np.asarray(want[1])
        if dw.shape != dw_want.shape or dw.dtype != dw_want.dtype:
            raise AssertionError(f"dweight: {dw.dtype}{list(dw.shape)}, expected {dw_want.dtype}{list(dw_want.shape)}")
        # dweight is a sum over N*H*W terms; its rounding is bounded by the sum of |terms|.
        l1 = np.where(x > 0, 0, np.abs(x.astype(np.float64) * dy)).sum(axis=(0, 2, 3))
        err = np.abs(dw.astype(np.float64) - dw_want)
        bad = err > 1000 * eps * l1 + 16 * eps
        if bad.any():
            raise AssertionError(f"dweight differs beyond rounding at channels {np.flatnonzero(bad)[:8]}: "
                                 f"got {dw[bad][:4]}, expected {dw_want[bad][:4]}")

    return check


# ---- the cases ---------------------------------------------------------------------------------


def cases(sizes: Sequence[int], dtype) -> List[Case]:
    dtype = np.dtype(dtype)
    ulp_tol = 16 * float(np.finfo(dtype).eps)  # elu, sigmoid, tanh: a few ULP apart from NumPy
    out = []
    for n in sizes:
        d = Inputs(n, dtype)
        nb = n * dtype.itemsize
        wb = d.channels * dtype.itemsize
        common = dict(n=n, dtype=dtype.name, shape=d.shape, suite=__name__)
        out += [
            Case("relu", "relu", make_inputs=lambda d=d: (d.x,), relucore=rc.relu, numpy=np_relu,
                 torch=lambda t: t.relu, reference=lambda x: _ref().relu(x), bytes=2 * nb, **common),
            Case("relu_out", "relu out=", make_inputs=lambda d=d: (d.x, d.out),
                 relucore=lambda x, out: rc.relu(x, out=out), numpy=np_relu_out, torch=_t_relu_out,
                 reference=lambda x, out: _ref().relu(x), bytes=2 * nb,
                 target_pct=TARGET_OUT_PCT if (n == TARGET_OUT_N and dtype == np.float32) else None,
                 **common),
            Case("relu_mask", "relu +mask", make_inputs=lambda d=d: (d.x,),
                 relucore=functools.partial(rc.relu, return_mask=True), numpy=np_relu_mask,
                 reference=lambda x: _ref().relu(x, return_mask=True), bytes=2 * nb + (n + 7) // 8, **common),
            Case("relu_counts", "relu +counts", make_inputs=lambda d=d: (d.x,),
                 relucore=functools.partial(rc.relu, return_counts=True), numpy=np_relu_counts,
                 reference=lambda x: _ref().relu(x, return_counts=True), bytes=2 * nb, **common),
            Case("relu_backward", "relu_backward", make_inputs=lambda d=d: (d.dy, d.x),
                 relucore=rc.relu_backward, numpy=np_relu_backward, torch=_t_relu_backward,
                 reference=lambda dy, x: _ref().relu_backward(dy, x), bytes=3 * nb, **common),
            Case("relu6", "relu6", make_inputs=lambda d=d: (d.x,), relucore=rc.relu6, numpy=np_relu6,
                 torch=lambda t: t.nn.functional.relu6, reference=lambda x: _ref().relu6(x), bytes=2 * nb,
                 **common),
            Case("relu6_backward", "relu6_backward", make_inputs=lambda d=d: (d.dy, d.x),
                 relucore=rc.relu6_backward, numpy=np_relu6_backward, torch=_t_relu6_backward,
                 reference=lambda dy, x: _ref().relu6_backward(dy, x), bytes=3 * nb, **common),
            Case("leaky_relu", "leaky_relu", make_inputs=lambda d=d: (d.x, SLOPE),
                 relucore=rc.leaky_relu, numpy=np_leaky_relu,
                 torch=lambda t: t.nn.functional.leaky_relu,
                 reference=lambda x, s: _ref().leaky_relu(x, s), bytes=2 * nb, **common),
            Case("leaky_relu_backward", "leaky_relu_backward", make_inputs=lambda d=d: (d.dy, d.x, SLOPE),
                 relucore=rc.leaky_relu_backward, numpy=np_leaky_relu_backward, torch=_t_leaky_relu_backward,
                 reference=lambda dy, x, s: _ref().leaky_relu_backward(dy, x, s), bytes=3 * nb, **common),
            Case("elu", "elu", make_inputs=lambda d=d: (d.x, ALPHA), relucore=rc.elu, numpy=np_elu,
                 torch=lambda t: t.nn.functional.elu, reference=lambda x, a: _ref().elu(x, a),
                 bytes=2 * nb, rtol=ulp_tol, atol=ulp_tol, **common),
            Case("elu_backward", "elu_backward", make_inputs=lambda d=d: (d.dy, d.x, ALPHA),
                 relucore=rc.elu_backward, numpy=np_elu_backward, torch=_t_elu_backward,
                 reference=lambda dy, x, a: _ref().elu_backward(dy, x, a),
                 bytes=3 * nb, rtol=ulp_tol, atol=ulp_tol, **common),
            Case("prelu", "prelu", make_inputs=lambda d=d: (d.x, d.weight), relucore=rc.prelu, numpy=np_prelu,
                 torch=lambda t: t.nn.functional.prelu, reference=lambda x, w: _ref().prelu(x, w),
                 bytes=2 * nb + wb, **common),
            Case("prelu_backward", "prelu_backward", make_inputs=lambda d=d: (d.dy, d.x, d.weight),
                 relucore=rc.prelu_backward, numpy=np_prelu_backward, torch=_t_prelu_backward,
                 reference=lambda dy, x, w: _ref().prelu_backward(dy, x, w),
                 bytes=3 * nb + 2 * wb, check=_check_prelu_backward(dtype), **common),
            Case("sigmoid", "sigmoid", make_inputs=lambda d=d: (d.x,), relucore=rc.sigmoid, numpy=np_sigmoid,
                 torch=lambda t: t.sigmoid, reference=lambda x: _ref().sigmoid(x),
                 bytes=2 * nb, rtol=ulp_tol, atol=ulp_tol, **common),
            Case("sigmoid_backward", "sigmoid_backward", make_inputs=lambda d=d: (d.dy, d.y_sigmoid),
                 relucore=rc.sigmoid_backward, numpy=np_sigmoid_backward, torch=_t_sigmoid_backward,
                 reference=lambda dy, y: _ref().sigmoid_backward(dy, y),
                 bytes=3 * nb, rtol=ulp_tol, atol=ulp_tol, **common),
            Case("tanh", "tanh", make_inputs=lambda d=d: (d.x,), relucore=rc.tanh, numpy=np.tanh,
                 torch=lambda t: t.tanh, reference=lambda x: _ref().tanh(x),
                 bytes=2 * nb, rtol=ulp_tol, atol=ulp_tol, **common),
            Case("tanh_backward", "tanh_backward", make_inputs=lambda d=d: (d.dy, d.y_tanh),
                 relucore=rc.tanh_backward, numpy=np_tanh_backward, torch=_t_tanh_backward,
                 reference=lambda dy, y: _ref().tanh_backward(dy, y),
                 bytes=3 * nb, rtol=ulp_tol, atol=ulp_tol, **common),
        ]
    # Table order: by operation, then size.
    order = {}
    for c in out:
        order.setdefault(c.op, len(order))
    return sorted(out, key=lambda c: (order[c.op], c.n))
