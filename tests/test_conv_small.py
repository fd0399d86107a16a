"""conv2d for layers with few taps per output (C*kh*kw <= 27, at most two filters per tap, stride 1:
a network's first layer), which runs a direct kernel in place of relucore's GEMM: against the reference on every ISA at the
kernel's edges (output widths around the vector lengths, filter counts around its groups of 8, odd
row counts, batch 1 split into row blocks, padding wider than the kernel's reach), with NaN/±inf/-0.0
in the input, the fused activations bitwise against the separate ones, and the same bits on one and two threads."""

from __future__ import annotations

import numpy as np
import pytest
import relucore
import relucore.reference as R
from _conv_helpers import assert_terms_close, normal
from _helpers import assert_bitwise


@pytest.fixture(autouse=True)
def own_gemm():
    """The direct kernel stands in for relucore's own GEMM (the default on AVX-512 only): forced
    here, so that every ISA's kernel runs."""
    with relucore.use_gemm("own"):
        yield


def check(x, w, b, padding):
    y = relucore.conv2d(x, w, b, padding=padding)
    exp = R.conv2d(x, w, b, padding=padding)
    terms = R.conv2d(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                     None if b is None else np.abs(b).astype(np.float64), padding=padding)
    assert_terms_close(y, exp, terms, f"conv2d {x.shape} {w.shape} p={padding}")
    return y


@pytest.mark.parametrize("ow", list(range(1, 35)) + [47, 48, 49])
def test_widths(rc, dtype, rng, ow):
    x = normal(rng, (2, 1, 5, ow), dtype)
    check(x, normal(rng, (9, 1, 3, 3), dtype), normal(rng, (9,), dtype), 1)


@pytest.mark.parametrize("f", range(1, 19))
@pytest.mark.parametrize("oh", [1, 2, 3, 7])
def test_filters_and_rows(rc, dtype, rng, f, oh):
    c = 1 if f <= 9 else 2  # at most two filters per tap
    x = normal(rng, (3, c, oh, 19), dtype)
    check(x, normal(rng, (f, c, 3, 3), dtype), None if f % 2 else normal(rng, (f,), dtype), 1)


@pytest.mark.parametrize("kernel", [(1, 1), (1, 5), (5, 1), (2, 3), (3, 3), (5, 5), (3, 9)])
@pytest.mark.parametrize("padding", [0, 1, 2, (0, 3), (4, 1)])
def test_kernels_and_padding(rc, dtype, rng, kernel, padding):
    kh, kw = kernel
    c = max(1, 27 // (kh * kw))
    ph, pw = np.broadcast_to(padding, 2)
    x = normal(rng, (2, c, max(1, kh - 2 * ph) + 4, max(1, kw - 2 * pw) + 9), dtype)
    check(x, normal(rng, (min(2 * c * kh * kw, 12), c, kh, kw), dtype), normal(rng, (min(2 * c * kh * kw, 12),), dtype),
          padding)


@pytest.mark.parametrize("shape", [(1, 3, 160, 161), (2, 3, 96, 96), (5, 1, 130, 70)], ids=str)
def test_batch_one_row_blocks_and_threads(rc, dtype, rng, shape):
    """Enough work for two threads; a batch smaller than four items per thread is split into blocks
    of rows."""
    x = normal(rng, shape, dtype)
    w = normal(rng, (18, shape[1], 3, 3), dtype)
    b = normal(rng, (18,), dtype)
    old = relucore.get_num_threads()
    try:
        out = []
        for n in (1, 2, 3):
            relucore.set_num_threads(n)
            out.append(check(x, w, b, 1))
    finally:
        relucore.set_num_threads(old)
    assert_bitwise(out[1], out[0])
    assert_bitwise(out[2], out[0])


@pytest.mark.parametrize("act", ["relu", ("leaky_relu", 0.2), ("elu", 0.5)], ids=str)
def test_specials_and_fused_activation(rc, dtype, rng, act):
    x = normal(rng, (3, 2, 9, 21), dtype)
    r = rng.random(x.shape)
    x[r < 0.02] = np.nan
    x[(r >= 0.02) & (r < 0.04)] = np.inf
    x[(r >= 0.04) & (r < 0.06)] = -np.inf
    x[(r >= 0.06) & (r < 0.1)] = -0.0
    w = normal(rng, (12, 2, 3, 3), dtype)
    w[0] = 0.0  # 0 * inf is NaN, as in the reference
    b = normal(rng, (12,), dtype)
    y = check(x, w, b, 1)
    assert np.isnan(y).any() and np.isinf(y).any()
    name, param = (act, None) if isinstance(act, str) else act
    sep = relucore.relu(y) if name == "relu" else getattr(relucore, name)(y, param)
    assert_bitwise(relucore.conv2d(x, w, b, padding=1, activation=act), sep)


@pytest.mark.parametrize("kernel", [(1, 5), (5, 1), (2, 3), (5, 5)])
def test_same_bits_as_the_gemm_path(rc, dtype, rng, kernel):
    """The direct kernel sums as relucore's GEMM does; with Winograd forced (which takes only 3x3
    layers) these layers run the GEMM path instead."""
    x = normal(rng, (3, 1, 11, 29), dtype)
    w = normal(rng, (6, 1) + kernel, dtype)
    b = normal(rng, (6,), dtype)
    direct = check(x, w, b, 1)
    with relucore.use_conv_algorithm("winograd"):
        assert_bitwise(relucore.conv2d(x, w, b, padding=1), direct)
