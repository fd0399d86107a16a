"""The cache-bypassing store path (used for outputs larger than the last-level cache), forced on
small arrays: every op, aligned and misaligned outputs, against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import OPS, compare, make_inputs


@pytest.fixture
def stream_always(rc):
    from relucore.runtime import _set_stream_threshold

    _set_stream_threshold(0)
    try:
        yield rc
    finally:
        _set_stream_threshold(-1)


@pytest.mark.parametrize("op", OPS, ids=repr)
@pytest.mark.parametrize("n", [1, 15, 17, 63, 64, 65, 200, 4099])
def test_stream_matches_reference(stream_always, ref, op, n, dtype, rng):
    inputs = make_inputs(op, rng, (n,), dtype)
    got = op.call(stream_always, *inputs)
    exp = op.call(ref, *inputs)
    compare(op, got, exp, inputs, what=f"stream n={n}")


@pytest.mark.parametrize("offset", [0, 1, 3, 7])
def test_stream_into_misaligned_out(stream_always, ref, dtype, offset, rng):
    n = 1000
    x = rng.standard_normal(n).astype(dtype)
    buf = np.full(n + 8, 7.0, dtype)
    out = buf[offset:offset + n]          # C-contiguous, not 64-byte aligned for offset > 0
    r = stream_always.relu(x, out=out)
    assert r is out
    np.testing.assert_array_equal(out, ref.relu(x))
    assert (buf[:offset] == 7.0).all() and (buf[offset + n:] == 7.0).all()  # nothing written outside
    dy = rng.standard_normal(n).astype(dtype)
    stream_always.leaky_relu_backward(dy, x, 0.1, out=out)
    np.testing.assert_array_equal(out, ref.leaky_relu_backward(dy, x, 0.1))
