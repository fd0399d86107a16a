"""Shared pieces of the convolution-path tests: configurations, layouts, tolerances, numeric gradients."""

from __future__ import annotations

import itertools
from typing import NamedTuple, Tuple, Union

import numpy as np
from _helpers import LAYOUTS, layout

IntOrPair = Union[int, Tuple[int, int]]


#: Memory layouts for the inputs: _helpers' non-contiguous ones, plus misaligned and read-only.
KINDS = [k for k in LAYOUTS if k != "C"] + ["unaligned", "readonly"]


def view(a: np.ndarray, kind: str) -> np.ndarray:
    """``a``'s values in layout ``kind``: see ``_helpers.layout``; "unaligned": C-contiguous but
    one byte off alignment (as buffers from pickles/sockets may be); "readonly": not writeable."""
    a = np.asarray(a)
    if kind == "unaligned":
        raw = np.zeros(a.nbytes + 1, np.uint8)[1:]
        out = raw.view(a.dtype).reshape(a.shape)
        out[...] = a
        assert not out.flags.aligned or a.itemsize == 1
        return out
    if kind == "readonly":
        out = a.copy()
        out.setflags(write=False)
        return out
    with np.errstate(invalid="ignore"):  # layout() fills the gaps of int buffers with NaN
        return layout(a, kind)


