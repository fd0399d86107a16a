"""conv2d through 2-D FFTs (stride 1, dilation 1, one group): forced with ``use_conv_algorithm("fft")``
on every ISA, against the reference within the FFT's error scale (rounding relative to the plane's
largest terms, not each output's own), over transform lengths of every radix (2, 3, 4, 5, 8 and
lengths rounded up to one), odd batches (the last image has no partner), padding in one direction
only and wider than the kernel, and fused activations bitwise against the separate ones. Non-finite
or overflow-prone data take the GEMM path (the same bits); "auto" takes the FFT for float64 layers
with large kernels only; one, two and three threads give the same bits."""

from __future__ import annotations

import numpy as np
import pytest
import relucore
import relucore.reference as R
from _conv_helpers import normal
from _helpers import assert_bitwise


def fft_bound(x, w, padding, dtype):
    """The FFT's error scale per output: eps times log2 of the transform size times the largest
    direct-sum terms of the whole output (the transforms mix every position of a plane), with room
    for the pairing of images and the sums over channels."""
    terms = R.conv2d(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), None, padding=padding)
    h = max(x.shape[2] + 2 * np.broadcast_to(padding, 2)[0], x.shape[3] + 2 * np.broadcast_to(padding, 2)[1])
    return 16 * np.finfo(dtype).eps * np.log2(max(h, 2) ** 2) * max(terms.max(), np.finfo(dtype).tiny)


def forward(x, w, b, padding, act=None):
    with relucore.use_conv_algorithm("fft"):
        return relucore.conv2d(x, w, b, padding=padding, activation=act)


def backward(dy, x, w, padding, **kw):
    with relucore.use_conv_algorithm("fft"):
        return relucore.conv2d_backward(dy, x, w, padding=padding, **kw)


def check(x, w, b, padding, dtype, rng):
    """Forward and both gradients against the reference; returns them. The gradients' scales: dx is
    the forward of dy with the flipped kernel, dweight sums over the batch."""
    y = forward(x, w, b, padding)
    exp = R.conv2d(x, w, b, padding=padding)
    np.testing.assert_allclose(y, exp, rtol=0, atol=fft_bound(x, w, padding, dtype)
                               + 4 * np.finfo(dtype).eps * np.abs(b).max(initial=0))
    dy = normal(rng, exp.shape, dtype)
    dx, dw, db = backward(dy, x, w, padding)
    ex, ew, eb = R.conv2d_backward(dy, x, w, padding=padding)
    scale = np.abs(dy).max() * np.abs(w).sum(axis=(0, 2, 3)).max() * 16 * np.finfo(dtype).eps
    np.testing.assert_allclose(dx, ex, rtol=0, atol=scale * np.log2(dy.shape[2] * dy.shape[3] + 2) * 4)
    wscale = np.abs(dy).max() * np.abs(x).max() * x.shape[0] * dy.shape[2] * dy.shape[3] * 16 * np.finfo(dtype).eps
    np.testing.assert_allclose(dw, ew, rtol=0, atol=wscale * 4)
    assert_bitwise(db, relucore.conv2d_backward(dy, x, w, padding=padding, compute_dx=False, compute_dweight=False)[2])
    assert dx.dtype == dw.dtype == dtype
    return y, dx, dw


