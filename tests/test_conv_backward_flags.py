"""conv2d_backward(..., compute_dx=, compute_dweight=, compute_dbias=): every combination returns
the full call's arrays for the gradients asked for and None for the others, natively (every ISA,
GEMM backend and 3x3 algorithm) and in the reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import relucore.reference as R
from _conv_helpers import Conv, conv_id, normal
from _helpers import assert_bitwise

FLAGS = list(itertools.product((True, False), repeat=3))
NAMES = ("compute_dx", "compute_dweight", "compute_dbias")

# GEMM path with im2col, 1x1 (no im2col), depthwise (direct kernels), groups with stride and
# dilation, and Winograd-eligible 3x3 stride-1 layers (both gradients on Winograd when forced).
SHAPES = [
    Conv(2, 3, 7, 6, 5, 3, 1, 1),
    Conv(2, 5, 6, 7, 3, 1),
    Conv(2, 8, 9, 9, 16, 3, 1, 1, 1, 8),
    Conv(1, 6, 9, 8, 4, (3, 2), 2, 1, 2, 2),
    Conv(3, 16, 9, 7, 16, 3, 1, 1),
]


def flags_id(flags) -> str:
    return "".join("1" if f else "0" for f in flags)


def check_flags(m, cfg, dy, x, w, flags):
    full = m.conv2d_backward(dy, x, w, *cfg.args)
    got = m.conv2d_backward(dy, x, w, *cfg.args, **dict(zip(NAMES, flags)))
    assert isinstance(got, tuple) and len(got) == 3
    for name, want, g, f in zip(("dx", "dweight", "dbias"), flags, got, full):
        if want:
            assert_bitwise(g, f, f"{name} with {dict(zip(NAMES, flags))}")
        else:
            assert g is None, f"{name} not asked for, got {type(g).__name__}"


@pytest.mark.parametrize("cfg", SHAPES, ids=conv_id)
def test_flags_native(rc, gemm, conv_algo, cfg, dtype, rng):
    x, w, dy = normal(rng, cfg.x_shape, dtype), normal(rng, cfg.w_shape, dtype), normal(rng, cfg.y_shape, dtype)
    for flags in FLAGS:
        check_flags(rc, cfg, dy, x, w, flags)


@pytest.mark.parametrize("flags", FLAGS, ids=flags_id)
@pytest.mark.parametrize("cfg", SHAPES, ids=conv_id)
def test_flags_reference(cfg, flags, dtype, rng):
    x, w, dy = normal(rng, cfg.x_shape, dtype), normal(rng, cfg.w_shape, dtype), normal(rng, cfg.y_shape, dtype)
    check_flags(R, cfg, dy, x, w, flags)


@pytest.mark.parametrize("flags", FLAGS, ids=flags_id)
def test_flags_empty_output(rc, flags):
    """No output positions: the gradients asked for are zeros, the others None."""
    x, w = np.ones((0, 2, 5, 5)), np.ones((3, 2, 3, 3))
    for m in (rc, R):
        got = m.conv2d_backward(np.ones((0, 3, 3, 3)), x, w, **dict(zip(NAMES, flags)))
        for want, g, shape in zip(flags, got, (x.shape, w.shape, (3,))):
            if want:
                assert_bitwise(g, np.zeros(shape))
            else:
                assert g is None


def test_flags_are_truth_values(rc, rng):
    cfg = SHAPES[0]
    x, w, dy = (normal(rng, s, np.float64) for s in (cfg.x_shape, cfg.w_shape, cfg.y_shape))
    for m in (rc, R):
        dx, dw, db = m.conv2d_backward(dy, x, w, *cfg.args, compute_dx=0, compute_dweight=np.bool_(True),
                                       compute_dbias=[])
        assert dx is None and db is None and dw.shape == w.shape


def test_flags_are_keyword_only(rc):
    x, w, dy = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2))
    for m in (rc, R):
        with pytest.raises(TypeError):
            m.conv2d_backward(dy, x, w, 1, 0, 1, 1, False)