def pair(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class Conv(NamedTuple):
    """One conv2d configuration: x (N, C, H, W), weight (F, C/groups, kh, kw)."""

    n: int
    c: int
    h: int
    w: int
    f: int
    kernel: IntOrPair
    stride: IntOrPair = 1
    padding: IntOrPair = 0
    dilation: IntOrPair = 1
    groups: int = 1

    @property
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self):
        return (self.f, self.c // self.groups) + pair(self.kernel)

    @property
    def args(self):
        """(stride, padding, dilation, groups) in conv2d's argument order."""
        return self.stride, self.padding, self.dilation, self.groups

    @property
    def out_hw(self):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (self.kernel, self.stride, self.padding, self.dilation))
        return ((self.h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (self.w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)

    @property
    def y_shape(self):
        return (self.n, self.f) + self.out_hw

    def __str__(self):
        return (f"x{self.x_shape} w{self.w_shape} s{self.stride} p{self.padding} "
                f"d{self.dilation} g{self.groups}")


def _grid():
    """Every combination class of stride {1, 2} x padding {0, 1, 2} x dilation {1, 2} x
    groups {1, 2, C}; kernels rotate through square, rectangular and 1x1 ones."""
    kernels = [3, (2, 3), (3, 1), 1, (1, 2)]
    out = []
    for t, (s, p, d, g) in enumerate(itertools.product((1, 2), (0, 1, 2), (1, 2), (1, 2, "C"))):
        c = 4
        groups = c if g == "C" else g
        f = 8 if g == "C" else 6 if groups == 2 else 5   # depthwise with channel multiplier 2
        out.append(Conv(2, c, 7, 6, f, kernels[t % len(kernels)], s, p, d, groups))
    return out


#: The stride/padding/dilation/groups grid plus the special shapes.
GRID = _grid()
SPECIAL = [
    Conv(2, 3, 5, 4, 4, (5, 4)),                                     # kernel == input size
    Conv(2, 4, 3, 3, 2, (5, 5), 1, 1, 1, 2),                         # kernel == padded input size
    Conv(1, 3, 6, 5, 4, 3, 1, 1),                                    # batch 1
    Conv(1, 6, 6, 6, 6, 3, 2, 1, 1, 6),                              # batch 1, depthwise
    Conv(2, 5, 6, 7, 3, 1),                                          # 1x1, stride 1 (no im2col)
    Conv(2, 5, 6, 7, 3, 1, 2, 0),                                    # 1x1, stride 2
    Conv(2, 5, 6, 7, 3, 1, 1, 1),                                    # 1x1 with padding
    Conv(2, 3, 9, 8, 4, (2, 4), (2, 3), (1, 2), (2, 1)),             # all asymmetric
    Conv(1, 1, 1, 1, 1, 1),                                          # 1 pixel
    Conv(3, 8, 12, 11, 16, 3, 1, 1),                                 # a little larger (threads)
    Conv(2, 16, 8, 8, 16, 3, 1, 1, 1, 16),                           # depthwise, 16 channels
    Conv(2, 6, 7, 7, 9, (3, 2), 2, 2, 2, 3),                         # groups 3
]
CONFIGS = GRID + SPECIAL


def conv_id(cfg: Conv) -> str:
    return (f"n{cfg.n}c{cfg.c}h{cfg.h}w{cfg.w}f{cfg.f}k{cfg.kernel}s{cfg.stride}"
            f"p{cfg.padding}d{cfg.dilation}g{cfg.groups}").replace(" ", "")


def normal(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def rtol_for(dtype) -> float:
    """Relative tolerance for GEMM-like results, relative to the sum of the |terms|."""
    return 1e-4 if np.dtype(dtype) == np.float32 else 1e-10


def assert_terms_close(got, exp, terms, what="", rtol=None):
    """``|got - exp| <= rtol * terms + 4 ulp(exp)`` elementwise, with ``terms`` the sum of the
    absolute values of the summands (float64); same dtype and shape; NaN matches NaN."""
    exp = np.asarray(exp)
    assert isinstance(got, np.ndarray), f"{what}: expected ndarray, got {type(got).__name__}"
    assert got.dtype == exp.dtype, f"{what}: dtype {got.dtype} != {exp.dtype}"
    assert got.shape == exp.shape, f"{what}: shape {got.shape} != {exp.shape}"
    rtol = rtol_for(exp.dtype) if rtol is None else rtol
    g, e = got.astype(np.float64), exp.astype(np.float64)
    with np.errstate(all="ignore"):
        bound = rtol * np.asarray(terms, dtype=np.float64) + 4 * np.spacing(np.abs(exp)).astype(np.float64)
        diff = np.abs(g - e)
    ok = (g == e) | (np.isnan(g) & np.isnan(e)) | (diff <= bound)
    if not ok.all():
        bad = np.flatnonzero(~ok.ravel())
        i = bad[:6]
        excess = diff.ravel()[bad] / np.maximum(bound.ravel()[bad], 1e-300)
        raise AssertionError(
            f"{what}: {bad.size} of {ok.size} elements out of tolerance (worst {excess.max():.3g}x "
            f"the bound); at flat {i.tolist()} (index {[np.unravel_index(j, exp.shape) for j in i[:3]]}): "
            f"got {got.ravel()[i].tolist()} expected {exp.ravel()[i].tolist()} "
            f"bound {bound.ravel()[i].tolist()}"
        )


def numeric_grad(f, x, h=1e-6):
    """Gradient of the scalar ``f(x)`` by central differences, element by element (float64)."""
    x = np.array(x, dtype=np.float64, order="C")
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def assert_grad(analytic, numeric, what=""):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=what)


def backward_data(n, c, h, w, f, kh, kw, s, p, d, groups, dtype, seed=0):
    """Seeded standard-normal ``(x, weight, dy)`` of one layer's backward (dy of the output's shape)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    oh = (h + 2 * p - d * (kh - 1) - 1) // s + 1
    ow = (w + 2 * p - d * (kw - 1) - 1) // s + 1
    dy = rng.standard_normal((n, f, oh, ow)).astype(dtype)
    return x, wt, dy


def assert_grad_close(got, want, dtype):
    """``got`` matches ``want`` in shape, dtype and values, to a tolerance scaled by want's largest
    finite magnitude (gradients are sums of many products)."""
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    assert got.shape == want.shape and got.dtype == want.dtype
    finite = np.abs(want[np.isfinite(want)]).max(initial=0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, float(finite)))
