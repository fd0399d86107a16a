"""The 2x2 stride-2 max pool's vector path against the reference on every ISA: every width from 2
to 33 (whole vectors, remainders, rows narrower than a vector whose stores spill into the next
row; width 1 has no window and is a ValueError), odd heights, ties with NaN/±inf/±0, both dtypes,
non-contiguous input, and the training shapes."""

from __future__ import annotations

import numpy as np
import pytest
import relucore.reference as R
from _conv_helpers import KINDS, view
from _helpers import assert_bitwise, make_data
from test_pool import tie_data as ties  # small integers with NaN, ±inf, ±0: ties in most windows

NAN, INF = np.nan, np.inf


def check(m, x):
    y, idx = m.max_pool2d(x, 2)
    ey, eidx = R.max_pool2d(x, 2)
    assert_bitwise(y, ey, f"max_pool2d y {x.shape}")
    assert_bitwise(idx, eidx, f"max_pool2d indices {x.shape}")
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    assert_bitwise(m.max_pool2d_backward(dy, idx, x.shape), R.max_pool2d_backward(dy, eidx, x.shape),
                   f"max_pool2d_backward {x.shape}")


@pytest.mark.parametrize("h", [2, 3, 5, 8])
@pytest.mark.parametrize("w", range(1, 34))
def test_widths(rc, dtype, rng, h, w):
    shape = (2, 3, h, w)
    if w == 1:  # no whole window: an error, as in PyTorch
        for m in (rc, R):
            with pytest.raises(ValueError, match="kernel"):
                m.max_pool2d(np.zeros(shape, dtype), 2)
        return
    check(rc, ties(rng, shape, dtype))
    check(rc, make_data(rng, shape, dtype))
    check(rc, np.full(shape, -INF, dtype))
    check(rc, np.full(shape, NAN, dtype))


@pytest.mark.parametrize("shape", [(4, 16, 28, 28), (4, 32, 14, 14), (1, 1, 2, 2), (3, 5, 34, 66)])
def test_training_shapes(rc, dtype, rng, shape):
    check(rc, np.maximum(rng.standard_normal(shape).astype(dtype), 0))  # ReLU output: ties at 0
    check(rc, ties(rng, shape, dtype))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("w", [7, 14, 17])
def test_layouts(rc, dtype, rng, kind, w):
    check(rc, view(ties(rng, (2, 3, 6, w), dtype), kind))


def test_threads_same_result(rc, dtype, rng):
    x = ties(rng, (8, 16, 14, 14), dtype)
    before = rc.get_num_threads()
    try:
        got = []
        for t in (1, 2):
            rc.set_num_threads(t)
            got.append(rc.max_pool2d(x, 2))
    finally:
        rc.set_num_threads(before)
    for a, b in zip(*got):
        assert_bitwise(a, b, "1 vs 2 threads")
