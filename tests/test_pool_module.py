"""nn.MaxPool2d keeps one byte per output for backward (the window position that won): its forward,
the positions and its backward against relucore.reference on every ISA (widths 1 to 33, odd sizes,
padding, overlapping windows, NaN/±inf/±0 ties, non-contiguous input, batch 1, both dtypes), the
through Sequential's evaluation plan, the NumPy backend's own int64 indices (and backward across
backends), int64 indices for windows of more than 255 positions, the bytes kept, damaged positions, and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import relucore
import relucore.reference as R
from _conv_helpers import KINDS, view
from _helpers import assert_bitwise, make_data
from relucore import nn
from relucore.nn.pooling import MAX_POSITIONS
from relucore.nn.summary import summary
from test_pool import distinct_data, tie_data


def expected_positions(indices, w, kernel, stride, padding):
    """Each reference index as its position i * kw + j in its window (independent of the module)."""
    oh, ow = indices.shape[2:]
    top = (np.arange(oh) * stride[0] - padding[0])[:, None]
    left = (np.arange(ow) * stride[1] - padding[1])[None, :]
    return ((indices // w - top) * kernel[1] + indices % w - left).astype(np.uint8)


def check(x, kernel, stride=None, padding=0, dy_seed=1):
    """The module's output, kept positions and gradient against the reference, bit for bit."""
    m = nn.MaxPool2d(kernel, stride, padding)
    ey, eidx = R.max_pool2d(x, kernel, stride, padding)
    y = m(x)
    assert_bitwise(y, ey, f"MaxPool2d y {x.shape}")
    kept = m.__dict__["_cache"][0]
    assert kept.dtype == np.uint8 and kept.shape == y.shape
    np.testing.assert_array_equal(kept, expected_positions(eidx, x.shape[3], m.kernel_size, m.stride, m.padding))
    dy = make_data(np.random.default_rng(dy_seed), y.shape, x.dtype)  # ±0, NaN, ±inf among them
    assert_bitwise(m.backward(dy), R.max_pool2d_backward(dy, eidx, x.shape), f"MaxPool2d dx {x.shape}")


@pytest.mark.parametrize("h", [2, 3, 5, 7, 8])  # 1 to 4 output rows: rows in pairs and one left
@pytest.mark.parametrize("w", range(2, 34))
def test_2x2_widths(rc, dtype, rng, h, w):
    for x in (tie_data(rng, (2, 3, h, w), dtype), make_data(rng, (1, 2, h, w), dtype),
              np.full((1, 2, h, w), -np.inf, dtype), np.full((1, 2, h, w), np.nan, dtype)):
        check(x, 2)


@pytest.mark.parametrize("w", range(1, 34))
@pytest.mark.parametrize("cfg", [(2, 2, 1), (3, 2, 1), ((2, 3), (1, 2), (1, 1)), (3, 1, 0)],
                         ids=["k2s2p1", "k3s2p1", "rect", "k3s1"])
def test_other_windows_widths(rc, dtype, rng, w, cfg):
    kernel, stride, padding = cfg
    x = tie_data(rng, (2, 3, 7, w), dtype)
    if w + 2 * np.broadcast_to(padding, 2)[1] < np.broadcast_to(kernel, 2)[1]:  # no whole window
        for f in (nn.MaxPool2d(kernel, stride, padding), lambda x: R.max_pool2d(x, kernel, stride, padding)):
            with pytest.raises(ValueError):
                f(x)
        return
    check(x, kernel, stride, padding)


