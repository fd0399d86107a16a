"""CS231n-style network case: a three-layer convnet's forward+backward through :mod:`relucore.layers`.

The network is the course's ``ThreeLayerConvNet``: conv 7x7 (32 filters, stride 1, pad 3) - ReLU -
2x2 max pool - affine 100 - ReLU - affine 10 - softmax loss, on a 32x3x32x32 float64 batch (the
course's dtype; ``--dtype float32`` runs it in float32). One call is the loss and every gradient,
as ``ThreeLayerConvNet.loss(X, y)`` computes them, plus dx of the input (the course's conv backward
computes it too).

* NumPy baseline: the course's "fast" layers written with NumPy alone: im2col by stride tricks
  (``as_strided``) and one ``@`` over the batch, col2im as one strided add per kernel tap, max pool
  by reshape, affine by ``@``, softmax loss by hand. Not relucore's code.
* Reference: the same layers over :mod:`relucore.reference` (what the results are checked against).
* No PyTorch peer: the comparison is with the NumPy code the course's users have.

``sizes`` is not used. ``flops`` is the two convolution GEMMs' and the affine layers' multiply-adds
x 2, forward and backward (3x the forward).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import List, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

import relucore.layers as L

from .cases import Case
from .conv import ConvCase, check_close, np_col2im
from .noise import any_noisy

N, C, HW, F, K, HIDDEN, CLASSES = 32, 3, 32, 32, 7, 100, 10
CONV_PARAM = {"stride": 1, "pad": (K - 1) // 2}
POOL_PARAM = {"pool_height": 2, "pool_width": 2, "stride": 2}
#: the convnet's forward+backward against the NumPy im2col layers
TARGET_VS_NUMPY = 10.0


# ---- the NumPy layers (the course's conventions) -----------------------------------------------


def np_conv_forward(x, w, b, conv_param):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    st = xp.strides
    win = as_strided(xp, (c, kh, kw, n, oh, ow), (st[1], st[2], st[3], st[0], s * st[2], s * st[3]))
    cols = np.ascontiguousarray(win).reshape(c * kh * kw, n * oh * ow)
    out = (w.reshape(f, -1) @ cols + b.reshape(-1, 1)).reshape(f, n, oh, ow).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(out), (x, w, conv_param, cols)


def np_conv_backward(dout, cache):
    x, w, conv_param, cols = cache
    f, c, kh, _ = w.shape
    n, _, oh, ow = dout.shape
    d2 = dout.transpose(1, 0, 2, 3).reshape(f, -1)
    dw = (d2 @ cols.T).reshape(w.shape)
    dcols = (w.reshape(f, -1).T @ d2).reshape(c * kh * kh, n, oh * ow).transpose(1, 0, 2)
    dx = np_col2im(dcols, x.shape, kh, conv_param["stride"], conv_param["pad"], (oh, ow))
    return np.ascontiguousarray(dx), dw, d2.sum(axis=1)


def np_relu_forward(x):
    return np.maximum(x, 0), x


def np_relu_backward(dout, x):
    return dout * (x > 0)


def np_max_pool_forward(x, pool_param):
    n, c, h, w = x.shape
    ph = pool_param["pool_height"]
    xr = x.reshape(n, c, h // ph, ph, w // ph, ph)
    out = xr.max(axis=3).max(axis=4)
    return out, (x, xr, out)


def np_max_pool_backward(dout, cache):
    x, xr, out = cache
    mask = xr == out[:, :, :, None, :, None]
    dxr = np.where(mask, dout[:, :, :, None, :, None], 0.0).astype(dout.dtype)
    dxr /= mask.sum(axis=(3, 5), keepdims=True)  # ties share the gradient, as the course does
    return dxr.reshape(x.shape)


def np_affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b, (x, w)


def np_affine_backward(dout, cache):
    x, w = cache
    return (dout @ w.T).reshape(x.shape), x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)


def np_softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return x.dtype.type(-log_probs[np.arange(n), y].mean()), dx / n


# ---- the same layers over relucore.reference ---------------------------------------------------


def _reference():
    import relucore.reference as R

    def conv_f(x, w, b, cp):
        return R.conv2d(x, w, b, cp["stride"], cp["pad"]), (x, w, cp)

    def conv_b(d, cache):
        x, w, cp = cache
        return R.conv2d_backward(d, x, w, cp["stride"], cp["pad"])

    def pool_f(x, pp):
        y, idx = R.max_pool2d(x, (pp["pool_height"], pp["pool_width"]), pp["stride"])
        return y, (idx, x.shape)

    def affine_f(x, w, b):
        return R.linear(x.reshape(x.shape[0], -1), w.T, b), (x, w)

    def affine_b(d, cache):
        x, w = cache
        dx, dwt, db = R.linear_backward(d, x.reshape(x.shape[0], -1), w.T)
        return dx.reshape(x.shape), dwt.T, db

    return dict(conv_f=conv_f, conv_b=conv_b, relu_f=lambda x: (R.relu(x), x), relu_b=R.relu_backward,
                pool_f=pool_f, pool_b=lambda d, c: R.max_pool2d_backward(d, *c), affine_f=affine_f,
                affine_b=affine_b, loss=R.cross_entropy)


def _compose(conv_f, conv_b, relu_f, relu_b, pool_f, pool_b, affine_f, affine_b, loss):
    """The course's ``layer_utils`` sandwiches over single layers."""

    def conv_relu_pool_forward(x, w, b, cp, pp):
        a, c1 = conv_f(x, w, b, cp)
        r, c2 = relu_f(a)
        out, c3 = pool_f(r, pp)
        return out, (c1, c2, c3)

    def conv_relu_pool_backward(d, cache):
        c1, c2, c3 = cache
        return conv_b(relu_b(pool_b(d, c3), c2), c1)

    def affine_relu_forward(x, w, b):
        a, c1 = affine_f(x, w, b)
        out, c2 = relu_f(a)
        return out, (c1, c2)

    def affine_relu_backward(d, cache):
        return affine_b(relu_b(d, cache[1]), cache[0])

    return SimpleNamespace(conv_relu_pool_forward=conv_relu_pool_forward,
                           conv_relu_pool_backward=conv_relu_pool_backward,
                           affine_relu_forward=affine_relu_forward, affine_relu_backward=affine_relu_backward,
                           affine_forward=affine_f, affine_backward=affine_b, softmax_loss=loss)


