"""The kernel gradient of layers with few column rows (C * kh * kw <= 16: the dot form over all of a
chunk's images) and on both sides of that bound, against the reference, on every ISA with
relucore's own GEMM; its independence from the thread count; and which algorithm "auto" takes for
the backward's dx and dweight."""

from __future__ import annotations

import numpy as np
import pytest
from _conv_helpers import assert_grad_close, backward_data

# (N, C, H, W, F, k, stride, padding, dilation)
CASES = {
    "conv1": (64, 1, 28, 28, 16, 3, 1, 1, 1),
    "f1": (3, 1, 9, 9, 1, 3, 1, 1, 1),
    "f3": (3, 1, 9, 9, 3, 3, 1, 1, 1),
    "f4": (3, 1, 9, 9, 4, 3, 1, 1, 1),  # one register tile of rows
    "f5": (3, 1, 9, 9, 5, 3, 1, 1, 1),
    "f9": (3, 1, 9, 9, 9, 3, 1, 1, 1),
    "pixel": (5, 1, 1, 1, 4, 3, 1, 1, 1),  # 1x1 images, one output pixel each
    "batch1": (1, 1, 20, 20, 7, 3, 1, 1, 1),
    "batch1_split": (1, 1, 128, 128, 64, 3, 1, 1, 1),  # one image, its filters split over threads
    "pad0": (4, 1, 12, 11, 6, 3, 1, 0, 1),
    "pad2": (4, 1, 12, 11, 6, 3, 1, 2, 1),
    "stride2": (4, 1, 15, 15, 6, 3, 2, 1, 1),
    "dilation2": (3, 1, 17, 17, 5, 3, 1, 2, 2),
    "c2k2": (3, 2, 10, 10, 6, 2, 1, 1, 1),  # 8 column rows
    "k4": (3, 1, 10, 10, 6, 4, 1, 1, 1),  # 16 column rows: the last layer shape of the dot form
    "k5": (3, 1, 10, 10, 6, 5, 1, 2, 1),  # 25: the blocked GEMM
    "c2k3": (3, 2, 10, 10, 6, 3, 1, 1, 1),  # 18: the blocked GEMM
    "c16k3_batch1": (1, 16, 32, 32, 64, 3, 1, 1, 1),  # the blocked GEMM, one image split over threads
    "pixel_chunks": (2, 1, 64, 64, 5, 3, 1, 1, 1),  # 4096 pixels: several pixel chunks per image
    "row_blocks": (2, 1, 6, 6, 460, 3, 1, 1, 1),  # more filters than one accumulator block holds
}


def _data(cfg, dtype, seed=0):
    n, c, h, w, f, k, s, p, d = cfg
    return backward_data(n, c, h, w, f, k, k, s, p, d, 1, dtype, seed)


_close = assert_grad_close


@pytest.fixture
def own_gemm(rc):
    with rc.use_gemm("own"):
        yield


@pytest.mark.parametrize("name", list(CASES))
def test_dweight_against_reference(rc, ref, own_gemm, name, dtype):
    n, c, h, w, f, k, s, p, d = cfg = CASES[name]
    x, wt, dy = _data(cfg, dtype)
    got = rc.conv2d_backward(dy, x, wt, s, p, d)
    want = ref.conv2d_backward(dy, x, wt, s, p, d)
    for g, r in zip(got, want):
        _close(g, r, dtype)


def test_dweight_noncontiguous_and_without_dx(rc, ref, own_gemm, dtype):
    x, wt, dy = _data(CASES["conv1"], dtype, seed=1)
    xs = np.repeat(x, 2, axis=3)[..., ::2]  # strided view with x's values
    assert not xs.flags.c_contiguous
    dx, dw, db = rc.conv2d_backward(dy, xs, wt, 1, 1, compute_dx=False)
    assert dx is None
    _, want_dw, want_db = ref.conv2d_backward(dy, x, wt, 1, 1)
    _close(dw, want_dw, dtype)
    _close(db, want_db, dtype)


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_dweight_nonfinite(rc, ref, own_gemm, special, dtype):
    x, wt, dy = _data(CASES["f5"], dtype, seed=2)
    x[1, 0, 4, 4] = special
    dy[2, 3, 0, 0] = special
    got = rc.conv2d_backward(dy, x, wt, 1, 1)[1]
    with np.errstate(invalid="ignore"):
        want = ref.conv2d_backward(dy, x, wt, 1, 1)[1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    _close(got, want, dtype)


@pytest.mark.parametrize("name", ["conv1", "batch1_split", "row_blocks", "k5", "c16k3_batch1"])
def test_dweight_thread_count_bitwise(rc, own_gemm, name, dtype):
    """dweight's sums are fixed by the shape: 1 and 2 threads give the same bits."""
    n, c, h, w, f, k, s, p, d = cfg = CASES[name]
    x, wt, dy = _data(cfg, dtype, seed=3)
    before = rc.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            rc.set_num_threads(t)
            out.append(rc.conv2d_backward(dy, x, wt, s, p, d)[1])
    finally:
        rc.set_num_threads(before)
    np.testing.assert_array_equal(out[0], out[1])


# (N, C, H, F, dtype) -> the algorithm "auto" must take for (dx, dweight); 3x3, padding 1.
AUTO = [
    ((12, 16, 14, 32, np.float32), ("winograd", "winograd")),  # the example CNN's second layer
    ((12, 16, 14, 32, np.float64), ("winograd", "winograd")),
    ((8, 32, 14, 32, np.float32), ("winograd", "winograd")),
    ((12, 32, 14, 16, np.float32), ("winograd", "winograd")),
    ((1, 16, 56, 32, np.float64), ("winograd", "winograd")),
    ((16, 8, 14, 32, np.float64), ("gemm", "gemm")),  # 8 input channels: below both channel rules
]


@pytest.mark.parametrize("cfg,want", AUTO, ids=[f"{n}x{c}x{h}->{f}-{np.dtype(t).name}" for (n, c, h, f, t), _ in AUTO])
def test_auto_decides_dx_and_dweight_apart(rc, cfg, want):
    """Each of dx and dweight under "auto" has the bits of the algorithm its rule names."""
    n, c, h, f, dtype = cfg
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, c, h, h)).astype(dtype)
    wt = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    dy = rng.standard_normal((n, f, h, h)).astype(dtype)
    got = {}
    for algo in ("auto", "gemm", "winograd"):
        with rc.use_conv_algorithm(algo):
            got[algo] = rc.conv2d_backward(dy, x, wt, 1, 1)
    assert not np.array_equal(got["gemm"][0], got["winograd"][0])  # the two paths round differently
    assert not np.array_equal(got["gemm"][1], got["winograd"][1])
    np.testing.assert_array_equal(got["auto"][0], got[want[0]][0])
    np.testing.assert_array_equal(got["auto"][1], got[want[1]][1])
