"""Bit masks and per-channel counts of the native forward passes, and the mask backward path."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import LAYOUTS, SIZES, assert_bitwise, layout, make_data


def _spec_mask(bits):
    return np.packbits(np.asarray(bits).ravel(order="C"), bitorder="little")


@pytest.mark.parametrize("n", SIZES + (1000,))
def test_mask_is_packbits_of_the_spec_bit(rc, n, dtype, rng):
    x = make_data(rng, n, dtype, special_frac=0.3)
    _, m = rc.relu(x, return_mask=True)
    assert m.dtype == np.uint8 and m.shape == ((n + 7) // 8,)
    assert_bitwise(m, _spec_mask(~(x <= 0)), "relu mask")
    _, m2 = rc.leaky_relu(x, 0.1, return_mask=True)
    assert_bitwise(m2, _spec_mask(x > 0), "leaky_relu mask")
    if n % 8:
        assert m[-1] >> (n % 8) == 0 and m2[-1] >> (n % 8) == 0, "unused high bits must be 0"


def test_mask_nan_and_signed_zero(rc, dtype):
    x = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 1.0, -1.0, np.nan], dtype)
    assert rc.relu(x, return_mask=True)[1].tolist() == [0b10101001]  # NaN passes in relu
    assert rc.leaky_relu(x, return_mask=True)[1].tolist() == [0b00101000]  # but not in leaky


@pytest.mark.parametrize("kind", LAYOUTS)
def test_mask_is_in_c_order_of_the_logical_array(rc, ref, kind, dtype, rng):
    x = layout(make_data(rng, (3, 5, 7), dtype), kind)
    _, m, c = rc.relu(x, return_mask=True, return_counts=True)
    assert_bitwise(m, _spec_mask(~(np.ascontiguousarray(x) <= 0)), f"mask {kind}")
    assert_bitwise(c, ref.relu(x, return_counts=True)[1], f"counts {kind}")
    _, m = rc.leaky_relu(x.T, return_mask=True)  # transposed logical array
    assert_bitwise(m, _spec_mask(np.ascontiguousarray(x.T) > 0), f"mask of .T {kind}")


@pytest.mark.parametrize("shape", [(5,), (7, 3), (2, 3, 4, 5), (4, 7, 9, 9), (3, 1, 1), (0, 4), ()])
def test_mask_round_trip(rc, ref, shape, dtype, rng):
    x = make_data(rng, shape, dtype, special_frac=0.3)
    dy = make_data(rng, shape, dtype, special_frac=0.3)
    _, m = rc.relu(x, return_mask=True)
    assert_bitwise(rc.relu_backward(dy, mask=m), rc.relu_backward(dy, x), "relu mask vs x")
    assert_bitwise(rc.relu_backward(dy, mask=m), ref.relu_backward(dy, x), "relu mask vs ref")
    for slope in (0.01, 0.3, -2.0):
        _, m = rc.leaky_relu(x, slope, return_mask=True)
        got = rc.leaky_relu_backward(dy, negative_slope=slope, mask=m)
        assert_bitwise(got, rc.leaky_relu_backward(dy, x, slope), "leaky mask vs x")
        assert_bitwise(got, ref.leaky_relu_backward(dy, x, slope), "leaky mask vs ref")


def test_mask_backward_on_strided_dy(rc, ref, dtype, rng):
    x = make_data(rng, (6, 11), dtype)
    dy = layout(make_data(rng, (6, 11), dtype), "negstep2")
    _, m = rc.relu(x, return_mask=True)
    assert_bitwise(rc.relu_backward(dy, mask=m), ref.relu_backward(dy, x))
    out = layout(np.zeros((6, 11), dtype), "T")
    assert rc.relu_backward(dy, mask=m, out=out) is out
    assert_bitwise(out, ref.relu_backward(dy, x))


def test_mask_backward_ignores_unused_high_bits(rc, ref, dtype):
    dy = np.array([5.0, 6.0, 7.0], dtype)  # as if from x = [1, -1, 2]
    m = np.array([0b11111101], np.uint8)  # only the low 3 bits belong to the array
    assert_bitwise(rc.relu_backward(dy, mask=m), np.array([5.0, 0.0, 7.0], dtype))
    assert_bitwise(rc.leaky_relu_backward(dy, negative_slope=0.5, mask=m), np.array([5.0, 3.0, 7.0], dtype))


@pytest.mark.parametrize("shape", [(), (9,), (4, 3), (2, 5, 3, 3), (3, 1, 1), (2, 0, 3), (0, 3)])
def test_counts(rc, ref, shape, dtype, rng):
    x = make_data(rng, shape, dtype, special_frac=0.3)
    nc = (shape[1],) if len(shape) >= 2 else ()
    for name, call in [
        ("relu", lambda m: m.relu(x, return_counts=True)),
        ("leaky", lambda m: m.leaky_relu(x, 0.1, return_counts=True)),
        ("leaky_neg", lambda m: m.leaky_relu(x, -0.5, return_counts=True)),
        ("elu", lambda m: m.elu(x, return_counts=True)),
    ]:
        y, c = call(rc)
        assert isinstance(c, np.ndarray), f"{name}: counts should be an ndarray, got {type(c).__name__}"
        assert c.dtype == np.int64 and c.shape == nc, (name, c.dtype, c.shape)
        assert_bitwise(c, call(ref)[1], name)
        axes = (0,) + tuple(range(2, y.ndim)) if y.ndim >= 2 else None
        assert_bitwise(c, np.asarray(np.count_nonzero(y > 0, axis=axes), dtype=np.int64), name + " vs y>0")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(3001, 37), (257, 513), (40, 1), (1, 700), (999, 5, 2), (401, 9, 31), (77, 3, 32)])
def test_counts_on_short_channel_runs(rc, ref, shape, threads, dtype, rng):
    # runs shorter than a kernel call are counted after it, by rows: pieces start and end mid-row
    x = make_data(rng, shape, dtype, special_frac=0.3)
    previous = rc.get_num_threads()
    rc.set_num_threads(threads)
    try:
        for name, call in [("relu", lambda m: m.relu(x, return_counts=True)),
                           ("leaky", lambda m: m.leaky_relu(x, -0.5, return_counts=True))]:
            y, c = call(rc)
            assert_bitwise(c, call(ref)[1], name)
            axes = (0,) + tuple(range(2, y.ndim))
            assert_bitwise(c, np.count_nonzero(y > 0, axis=axes).astype(np.int64), name + " vs y>0")
    finally:
        rc.set_num_threads(previous)


def test_mask_and_counts_together_in_place(rc, ref, dtype, rng):
    x = make_data(rng, (4, 7, 9, 9), dtype)
    y, m, c = ref.relu(x, return_mask=True, return_counts=True)
    xc = x.copy()
    r = rc.relu(xc, out=xc, return_mask=True, return_counts=True)
    assert isinstance(r, tuple) and len(r) == 3 and r[0] is xc
    assert_bitwise(xc, y)
    assert_bitwise(r[1], m)  # taken from the input even though out overwrote it
    assert_bitwise(r[2], c)
    r = rc.relu(x, return_counts=True)
    assert isinstance(r, tuple) and len(r) == 2 and r[1].dtype == np.int64
    r = rc.relu(x, return_mask=True)
    assert isinstance(r, tuple) and len(r) == 2 and r[1].dtype == np.uint8


@pytest.mark.parametrize("g", [0.0, 0.5, 1.0])
def test_grad_at_zero(rc, ref, g, dtype, rng):
    x = make_data(rng, 200, dtype)
    x[::3] = 0.0
    x[1::7] = -0.0
    dy = make_data(rng, 200, dtype)
    got = rc.relu_backward(dy, x, grad_at_zero=g)
    assert_bitwise(got, ref.relu_backward(dy, x, grad_at_zero=g))
    z = x == 0
    if g == 0:
        assert (got[z] == 0).all() and not np.signbit(got[z]).any()  # +0 even for dy = ±inf/NaN/negative
    else:
        expect_z = dtype(g) * dy[z]
        assert_bitwise(got[z], expect_z)


def test_mask_with_grad_at_zero_is_rejected(rc, ref, dtype):
    x = np.array([0.0, 1.0], dtype)
    dy = np.ones(2, dtype)
    for m in (rc, ref):
        _, mask = m.relu(x, return_mask=True)
        with pytest.raises(ValueError, match="grad_at_zero"):
            m.relu_backward(dy, mask=mask, grad_at_zero=0.5)
        assert_bitwise(m.relu_backward(dy, mask=mask, grad_at_zero=0.0), np.array([0.0, 1.0], dtype))


def test_exactly_one_of_x_and_mask(rc, ref, dtype):
    x = np.array([0.0, 1.0], dtype)
    dy = np.ones(2, dtype)
    for m in (rc, ref):
        _, mask = m.relu(x, return_mask=True)
        for f in (m.relu_backward, m.leaky_relu_backward):
            with pytest.raises(ValueError, match="mask"):
                f(dy, x, mask=mask)
            with pytest.raises(ValueError, match="mask"):
                f(dy)


@pytest.mark.parametrize("module", ["rc", "ref"])
def test_bad_masks(rc, ref, module, dtype):
    m = rc if module == "rc" else ref
    dy = np.ones(9, dtype)
    good = np.zeros(2, np.uint8)
    for bad in (good.astype(np.int8), good.astype(np.int64), good.astype(bool), good.astype(dtype)):
        with pytest.raises(TypeError, match="mask"):
            m.relu_backward(dy, mask=bad)
        with pytest.raises(TypeError, match="mask"):
            m.leaky_relu_backward(dy, mask=bad)
    for bad in (np.zeros(1, np.uint8), np.zeros(3, np.uint8), np.zeros((1, 2), np.uint8), np.zeros((), np.uint8)):
        with pytest.raises(ValueError, match="mask"):
            m.relu_backward(dy, mask=bad)
        with pytest.raises(ValueError, match="mask"):
            m.leaky_relu_backward(dy, mask=bad)
    # a mask of the right byte count from a strided uint8 view is fine
    strided = np.zeros(4, np.uint8)[::2]
    assert_bitwise(m.relu_backward(dy, mask=strided), np.zeros(9, dtype))