# (N, C, H, W, F, kernel, padding): transform lengths 8 (radix 8), 9 (3 x 3), 10 (2 x 5), 12 (4 x 3,
# from 11), 15 (from 13), 16 (8 x 2), 18, 20, 25 (5 x 5), 32 (8 x 4), 38 -> 40 (8 x 5), 45 (from 43),
# 64 (8 x 8), 2 (a 1 x 1 plane), 11 -> 12; odd batches; padding in one direction; padding wider than
# the kernel's reach; non-square kernels.
SHAPES = [(2, 3, 8, 8, 4, (3, 3), 0), (3, 2, 7, 7, 5, (3, 3), 1), (1, 1, 6, 8, 2, (2, 3), 1),
          (5, 4, 11, 9, 3, (5, 5), 0), (2, 3, 13, 11, 7, (4, 2), (0, 1)), (3, 2, 14, 14, 3, (3, 3), 1),
          (4, 2, 16, 14, 3, (7, 7), 1), (3, 3, 16, 20, 6, (5, 3), (2, 0)), (2, 1, 21, 19, 2, (5, 5), 2),
          (3, 1, 30, 30, 2, (5, 5), 1), (3, 3, 32, 32, 8, (7, 7), 3), (1, 2, 39, 41, 3, (9, 9), 1),
          (1, 1, 62, 60, 2, (3, 3), 1), (2, 2, 1, 1, 3, (1, 1), 0), (2, 2, 3, 3, 2, (3, 3), 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_against_reference(rc, dtype, rng, shape):
    n, c, h, wd, f, k, p = shape
    x = normal(rng, (n, c, h, wd), dtype)
    w = normal(rng, (f, c) + k, dtype)
    b = normal(rng, (f,), dtype)
    y, dx, dw = check(x, w, b, p, dtype, rng)
    if h * wd >= 16:  # the FFT was taken: its rounding differs (tiny planes may come out exact)
        dy = normal(rng, y.shape, dtype)
        with relucore.use_conv_algorithm("fft"):
            fx, fw, _ = relucore.conv2d_backward(dy, x, w, padding=p)
        with relucore.use_conv_algorithm("gemm"):
            assert y.tobytes() != relucore.conv2d(x, w, b, padding=p).tobytes()
            gx, gw, _ = relucore.conv2d_backward(dy, x, w, padding=p)
        assert fx.tobytes() != gx.tobytes() and fw.tobytes() != gw.tobytes()


def test_exact_zeros_and_signed_zeros(rc, dtype, rng):
    """Exact zeros and -0.0 in x and w are ordinary values to the transforms: outputs that are
    exactly zero in a direct sum come out within the error scale of zero."""
    x = normal(rng, (3, 2, 12, 12), dtype)
    x[:, :, :, 5:] = 0
    x[0, 0, 0, :] = -0.0
    w = normal(rng, (4, 2, 5, 5), dtype)
    w[:, :, 2, :] = -0.0
    check(x, w, np.zeros(4, dtype), 2, dtype, rng)


@pytest.mark.parametrize("act", ["relu", ("leaky_relu", 0.2), ("elu", 0.5)], ids=str)
def test_fused_activation_bitwise(rc, dtype, rng, act):
    x = normal(rng, (3, 2, 15, 13), dtype)
    w = normal(rng, (5, 2, 5, 5), dtype)
    b = normal(rng, (5,), dtype)
    name, param = (act, None) if isinstance(act, str) else act
    y = forward(x, w, b, 2)
    sep = relucore.relu(y) if name == "relu" else getattr(relucore, name)(y, param)
    assert_bitwise(forward(x, w, b, 2, act), sep)


def test_one_gradient_at_a_time(rc, dtype, rng):
    x = normal(rng, (3, 2, 14, 14), dtype)
    w = normal(rng, (4, 2, 5, 5), dtype)
    dy = normal(rng, (3, 4, 14, 14), dtype)
    dx, dw, _ = backward(dy, x, w, 2)
    only_dx = backward(dy, x, w, 2, compute_dweight=False)
    only_dw = backward(dy, x, w, 2, compute_dx=False)
    assert only_dx[1] is None and only_dw[0] is None
    assert_bitwise(only_dx[0], dx)
    assert_bitwise(only_dw[1], dw)


def test_non_contiguous_inputs(rc, dtype, rng):
    x = normal(rng, (4, 3, 18, 22), dtype)[:, :, ::2, 1::2]
    w = np.asfortranarray(normal(rng, (3, 3, 5, 5), dtype))
    y = forward(x, w, None, 2)
    assert_bitwise(y, forward(np.ascontiguousarray(x), np.ascontiguousarray(w), None, 2))
    np.testing.assert_allclose(y, R.conv2d(x, w, None, padding=2), rtol=0, atol=fft_bound(x, w, 2, dtype))


@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
def test_non_finite_takes_the_gemm_path(rc, dtype, rng, special):
    """An inf or NaN would spread over a whole plane through the transforms: such data, and finite
    data near overflow, run the GEMM path (bitwise its results)."""
    x = normal(rng, (3, 2, 10, 10), dtype)
    w = normal(rng, (4, 2, 5, 5), dtype)
    dy = normal(rng, (3, 4, 10, 10), dtype)

    def both(*args):
        with relucore.use_conv_algorithm("gemm"):
            want = [relucore.conv2d(*args[:2], None, padding=2),
                    *relucore.conv2d_backward(args[2], *args[:2], padding=2)]
        got = [forward(args[0], args[1], None, 2), *backward(args[2], *args[:2], 2)]
        return got, want

    for where in ("x", "w", "dy"):
        xs, ws, dys = x.copy(), w.copy(), dy.copy()
        {"x": xs, "w": ws, "dy": dys}[where][1, 1, 3, 2] = special
        got, want = both(xs, ws, dys)
        for g, e, name in zip(got, want, ("y", "dx", "dweight", "dbias")):
            if where == "dy" and name == "y":
                continue
            if where == "x" and name == "dx":  # dx does not read x: the FFT may take it
                continue
            if where == "w" and name == "dweight":
                continue
            assert_bitwise(g, e, f"{name} with {special} in {where}")
    big = np.finfo(dtype).max / 8
    xb = x.copy()
    xb[0, 0, 0, 0] = big
    assert_bitwise(forward(xb, w, None, 2), both(xb, w, dy)[1][0])


def test_one_operand_near_overflow_takes_the_gemm_path(rc, dtype, rng):
    """Zero (or tiny) weights with huge inputs: the product bound alone would pass, but the input's
    transform (up to 2 n^2 max|x|) would overflow to inf and give inf * 0 = NaN; the direct sum is 0."""
    x = normal(rng, (2, 2, 12, 12), dtype)
    x[0, 0, 3, 3] = np.finfo(dtype).max / 16
    w = np.zeros((3, 2, 5, 5), dtype)
    y = forward(x, w, None, 2)
    assert not y.any() and not np.isnan(y).any()
    dy = np.zeros((2, 3, 12, 12), dtype)
    dx, dw, _ = backward(dy, x, w, 2)
    assert not dx.any() and not dw.any() and not np.isnan(dw).any()


def test_auto_takes_fft_for_large_float64_kernels_only(rc, rng):
    """"auto": a float64 7 x 7 layer with enough work runs the FFT (bits differ from the GEMM's);
    the same layer in float32 stays on the GEMM path (same bits), and so do a float64 3 x 3 layer's
    gradients (its forward runs Winograd)."""
    def taken(shape, k, dtype):
        n, c, hw, f = shape
        x, w = normal(rng, (n, c, hw, hw), dtype), normal(rng, (f, c, k, k), dtype)
        dy = normal(rng, (n, f, hw, hw), dtype)
        out = {}
        for algo in ("auto", "gemm"):
            with relucore.use_conv_algorithm(algo):
                out[algo] = [relucore.conv2d(x, w, None, padding=k // 2),
                             *relucore.conv2d_backward(dy, x, w, padding=k // 2)[:2]]
        return [a.tobytes() != g.tobytes() for a, g in zip(out["auto"], out["gemm"])]

    assert taken((32, 3, 32, 16), 7, np.float64) == [True, True, True]  # estimate ~0.6x the GEMM's
    assert taken((32, 3, 32, 16), 7, np.float32) == [False, False, False]
    assert taken((8, 16, 16, 16), 3, np.float64) == [True, False, False]


def test_threads_same_bits(rc, dtype, rng):
    x = normal(rng, (9, 3, 32, 32), dtype)
    w = normal(rng, (16, 3, 7, 7), dtype)
    dy = normal(rng, (9, 16, 32, 32), dtype)
    old = relucore.get_num_threads()
    out = []
    try:
        for n in (1, 2, 3):
            relucore.set_num_threads(n)
            out.append([forward(x, w, None, 3), *backward(dy, x, w, 3)])
    finally:
        relucore.set_num_threads(old)
    for run in out[1:]:
        for a, b in zip(run, out[0]):
            assert_bitwise(a, b)


def test_setting_is_reported(rc):
    with relucore.use_conv_algorithm("fft"):
        assert relucore.get_conv_algorithm() == "fft" == relucore.runtime_info()["conv_algo"]
