"""Native batch norm (relucore.batch_norm / batch_norm_backward) against relucore.reference on
every ISA: shapes around the vector width and the summation block, every activation, training and
eval, the y-only backward, thread-count independence, large offsets, specials, layouts, out=."""

from __future__ import annotations

import numpy as np
import pytest

import relucore
from relucore import reference as R

from test_norm_reference import _bn_error_cases

ACTS = [None, "relu", ("leaky_relu", 0.1), ("elu", 0.7)]
INVERTIBLE = [None, ("leaky_relu", 0.1), ("elu", 0.7)]
# 2-D (channels across lanes: C around 8/16 lanes); spatial sizes around 8/16 lanes; 1x1; N = 1; C = 1; a run longer than the 4096-element block
SHAPES = [(7, 3), (9, 17), (33, 37), (3, 2, 15), (2, 3, 16), (2, 2, 17), (2, 2, 33), (5, 2, 1, 1), (1, 3, 4, 5),
          (4, 1, 3, 3), (2, 2, 2, 3, 4), (2, 2, 4100)]
# Around the layouts' boundaries (cpp/ops/norm.cpp): columns below S = 64; one call per channel for
# N >= 4 up to 256 KiB (both sides of it: (64, 8, 65) is 133 KB in float32, 266 KB in float64;
# (4, 64, 256) is 256 KiB in float32 and runs on 2 threads); runs in memory order above it or for
# N < 4; a channel's N runs longer than the 4096-element summation block.
LAYOUT_SHAPES = [(1, 7, 64), (2, 9, 65), (3, 65, 49), (64, 65), (2, 257, 7, 7), (4, 63, 64), (4, 257, 63),
                 (64, 8, 65), (5, 9, 14, 14), (3, 64, 196), (64, 2, 784), (4, 64, 256), (64, 1, 1024), (4, 2, 4100),
                 (8, 32, 8, 8), (2, 1, 63)]


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    w = rng.uniform(0.5, 1.5, c).astype(dtype) * rng.choice(np.array([-1, 1], dtype), c)
    b = rng.standard_normal(c).astype(dtype)
    return x, w, b, rng.standard_normal(shape).astype(dtype)