@pytest.mark.parametrize("shape", [(2, 16, 28, 28), (2, 32, 14, 14), (1, 1, 2, 2), (1, 3, 9, 13), (3, 5, 34, 66)])
def test_training_shapes(rc, dtype, rng, shape):
    check(np.maximum(rng.standard_normal(shape).astype(dtype), 0), 2)  # ReLU output: ties at 0
    check(tie_data(rng, shape, dtype), 2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cfg", [(2, None, 0), (3, 2, 1)], ids=["k2", "k3s2p1"])
def test_layouts(rc, dtype, rng, kind, cfg):
    check(view(tie_data(rng, (2, 3, 6, 14), dtype), kind), *cfg)


def test_numpy_backend_keeps_its_indices_and_backends_mix(rc, dtype, rng):
    """The numpy backend keeps the reference's int64 indices (no conversion work added to it); a
    forward on one backend and its backward on the other give the same bits either way."""
    x = tie_data(rng, (2, 3, 9, 11), dtype)
    dy = rng.standard_normal((2, 3, 5, 6)).astype(dtype)
    native, numpy = nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(3, 2, 1)
    y = native(x)
    with relucore.use_backend("numpy"):
        assert_bitwise(numpy(x), y)
        kept = numpy.__dict__["_cache"][0]
        np.testing.assert_array_equal(kept, R.max_pool2d(x, 3, 2, 1)[1])
        assert kept.dtype == np.int64
        dx_numpy = numpy.backward(dy)
        dx_mixed = native.backward(dy)  # positions kept by the native forward, differentiated on NumPy
        numpy(x)
    assert_bitwise(dx_numpy, dx_mixed)
    assert_bitwise(numpy.backward(dy), dx_numpy)  # indices kept on NumPy, differentiated natively
    native(x)
    assert_bitwise(native.backward(dy), dx_numpy)


def test_evaluation_plan_keeps_positions(rc, dtype, rng):
    model = nn.Sequential(nn.MaxPool2d(2), nn.Flatten()).eval()
    x = tie_data(rng, (2, 3, 8, 10), dtype)
    ey, eidx = R.max_pool2d(x, 2)
    dy = rng.standard_normal((2, 3 * 4 * 5)).astype(dtype)
    for _ in range(3):  # layer by layer, then planned
        assert_bitwise(model(x), ey.reshape(2, -1))
        assert model[0].__dict__["_cache"][0].dtype == np.uint8
        assert_bitwise(model.backward(dy), R.max_pool2d_backward(dy.reshape(ey.shape), eidx, x.shape))


def test_windows_over_255_positions_keep_int64_indices(rc, dtype, rng):
    x = tie_data(rng, (1, 2, 17, 18), dtype)
    for kernel, kept_dtype in ((15, np.uint8), ((15, 17), np.uint8), (16, np.int64)):
        m = nn.MaxPool2d(kernel, 1)
        y = m(x)
        ey, eidx = R.max_pool2d(x, kernel, 1)
        assert_bitwise(y, ey)
        assert m.__dict__["_cache"][0].dtype == kept_dtype
        assert (np.prod(m.kernel_size) <= MAX_POSITIONS) == (kept_dtype == np.uint8)
        dy = rng.standard_normal(y.shape).astype(dtype)
        assert_bitwise(m.backward(dy), R.max_pool2d_backward(dy, eidx, x.shape))


@pytest.mark.parametrize("kernel, per_output", [(2, 1), (3, 1), (16, 8)])
def test_bytes_kept(kernel, per_output):
    s = summary(nn.Sequential(nn.MaxPool2d(kernel, 1)), (2, 3, 20, 20), np.float64)
    outputs = 2 * 3 * (21 - kernel) ** 2
    assert s.rows[0].kept_bytes == outputs * per_output
    assert s.rows[0].plain_bytes == 2 * 3 * 400 * 8 + outputs * 8


@pytest.mark.parametrize("cfg", [((2, 2), 2), (3, 2, 1)])
def test_damaged_positions_are_an_error(rc, cfg):
    m = nn.MaxPool2d(*cfg)
    y = m(np.zeros((1, 2, 6, 6)))
    m.__dict__["_cache"][0][0, 1, 0, 0] = 200
    with pytest.raises(ValueError, match="MaxPool2d.*positions"):
        m.backward(np.ones_like(y))


def test_empty_batch(rc, dtype):
    m = nn.MaxPool2d(2)
    y = m(np.zeros((0, 3, 4, 4), dtype))
    assert y.shape == (0, 3, 2, 2)
    dx = m.backward(np.zeros_like(y))
    assert dx.shape == (0, 3, 4, 4) and dx.dtype == dtype


@pytest.mark.parametrize("cfg", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1)), (3, 1, 1)])
def test_gradcheck(rc, cfg):
    x = distinct_data(np.random.default_rng(3), (2, 2, 7, 8))
    report = relucore.gradcheck(nn.MaxPool2d(*cfg), x)
    assert report.passed, report