NUMPY_LAYERS = _compose(np_conv_forward, np_conv_backward, np_relu_forward, np_relu_backward, np_max_pool_forward,
                        np_max_pool_backward, np_affine_forward, np_affine_backward, np_softmax_loss)


@functools.lru_cache(maxsize=None)
def _reference_layers():
    return _compose(**_reference())


def three_layer_convnet(lay, x, y, w1, b1, w2, b2, w3, b3):
    """``ThreeLayerConvNet.loss(x, y)`` over the layer functions ``lay``: the loss, then dx and the
    gradients of w1, b1, w2, b2, w3, b3."""
    a1, c1 = lay.conv_relu_pool_forward(x, w1, b1, CONV_PARAM, POOL_PARAM)
    a2, c2 = lay.affine_relu_forward(a1, w2, b2)
    scores, c3 = lay.affine_forward(a2, w3, b3)
    loss, dscores = lay.softmax_loss(scores, y)
    da2, dw3, db3 = lay.affine_backward(dscores, c3)
    da1, dw2, db2 = lay.affine_relu_backward(da2, c2)
    dx, dw1, db1 = lay.conv_relu_pool_backward(da1, c1)
    return loss, dx, dw1, db1, dw2, db2, dw3, db3


def operands(dtype, n: int = N) -> tuple:
    """x, y and the six parameters, initialised as the course does (weight_scale 1e-3, zero biases)."""
    rng = np.random.default_rng([11, n])
    flat = F * (HW // 2) ** 2

    def normal(*shape, scale=1e-3):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return (normal(n, C, HW, HW, scale=1.0), rng.integers(0, CLASSES, n),
            normal(F, C, K, K), np.zeros(F, dtype), normal(flat, HIDDEN), np.zeros(HIDDEN, dtype),
            normal(HIDDEN, CLASSES), np.zeros(CLASSES, dtype))


def flops(n: int = N) -> int:
    forward = 2 * n * (F * C * K * K * HW * HW + F * (HW // 2) ** 2 * HIDDEN + HIDDEN * CLASSES)
    return 3 * forward


def cases(sizes: Sequence[int], dtype, n: int = N) -> List[Case]:
    """The three-layer convnet forward+backward (``sizes`` is not used)."""
    dtype = np.dtype(dtype)
    make = functools.lru_cache(maxsize=None)(lambda: operands(dtype, n))
    return [ConvCase("convnet3_fwdbwd", "CS231n 3-layer convnet fwd+bwd", n=n * C * HW * HW, dtype=dtype.name,
                     shape=(n, C, HW, HW), tag=f"{n}x{C}x{HW}x{HW}", make_inputs=make,
                     relucore=functools.partial(three_layer_convnet, L),
                     numpy=functools.partial(three_layer_convnet, NUMPY_LAYERS),
                     reference=lambda *a: three_layer_convnet(_reference_layers(), *a),
                     flops=flops(n), limit="sgemm", check=check_close(dtype), suite=__name__)]


def targets(rows: List[dict]) -> List[dict]:
    """The convnet against the NumPy im2col layers, in float64 (the course's dtype)."""
    sel = [r for r in rows if r["op"] == "convnet3_fwdbwd" and r["dtype"] == "float64"]
    if not sel:
        return []
    r = sel[0]
    v = r.get("speedup_vs_numpy")
    text = f"CS231n 3-layer convnet fwd+bwd (float64) >= {TARGET_VS_NUMPY:g}x NumPy im2col layers"
    if v is None:
        return [{"target": text, "met": None, "detail": "not measured"}]
    return [{"target": text, "met": v >= TARGET_VS_NUMPY, "detail": f"{v:.2f}x", "noisy": any_noisy(sel)}]
