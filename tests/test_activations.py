"""Native kernels (every usable ISA, both dtypes) against the NumPy reference.

Bitwise for relu, leaky_relu, prelu (dx), masks and counts; at most 4 ULP for elu, sigmoid, tanh
and their backward (plus the rounding slack of ``1 - y*y`` / ``y*(1-y)``); prelu's dweight within
float rounding of the sum.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import (
    LARGE,
    LAYOUTS,
    OPS,
    OPS_BY_NAME,
    SHAPES,
    SIZES,
    assert_bitwise,
    compare,
    layout,
    make_data,
    make_inputs,
    specials,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

OP_IDS = [op.name for op in OPS]


def test_every_listed_activation_is_tested():
    """Each activation of the native list (cpp/include/relucore/activations.inc) and its backward
    is a public function with a reference twin, and both are in the OPS table these tests run."""
    import relucore

    tested = {op.name for op in OPS}
    for name in relucore.activations._ACT:
        for f in (name, name + "_backward"):
            assert f in relucore.__all__ and f in relucore.reference.__all__, f
            assert f in tested, f"{f} has no entry in tests/_helpers.py OPS"


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_sizes(rc, ref, op, n, dtype, rng):
    inputs = make_inputs(op, rng, n, dtype)
    expect = op.call(ref, *inputs)
    saved = [a.copy() for a in inputs]
    got = op.call(rc, *inputs)
    compare(op, got, expect, inputs, f"n={n}")
    for a, b in zip(inputs, saved):  # inputs are never written
        assert_bitwise(a, b, "input modified")


@pytest.mark.parametrize(
    "name", ["relu_mask_counts", "leaky_relu_backward", "elu", "sigmoid", "prelu_backward"]
)
def test_large(rc, ref, name, dtype, rng):
    op = OPS_BY_NAME[name]
    shape = (LARGE,) if name != "prelu_backward" else (1, LARGE)
    inputs = make_inputs(op, rng, shape, dtype, special_frac=0.01)
    compare(op, op.call(rc, *inputs), op.call(ref, *inputs), inputs, f"n={LARGE}")


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_shapes_and_layouts(rc, ref, op, kind, dtype, rng):
    """Every shape in SHAPES; the first input in layout ``kind``, the others in other layouts."""
    for shape in SHAPES:
        inputs = make_inputs(op, rng, shape, dtype)
        views = []
        for i, a in enumerate(inputs):
            if op.inputs[i] == "weight":
                views.append(a)
            else:
                views.append(layout(a, LAYOUTS[(LAYOUTS.index(kind) + 2 * i) % len(LAYOUTS)]))
        compare(op, op.call(rc, *views), op.call(ref, *inputs), inputs, f"shape={shape} {kind}")


@pytest.mark.parametrize("op", [op for op in OPS if "weight" in op.inputs], ids=str)
@pytest.mark.parametrize("shape", [(4, 7, 9, 9), (3, 5), (2, 3, 4), (6, 1, 2, 2)])
def test_prelu_shared_weight(rc, ref, op, shape, dtype, rng):
    inputs = make_inputs(op, rng, shape, dtype, weight_size=1)
    compare(op, op.call(rc, *inputs), op.call(ref, *inputs), inputs, "one shared slope")


def test_broadcast_zero_stride_input(rc, ref, dtype):
    x = np.broadcast_to(np.array([-1.5, 0.0, 2.0, -0.0], dtype), (5, 4))
    assert x.strides[0] == 0
    for name in ("relu_mask_counts", "leaky_relu", "elu", "sigmoid", "tanh", "relu6_mask_counts"):
        op = OPS_BY_NAME[name]
        compare(op, op.call(rc, x), op.call(ref, x), [x], "zero stride")


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_special_pairs(rc, ref, op, dtype):
    """Every special value against every other (NaN, ±inf, ±0, tiny, huge, ...), zero signs included."""
    sp = specials(dtype)
    k = sp.size
    grid = {"x": np.tile(sp, k), "dy": np.repeat(sp, k)}
    grid["ys"] = ref.sigmoid(grid["x"])
    grid["yt"] = ref.tanh(grid["x"])
    inputs = []
    for name in op.inputs:
        inputs.append(np.array([-0.25], dtype) if name == "weight" else grid[name])
    compare(op, op.call(rc, *inputs), op.call(ref, *inputs), inputs, "specials", zero_sign=True)


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_zero_d(rc, ref, op, dtype, rng):
    for _ in range(4):
        inputs = make_inputs(op, rng, (), dtype, special_frac=0.5)
        got = op.call(rc, *inputs)
        compare(op, got, op.call(ref, *inputs), inputs, "0-d")
        first = got[0] if isinstance(got, tuple) else got
        assert isinstance(first, np.ndarray) and first.shape == ()


# --------------------------------------------------------------------------- out=

OUT_KINDS = ("fresh", "input0", "input1", "strided", "overlap", "overlap_rev")
SINGLE_OUT = [op for op in OPS if op.name != "prelu_backward"]


def _out_cases():
    for op in SINGLE_OUT:
        for kind in OUT_KINDS:
            arrays = [name for name in op.inputs if name != "weight"]
            if kind == "input1" and len(arrays) < 2:
                continue
            yield pytest.param(op, kind, id=f"{op.name}-{kind}")


@pytest.mark.parametrize("op, kind", list(_out_cases()))
def test_out(rc, ref, op, kind, dtype, rng):
    n = 67
    if kind.startswith("overlap"):
        # out and the first input are shifted views of one buffer: (buf[1:], buf[:-1]) or reversed
        buf = make_inputs(op, rng, n + 1, dtype)
        a, b = (slice(1, None), slice(None, -1))[:: 1 if kind == "overlap" else -1]
        arrays = [v[a] if op.inputs[i] != "weight" else v for i, v in enumerate(buf)]
        out = buf[0][b]
    else:
        arrays = [a.copy() for a in make_inputs(op, rng, (n,), dtype)]
        if kind == "fresh":
            out = np.empty(n, dtype)
        elif kind == "strided":
            backing = np.full(2 * n, 7.0, dtype)
            out = backing[::-2]
        else:
            out = arrays[0 if kind == "input0" else 1]
    inputs = [a.copy() for a in arrays]  # the values before the call
    expect = op.call(ref, *inputs)
    got = op.call(rc, *arrays, out=out)
    first = got[0] if isinstance(got, tuple) else got
    assert first is out, "must return out itself"
    compare(op, got, expect, inputs, f"out={kind}")
    if kind == "strided":
        assert (backing[-2::-2] == 7.0).all(), "wrote outside the out view"


@pytest.mark.parametrize("shift", [1, -1, 8, -8, 1001, -1001])
def test_out_overlapping_large(rc, ref, shift, dtype, rng):
    """Partially overlapping in/out over a size that the kernels split across threads."""
    n = 400_003
    buf = make_data(rng, n + abs(shift), dtype)
    x, out = (buf[shift:], buf[:-shift]) if shift > 0 else (buf[:shift], buf[-shift:])
    expect = ref.relu(x, return_mask=True, return_counts=True)
    got = rc.relu(x, out=out, return_mask=True, return_counts=True)
    assert got[0] is out
    for g, e in zip(got, expect):
        assert_bitwise(g, e, f"relu overlap shift={shift}")
    dy = make_data(rng, n, dtype)
    buf = make_data(rng, n + abs(shift), dtype)
    x, out = (buf[shift:], buf[:-shift]) if shift > 0 else (buf[:shift], buf[-shift:])
    expect = ref.leaky_relu_backward(dy, x, 0.2)
    assert rc.leaky_relu_backward(dy, x, 0.2, out=out) is out
    assert_bitwise(out, expect, f"leaky_relu_backward overlap shift={shift}")


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (6, 7)])
def test_out_noncontiguous_layouts(rc, ref, shape, dtype, rng):
    x = layout(np.ascontiguousarray(rng.standard_normal(shape).astype(dtype)), "F")
    out = layout(np.zeros(shape, dtype), "T")
    assert rc.relu(x, out=out) is out
    assert_bitwise(out, ref.relu(x))
    x2 = layout(x, "negstep2")
    assert rc.elu(x2, out=x2) is x2  # in place on a negative-stride view
    np.testing.assert_allclose(x2, ref.elu(x), rtol=1e-6)


# --------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_exact_ops(rc, ref, data):
    dt = data.draw(st.sampled_from([np.float32, np.float64]))
    x = data.draw(hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, max_side=7),
                             elements=st.floats(width=32)))
    dy = data.draw(hnp.arrays(dt, x.shape, elements=st.floats(width=32)))
    step = data.draw(st.sampled_from([1, -1]))
    xv = x[(slice(None, None, step),) * x.ndim]
    dyv = dy[(slice(None, None, step),) * dy.ndim]
    slope = data.draw(st.sampled_from([0.01, 0.2, -0.5, 0.0, 2.0]))
    for name, call in [
        ("relu", lambda m: m.relu(xv, return_mask=True, return_counts=True)),
        ("relu_bw", lambda m: m.relu_backward(dyv, xv, grad_at_zero=0.5)),
        ("leaky", lambda m: m.leaky_relu(xv, slope, return_mask=True, return_counts=True)),
        ("leaky_bw", lambda m: m.leaky_relu_backward(dyv, xv, slope)),
    ]:
        g, e = call(rc), call(ref)
        g, e = (g if isinstance(g, tuple) else (g,)), (e if isinstance(e, tuple) else (e,))
        for a, b in zip(g, e, strict=True):
            assert_bitwise(a, b, name)


def _unaligned(a):
    """A copy of ``a`` whose data pointer is not a multiple of its itemsize."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    u = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
    u[...] = a
    assert not u.flags.aligned
    return u


@pytest.mark.parametrize("op", SINGLE_OUT, ids=str)
def test_unaligned_inputs_and_out(rc, ref, op, dtype, rng):
    inputs = make_inputs(op, rng, (3, 33), dtype)
    views = [_unaligned(a) for a in inputs]
    expect = op.call(ref, *inputs)
    compare(op, op.call(rc, *views), expect, inputs, "unaligned")
    out = _unaligned(np.zeros((3, 33), dtype))
    got = op.call(rc, *views, out=out)
    assert (got[0] if isinstance(got, tuple) else got) is out
    compare(op, got, expect, inputs, "unaligned out")