def _close(got, exp, dtype, per_channel=1):
    """Elementwise tolerance; per-channel sums (dweight, dbias) over `per_channel` values get an
    absolute one that grows with the sqrt of that count (float32 rounding on the scalar ISA)."""
    for i, (g, e) in enumerate(zip(got, exp)):
        assert g.dtype == e.dtype and g.shape == e.shape
        tol = _tol(dtype)
        if i > 0 and per_channel > 256:
            tol["atol"] *= np.sqrt(per_channel / 256)
        np.testing.assert_allclose(g, e, **tol)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES + LAYOUT_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_backward_match_reference(isa, dtype, shape, act):
    x, w, b, dy = _data(shape, dtype)
    c = shape[1]
    for training in (True, False):
        rm, rv = np.linspace(-1, 1, c).astype(dtype), np.linspace(0.5, 2, c).astype(dtype)
        erm, erv = rm.copy(), rv.copy()
        got = relucore.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-3, activation=act, return_counts=True)
        exp = R.batch_norm(x, erm, erv, w, b, training, 0.2, 1e-3, activation=act, return_counts=True)
        _close(got[:3], exp[:3], dtype)
        np.testing.assert_array_equal(got[3], exp[3])
        _close((rm, rv), (erm, erv), dtype)
        mean, invstd = exp[1], exp[2]
        got = relucore.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation=act, training=training)
        exp = R.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation=act, training=training)
        _close(got, exp, dtype, x.size // c)
        if act in INVERTIBLE:
            y = R.batch_norm(x, erm.copy(), erv.copy(), w, b, training, activation=act)[0]
            got = relucore.batch_norm_backward(dy, None, w, mean, invstd, bias=b, activation=act, y=y,
                                               training=training)
            exp = R.batch_norm_backward(dy, None, w, mean, invstd, bias=b, activation=act, y=y,
                                        training=training)
            _close(got, exp, dtype, x.size // c)


def test_running_buffers_over_steps_and_cumulative_average(isa):
    rng = np.random.default_rng(3)
    rm, rv, erm, erv = np.zeros(2), np.ones(2), np.zeros(2), np.ones(2)
    n, en = np.array(0, np.int64), np.array(0, np.int64)
    for k in range(4):
        x = rng.standard_normal((6, 2, 9)) * (k + 1) + k
        relucore.batch_norm(x, rm, rv, training=True, momentum=None, num_batches_tracked=n)
        R.batch_norm(x, erm, erv, training=True, momentum=None, num_batches_tracked=en)
    assert n == en == 4
    np.testing.assert_allclose(rm, erm, rtol=1e-13)
    np.testing.assert_allclose(rv, erv, rtol=1e-13)


# per-channel runs, one call per channel of a small tensor, the column layout of small spatial sizes, (N, C)
@pytest.mark.parametrize("shape", [(8, 6, 40, 40), (4, 64, 256), (16, 9, 65), (64, 37, 4, 4), (2000, 45)])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_two_threads_bitwise(isa, dtype, act, shape):
    x, w, b, dy = _data(shape, dtype, seed=1)
    results = []
    previous = relucore.get_num_threads()
    try:
        for nt in (1, 2):
            relucore.set_num_threads(nt)
            fwd = relucore.batch_norm(x, None, None, w, b, True, activation=act, return_counts=True)
            bwd = relucore.batch_norm_backward(dy, x, w, fwd[1], fwd[2], bias=b, activation=act)
            results.append(fwd + bwd)
    finally:
        relucore.set_num_threads(previous)
    for a, e in zip(*results):
        np.testing.assert_array_equal(a, e)


# one call per channel (16x3x30x30: 172 KB), the column layout, (N, C)
@pytest.mark.parametrize("shape", [(16, 3, 30, 30), (64, 3, 5, 5), (512, 3)])
def test_large_offset_float32_accuracy(isa, shape):
    """x = 1e4 + N(0, 1) in float32 against float64 NumPy on the same values."""
    rng = np.random.default_rng(4)
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    y, mean, invstd = relucore.batch_norm(x, None, None, training=True)
    xd = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    m, v = xd.mean(axis=axes), xd.var(axis=axes)
    bc = (1, -1) + (1,) * (x.ndim - 2)
    exp = (xd - m.reshape(bc)) / np.sqrt(v.reshape(bc) + 1e-5)
    assert np.abs(y - exp).max() < 1e-5
    np.testing.assert_allclose(mean, m, rtol=1e-7)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(v + 1e-5), rtol=1e-5)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    got = relucore.batch_norm_backward(dy, x, None, mean, invstd)
    ref = R.batch_norm_backward(dy, x, None, mean, invstd)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_specials(isa, dtype, act):
    x, w, b, dy = _data((3, 3, 20), dtype)
    x[1, 1, 3] = np.nan
    x[0, 2, 5] = np.inf
    # training: a non-finite value spoils its own channel only
    got = relucore.batch_norm(x, None, None, w, b, True, activation=act)
    exp = R.batch_norm(x, None, None, w, b, True, activation=act)
    assert np.isnan(got[0][:, 1:]).all() == np.isnan(exp[0][:, 1:]).all()
    np.testing.assert_allclose(got[0][:, 0], exp[0][:, 0], **_tol(dtype))
    # eval: elementwise, so specials map elementwise as in the reference
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
    x[2, 0, 0], x[2, 0, 1] = -np.inf, -0.0
    got = relucore.batch_norm(x, rm, rv, w, b, activation=act)[0]
    exp = R.batch_norm(x, rm, rv, w, b, activation=act)[0]
    np.testing.assert_allclose(got, exp, **_tol(dtype))


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(8, 2, 5), (4, 2, 3, 7), (40, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_special_in_training_spoils_its_channels_statistics(isa, dtype, shape, special):
    """NaN or ±inf among a channel's values: its batch variance, saved invstd and running variance
    are NaN, as in the reference (and PyTorch), not a clamped 0; the other channel is untouched."""
    x = np.random.default_rng(8).standard_normal(shape).astype(dtype)
    x[(1, 0) + (2,) * (len(shape) - 2)] = special
    got_rm, got_rv = np.zeros(2, dtype), np.ones(2, dtype)
    exp_rm, exp_rv = got_rm.copy(), got_rv.copy()
    got = relucore.batch_norm(x, got_rm, got_rv, training=True)
    exp = R.batch_norm(x, exp_rm, exp_rv, training=True)
    for g, e in zip(got[1:] + (got_rm, got_rv), exp[1:] + (exp_rm, exp_rv)):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(e))
        np.testing.assert_array_equal(np.isinf(g), np.isinf(e))
        np.testing.assert_allclose(g[1], e[1], **_tol(dtype))
    assert np.isnan(got[2][0]) and np.isnan(got_rv[0])
    np.testing.assert_array_equal(np.isnan(got[0]), np.isnan(exp[0]))  # y: the spoilt channel NaN
    np.testing.assert_allclose(got[0][:, 1], exp[0][:, 1], **_tol(dtype))


def test_finite_values_whose_squares_overflow_have_an_infinite_variance(isa):
    """Sums of squares past the largest float64 (values ~1e200): the variance is inf, not NaN, so
    the outputs are 0 and the running variance inf, as the reference (and PyTorch) have it."""
    x = np.array([[1e200, 1.0], [-1e200, 2.0], [3e199, 3.0], [5.0, 4.0]])
    got_rm, got_rv, exp_rm, exp_rv = np.zeros(2), np.ones(2), np.zeros(2), np.ones(2)
    got = relucore.batch_norm(x, got_rm, got_rv, training=True)
    exp = R.batch_norm(x, exp_rm, exp_rv, training=True)
    for g, e in zip(got + (got_rm, got_rv), exp + (exp_rm, exp_rv)):
        np.testing.assert_allclose(g, e, rtol=1e-12)
    assert np.isinf(got_rv[0]) and not got[0][:, 0].any()


def test_one_value_per_channel_with_no_channels_is_an_error():
    e = np.zeros(0, np.float32)
    for shape in [(1, 0), (1, 0, 1), (1, 0, 1, 1)]:
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            relucore.batch_norm(np.zeros(shape, np.float32), e.copy(), e.copy(), training=True)


@pytest.mark.parametrize("shape", [(4, 3, 6, 10), (4, 3, 8, 128), (2, 3, 8, 128)])
def test_layouts_and_out(isa, shape):
    x, w, b, dy = _data(shape, np.float64)
    xs = np.asfortranarray(x)[:, :, :, ::2]
    ws = np.repeat(w, 2)[::2]
    rm, rv = np.zeros(6)[::2], np.ones(6)[::2]
    erm, erv = np.zeros(3), np.ones(3)
    got = relucore.batch_norm(xs, rm, rv, ws, b, True, activation="relu")
    exp = R.batch_norm(np.ascontiguousarray(xs), erm, erv, w, b, True, activation="relu")
    _close(got, exp, np.float64)
    _close((rm, rv), (erm, erv), np.float64)
    out = np.empty_like(x)[:, :, :, ::2]  # non-contiguous out: filled by a copy
    r = relucore.batch_norm(xs, None, None, ws, b, True, activation="relu", out=out)
    assert r[0] is out
    np.testing.assert_allclose(out, exp[0], rtol=1e-12)
    # in place, forward and backward
    xc = np.ascontiguousarray(xs)
    y, m, s = relucore.batch_norm(xc.copy(), None, None, w, b, True, activation="elu")
    x2 = xc.copy()
    assert relucore.batch_norm(x2, None, None, w, b, True, activation="elu", out=x2)[0] is x2
    np.testing.assert_array_equal(x2, y)
    d = np.ascontiguousarray(dy[:, :, :, ::2])
    exp = relucore.batch_norm_backward(d, xc, w, m, s, bias=b, activation="elu")
    d2 = d.copy()
    got = relucore.batch_norm_backward(d2, xc, w, m, s, bias=b, activation="elu", out=d2)
    assert got[0] is d2
    _close(got, exp, np.float64)
    y2 = y.copy()
    got = relucore.batch_norm_backward(d, None, w, m, s, bias=b, activation="elu", y=y2, out=y2)
    assert got[0] is y2
    _close(got, exp, np.float64)


@pytest.mark.parametrize("case", range(len(_bn_error_cases())))
def test_errors_as_reference(case):
    err, match, call = _bn_error_cases(relucore)[case]
    with pytest.raises(err, match=match):
        call()


@pytest.mark.parametrize("shape", [(0, 3, 4), (4, 0, 2), (0, 2), (3, 5, 0), (1, 1, 64, 8, 0), (2, 0)])
def test_empty(isa, shape):
    x = np.zeros(shape, np.float32)
    c = shape[1]
    rm, rv = np.full(c, 0.5, np.float32), np.full(c, 2.0, np.float32)
    for training in (False, True):  # channels with no values count no positive outputs
        got = relucore.batch_norm(x, rm, rv, training=training, activation="relu", return_counts=True)
        exp = R.batch_norm(x, rm.copy(), rv.copy(), training=training, activation="relu", return_counts=True)
        for g, e in zip(got, exp):
            np.testing.assert_array_equal(g, e)
    np.testing.assert_array_equal(rm, np.full(c, 0.5, np.float32))  # an empty batch changes nothing
    got = relucore.batch_norm_backward(x, x, None, exp[1], exp[2], activation="relu")
    exp = R.batch_norm_backward(x, x, None, exp[1], exp[2], activation="relu")
    for g, e in zip(got, exp):
        np.testing.assert_array_equal(g, e)


def test_running_buffer_sharing_memory_with_weight(isa):
    """The statistics use the weight as passed; the running buffer is written afterwards."""
    x, w, b, _ = _data((4, 3, 6), np.float64)
    shared = w.copy()
    rv, erm, erv = np.ones(3), w.copy(), np.ones(3)
    got = relucore.batch_norm(x, shared, rv, shared, b, True)
    exp = R.batch_norm(x, erm, erv, w, b, True)
    _close(got, exp, np.float64)
    _close((shared, rv), (erm, erv), np.float64)
