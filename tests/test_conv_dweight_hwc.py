"""The GEMM path's backward with relucore's own GEMM, against the reference on every ISA: the kernel
gradient built from the pixel-major image (channels a multiple of the vector length: the GEMM's
packed panels loaded straight from the image, tap-major columns reordered at the end) and dx from
weights packed once per call (at most 256 column rows and 256 filters per group), at their edges
and on both sides of their bounds; and the kernel gradient's independence from the thread count."""

from __future__ import annotations

import numpy as np
import pytest
from _conv_helpers import assert_grad_close, backward_data

# (N, C, H, W, F, kh, kw, stride, padding, dilation, groups)
CASES = {
    "conv2": (8, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1),
    "c8": (3, 8, 9, 9, 6, 3, 3, 1, 1, 1, 1),  # float64: 8 channels are whole vectors; float32: not
    "c24": (3, 24, 9, 9, 6, 3, 3, 1, 1, 1, 1),  # float32: not a multiple of 16
    "c32_f1": (2, 32, 7, 7, 1, 3, 3, 1, 1, 1, 1),  # one filter: one partial row tile; dx: 288 column rows
    "k4_f256": (2, 16, 6, 6, 256, 4, 4, 1, 1, 1, 1),  # dx: 256 column rows and 256 filters, the largest packed
    "pad0": (3, 16, 10, 11, 9, 3, 3, 1, 0, 1, 1),
    "pad2": (3, 16, 10, 11, 9, 3, 3, 1, 2, 1, 1),
    "stride2": (3, 16, 15, 13, 10, 3, 3, 2, 1, 1, 1),
    "stride3_k5": (2, 16, 17, 17, 7, 5, 5, 3, 2, 1, 1),
    "dilation2": (3, 16, 12, 12, 5, 3, 3, 1, 2, 2, 1),
    "k3x2": (3, 16, 9, 8, 12, 3, 2, 1, 1, 1, 1),
    "k1_stride2": (3, 32, 9, 9, 8, 1, 1, 2, 0, 1, 1),
    "groups2": (3, 32, 8, 8, 12, 3, 3, 1, 1, 1, 2),
    "pixel": (5, 16, 1, 1, 4, 3, 3, 1, 1, 1, 1),  # 1x1 images: every tap but the centre outside
    "deep": (2, 16, 20, 20, 9, 3, 3, 1, 1, 1, 1),  # 400 pixels: two depth blocks of the GEMM
    "many_filters": (2, 16, 6, 6, 1000, 3, 3, 1, 1, 1, 1),  # the tap-major product over its budget; dx too
    "big_image": (1, 16, 96, 96, 4, 3, 3, 1, 1, 1, 1),  # the pixel-major image over its budget
    "batch1": (1, 16, 24, 24, 40, 3, 3, 1, 1, 1, 1),  # one image: the GEMM split over threads
}


def _data(cfg, dtype, seed=0):
    return backward_data(*cfg, dtype, seed)


_close = assert_grad_close


@pytest.fixture
def gemm_path(rc):
    with rc.use_gemm("own"), rc.use_conv_algorithm("gemm"):
        yield


@pytest.mark.parametrize("name", list(CASES))
def test_dweight_hwc_against_reference(rc, ref, isa, gemm_path, name, dtype):
    n, c, h, w, f, kh, kw, s, p, d, g = cfg = CASES[name]
    x, wt, dy = _data(cfg, dtype)
    got = rc.conv2d_backward(dy, x, wt, s, p, d, g)
    want = ref.conv2d_backward(dy, x, wt, s, p, d, g)
    for a, b in zip(got, want):
        _close(a, b, dtype)


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_dweight_hwc_non_finite(rc, ref, isa, gemm_path, special, dtype):
    x, wt, dy = _data(CASES["pad2"], dtype, seed=2)
    x[1, 3, 0, 0] = special  # a corner pixel: read by the taps that reach into the padding
    dy[2, 4, 5, 5] = special
    got = rc.conv2d_backward(dy, x, wt, 1, 2, compute_dx=False, compute_dbias=False)[1]
    want = ref.conv2d_backward(dy, x, wt, 1, 2, compute_dx=False, compute_dbias=False)[1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    _close(np.where(np.isfinite(got), got, 0), np.where(np.isfinite(want), want, 0), dtype)


def test_dweight_hwc_noncontiguous(rc, ref, isa, gemm_path, dtype):
    x, wt, dy = _data(CASES["stride2"], dtype, seed=3)
    xs = np.repeat(x, 2, axis=3)[..., ::2]
    assert not xs.flags.c_contiguous
    got = rc.conv2d_backward(dy, xs, wt, 2, 1)
    want = ref.conv2d_backward(dy, x, wt, 2, 1)
    for a, b in zip(got, want):
        _close(a, b, dtype)


@pytest.mark.parametrize("name", ["conv2", "batch1", "groups2"])
def test_dweight_hwc_thread_count_bitwise(rc, gemm_path, name, dtype):
    n, c, h, w, f, kh, kw, s, p, d, g = cfg = CASES[name]
    x, wt, dy = _data(cfg, dtype, seed=4)
    before = rc.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            rc.set_num_threads(t)
            outs.append(rc.conv2d_backward(dy, x, wt, s, p, d, g, compute_dx=False)[1])
    finally:
        rc.set_num_threads(before)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
