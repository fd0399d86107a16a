"""The conv/linear work splits: whole images per thread, one image split across threads (the GEMM
by column or row blocks, im2col/col2im by rows/channels), against the reference, for 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

import relucore as rc
import relucore.reference as ref


@pytest.fixture(params=[1, 2], ids=["t1", "t2"])
def threads(request):
    before = rc.get_num_threads()
    rc.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        rc.set_num_threads(before)


def _close(got, want, dtype):
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * max(1.0, float(np.abs(w).max(initial=0))))


# (N, C, H, W, F, k, stride, padding, dilation, groups): batch 1 with a wide output (split GEMM by
# columns), batch 1 with few columns and many rows (split by rows), batches that give each thread
# whole images, a pointwise 1x1 (no im2col), grouped and depthwise.
CONFIGS = [
    (1, 8, 20, 20, 16, 3, 1, 1, 1, 1),
    (1, 64, 4, 4, 48, 3, 1, 1, 1, 1),
    (5, 6, 11, 9, 10, (3, 2), 2, (1, 0), (1, 2), 2),
    (3, 16, 12, 12, 24, 1, 1, 0, 1, 1),
    (1, 16, 17, 17, 16, 3, 1, 1, 1, 16),
    (4, 8, 9, 9, 16, 3, 2, 1, 2, 8),
    (1, 16, 20, 20, 16, 3, 1, 1, 1, 1),    # Winograd, batch 1: transforms and the 16 GEMMs split
    (5, 16, 9, 9, 24, 3, 1, 1, 1, 1),      # Winograd, images grouped 4 + 1 (25 tiles each)
    (9, 16, 9, 9, 16, 3, 1, 0, 1, 1),      # Winograd dweight: 3 image groups in 2 fixed chunks
    (1, 40, 30, 40, 40, 3, 1, 1, 1, 1),    # Winograd, 300 tiles: blocks 96 + 96 | 108 starting mid-row
]


WINOGRAD = CONFIGS[-4:]  # run with Winograd forced: "auto" leaves such small layers to the GEMM


@pytest.fixture
def winograd_for(request):
    """Forces Winograd while a test runs one of the WINOGRAD configurations."""
    previous = rc.get_conv_algorithm()
    with rc.use_conv_algorithm(previous):  # restores the setting after the test
        yield lambda cfg: rc.use_conv_algorithm("winograd" if cfg in WINOGRAD else previous)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[f"cfg{i}" for i in range(len(CONFIGS))])
def test_conv2d_splits(threads, winograd_for, cfg, dtype):
    winograd_for(cfg)
    n, c, h, w, f, k, s, p, d, g = cfg
    rng = np.random.default_rng(sum(map(hash, map(str, cfg))) % 2**32)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    y = rc.conv2d(x, wt, b, s, p, d, g)
    _close(y, ref.conv2d(x, wt, b, s, p, d, g), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    _close(rc.conv2d_backward(dy, x, wt, s, p, d, g), ref.conv2d_backward(dy, x, wt, s, p, d, g), dtype)


@pytest.mark.parametrize("m,n_in,n_out", [(1, 300, 200), (200, 64, 3), (64, 128, 256)])
def test_linear_splits(threads, m, n_in, n_out, dtype):
    rng = np.random.default_rng(m * 7 + n_in)
    x = rng.standard_normal((m, n_in)).astype(dtype)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    _close(rc.linear(x, w, b), ref.linear(x, w, b), dtype)
    dy = rng.standard_normal((m, n_out)).astype(dtype)
    _close(rc.linear_backward(dy, x, w), ref.linear_backward(dy, x, w), dtype)


def test_im2col_col2im_batch1_split(threads, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 7, 13, 13)).astype(dtype)
    cols = rc.im2col(x, 3, 1, 1, 1)
    np.testing.assert_array_equal(cols, ref.im2col(x, 3, 1, 1, 1))
    _close(rc.col2im(cols, x.shape, 3, 1, 1, 1), ref.col2im(cols, x.shape, 3, 1, 1, 1), dtype)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.mark.parametrize("cfg", WINOGRAD, ids=["wino_b1", "wino_grouped", "wino_chunks", "wino_blocks"])
def test_winograd_thread_count_bitwise(winograd_for, cfg, dtype):
    """The same bits for 1 and 2 threads (every GEMM and transform is whole on one thread)."""
    winograd_for(cfg)
    n, c, h, w, f, k, s, p, d, g = cfg
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // g, k, k)).astype(dtype)
    dy = rng.standard_normal((n, f, h + 2 * p - 2, w + 2 * p - 2)).astype(dtype)
    before = rc.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            rc.set_num_threads(t)
            out.append([rc.conv2d(x, wt, None, s, p, d, g)] + list(rc.conv2d_backward(dy, x, wt, s, p, d, g)))
    finally:
        rc.set_num_threads(before)
    for a, b in zip(*out):
        assert a.tobytes() == b.tobytes()
