"""relucore.ufuncs (real NumPy ufuncs) against relucore.reference, on every usable ISA.

Each ufunc is called positionally with the arrays and parameters of its reference twin
(``ufuncs.leaky_relu(x, s)`` vs ``reference.leaky_relu(x, s)``) and compared with the twin's
tolerance (tests/_helpers.py): bitwise for relu, leaky_relu and their backward, a few ULP for elu,
sigmoid and theirs. Since a ufunc loop runs the very kernels of the functional API, it must also
equal ``relucore.<name>`` bitwise for every layout (contiguous runs, strided chunks, parameter runs).
NumPy owns broadcasting, casting, ``out=`` and ``where=``: those tests check that relucore's loops
fit NumPy's rules (and that NaN, ±inf, -0.0 and the gradient at 0 come out as documented).
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from _helpers import LAYOUTS, SIZES, Op, assert_bitwise, compare, layout, make_data

import relucore
from relucore import ufuncs

# name, array inputs (as in _helpers.make_inputs), parameter values tried, tolerance of compare()
UOPS = [
    Op("relu", ("x",), None),
    Op("relu_backward", ("dy", "x"), None),
    Op("leaky_relu", ("x",), None),
    Op("leaky_relu_backward", ("dy", "x"), None),
    Op("elu", ("x",), None, "ulp"),
    Op("elu_backward", ("dy", "x"), None, "elu_bw"),
    Op("sigmoid", ("x",), None, "ulp"),
    Op("sigmoid_backward", ("dy", "ys"), None, "sig_bw"),
    Op("tanh", ("x",), None, "ulp"),
    Op("tanh_backward", ("dy", "yt"), None, "tanh_bw"),
    Op("relu6", ("x",), None),
    Op("relu6_backward", ("dy", "x"), None),
]
PARAMS = {"leaky_relu": (0.2, -0.5, 0.0), "leaky_relu_backward": (0.2, -0.5), "elu": (1.0, 0.5),
          "elu_backward": (1.0,)}
IDS = [op.name for op in UOPS]


def params_of(op):
    return PARAMS.get(op.name, (None,))


def call(module, op, arrays, param):
    """``module.<op>(*arrays[, param])``: the same positional call for ufuncs and the twins.

    With only 0-d arrays, the ufunc gets the parameter as a scalar of their dtype: NumPy 1.x
    would promote float32 scalars with a Python float to float64 (test_zero_d_promotion)."""
    f = getattr(module, op.name)
    if param is not None and module is ufuncs and all(np.ndim(a) == 0 for a in arrays):
        param = np.asarray(arrays[0]).dtype.type(param)
    return f(*arrays) if param is None else f(*arrays, param)


def inputs_for(op, rng, shape, dtype, special_frac=0.2):
    """Arrays for ``op``: data with specials; y = sigmoid(x) / tanh(x) for the ``_backward`` from y."""
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    out = []
    for name in op.inputs:
        a = make_data(rng, shape, dtype, special_frac)
        if name == "ys":
            a = relucore.reference.sigmoid(a)
        elif name == "yt":
            a = relucore.reference.tanh(a)
        out.append(a)
    return out


def tol_op(op, param):
    # compare() reads alpha from the name for elu_bw
    return Op(op.name + ("_a0.5" if op.tol == "elu_bw" and param == 0.5 else ""), op.inputs, None, op.tol)


def check(op, got, arrays, param, what):
    exp = call(relucore.reference, op, [np.asarray(a) for a in arrays], param)
    compare(tol_op(op, param), got, exp, [np.asarray(a) for a in arrays], what, zero_sign=op.tol == "exact")


# --------------------------------------------------------------------------- what they are


def test_real_ufuncs():
    nin = {"relu": 1, "sigmoid": 1, "relu_backward": 2, "leaky_relu": 2, "elu": 2, "sigmoid_backward": 2,
           "tanh": 1, "tanh_backward": 2, "relu6": 1, "relu6_backward": 2, "leaky_relu_backward": 3, "elu_backward": 3}
    assert sorted(ufuncs.__all__) == sorted(nin)
    for name, n in nin.items():
        f = getattr(ufuncs, name)
        assert isinstance(f, np.ufunc) and f.__name__ == name
        assert (f.nin, f.nout) == (n, 1)
        assert f.types == ["f" * n + "->f", "d" * n + "->d"]
        assert f.__doc__ and "relucore" in f.__doc__


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(protocol):
    for name in ufuncs.__all__:
        f = getattr(ufuncs, name)
        assert pickle.loads(pickle.dumps(f, protocol=protocol)) is f


def test_pickle_in_a_fresh_interpreter():
    """Unpickling imports relucore.ufuncs by itself (what a dask worker does)."""
    blob = pickle.dumps([ufuncs.relu, ufuncs.elu_backward])
    code = (
        "import pickle, sys, numpy as np\n"
        "fs = pickle.loads(sys.stdin.buffer.read())\n"
        "from relucore import ufuncs\n"
        "assert fs == [ufuncs.relu, ufuncs.elu_backward] and fs[0] is ufuncs.relu\n"
        "print(fs[0](np.array([-1.0, 2.0])).tolist())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == "[0.0, 2.0]"


# --------------------------------------------------------------------------- values: tile edges, specials


@pytest.mark.parametrize("op", UOPS, ids=IDS)
def test_sizes_and_specials(isa, op, dtype, rng):
    """Every tile edge (tile-1, tile, tile+1, 2*tile+1 for tiles 8..64), specials mixed in."""
    for n in SIZES + (1000,):
        arrays = inputs_for(op, rng, n, dtype)
        saved = [a.copy() for a in arrays]
        for p in params_of(op):
            check(op, call(ufuncs, op, arrays, p), arrays, p, f"{isa} n={n} param={p}")
        for a, b in zip(arrays, saved):
            assert_bitwise(a, b, "input modified")


@pytest.mark.parametrize("op", UOPS, ids=IDS)
def test_large_threaded(isa, op, rng):
    """Above the threading grain: the contiguous loop goes through relucore's threaded ops."""
    arrays = inputs_for(op, rng, 300_001, np.float32, special_frac=0.01)
    p = params_of(op)[0]
    got = call(ufuncs, op, arrays, p)
    check(op, got, arrays, p, f"{isa} n=300001")
    assert_bitwise(got, call(relucore, op, arrays, p), "ufunc vs functional")


def test_special_values_documented(isa, dtype):
    """The table in relucore.reference's docstring, spelt out."""
    x = np.array([-0.0, 0.0, np.nan, np.inf, -np.inf, -2.0, 3.0], dtype)
    inf = np.full_like(x, np.inf)
    with np.errstate(all="raise"):  # and no floating-point warning on the way
        y = ufuncs.relu(x)
        assert_bitwise(y, np.array([-0.0, 0.0, np.nan, np.inf, 0.0, 0.0, 3.0], dtype), "relu")
        dx = ufuncs.relu_backward(inf, x)  # x <= 0: exactly +0 even for dy = inf
        assert_bitwise(dx, np.array([0.0, 0.0, np.inf, np.inf, 0.0, 0.0, np.inf], dtype), "relu_backward")
        y = ufuncs.leaky_relu(x, 0.5)
        assert_bitwise(y, np.array([-0.0, 0.0, np.nan, np.inf, -np.inf, -1.0, 3.0], dtype), "leaky_relu")
        dx = ufuncs.leaky_relu_backward(np.ones_like(x), x, 0.5)
        assert_bitwise(dx, np.array([0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0], dtype), "leaky_relu_backward")
        y = ufuncs.elu(x, 2.0)
        assert_bitwise(y[:5], np.array([-0.0, 0.0, np.nan, np.inf, -2.0], dtype), "elu")
        dx = ufuncs.elu_backward(np.ones_like(x), x, 2.0)
        assert_bitwise(dx[:5], np.array([2.0, 2.0, 1.0, 1.0, 0.0], dtype), "elu_backward")
        y = ufuncs.sigmoid(np.array([-np.inf, np.inf, -0.0, np.nan, -1000.0, 1000.0], dtype))
        assert_bitwise(y, np.array([0.0, 1.0, 0.5, np.nan, 0.0, 1.0], dtype), "sigmoid")
        ufuncs.sigmoid_backward(x, x)
        ufuncs.tanh_backward(x, x)


@pytest.mark.parametrize("op", UOPS, ids=IDS)
def test_no_floating_point_warnings(isa, op, dtype, rng):
    """NaN, inf, huge and tiny operands: no FloatingPointError under errstate(all="raise"), on the
    contiguous (threaded) and the strided path alike."""
    arrays = inputs_for(op, rng, 70_000, dtype, special_frac=0.5)
    with np.errstate(all="raise"):
        for p in params_of(op):
            call(ufuncs, op, arrays, p)
            call(ufuncs, op, [a[::-3] for a in arrays], p)


# --------------------------------------------------------------------------- layouts and broadcasting


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("op", UOPS, ids=IDS)
def test_layouts(isa, op, kind, dtype, rng):
    """Strided, transposed and negative-stride views (each input in another layout)."""
    for shape in ((), (5,), (2, 3, 4, 5), (3, 1, 1), (4, 7, 9, 9), (0, 3), (3, 700)):
        arrays = inputs_for(op, rng, shape, dtype)
        views = [layout(a, LAYOUTS[(LAYOUTS.index(kind) + 2 * i) % len(LAYOUTS)]) for i, a in enumerate(arrays)]
        p = params_of(op)[0]
        got = call(ufuncs, op, views, p)
        got = np.asarray(got)  # 0-d: NumPy returns a scalar
        check(op, got, arrays, p, f"{isa} {kind} shape={shape}")
        assert_bitwise(got, np.asarray(call(relucore, op, arrays, p)), "ufunc vs functional")


@pytest.mark.parametrize("op", UOPS, ids=IDS)
def test_broadcasting(isa, op, dtype, rng):
    """Arrays of broadcastable shapes, including stride-0 views, and 0-d operands."""
    shapes = [(4, 1, 5), (1, 3, 5), (3, 1)][: len(op.inputs)]
    arrays = [inputs_for(Op(op.name, (name,), None), rng, s, dtype)[0] for name, s in zip(op.inputs, shapes)]
    p = params_of(op)[0]
    got = call(ufuncs, op, arrays, p)
    full = np.broadcast_shapes(*shapes)
    assert got.shape == full
    check(op, got, [np.broadcast_to(a, full) for a in arrays], p, f"{isa} broadcast")
    stride0 = [np.broadcast_to(a, full) for a in arrays]  # explicit stride-0 views
    assert_bitwise(call(ufuncs, op, stride0, p), got, "stride-0 views")


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "leaky_relu_backward", "elu_backward"])
def test_parameter_arrays(isa, name, dtype, rng):
    """A parameter that varies along the inner loop (runs of equal values, single values, strided)."""
    op = next(o for o in UOPS if o.name == name)
    shape = (3, 4, 37)
    arrays = inputs_for(op, rng, shape, dtype)
    values = np.array([0.5, 1.0, 2.0] if name.startswith("elu") else [0.1, -0.5, 0.0, 0.2], dtype)
    for p in (rng.choice(values, size=shape),                       # changes almost every element
              np.repeat(rng.choice(values, size=(3, 4, 1)), 37, 2),  # runs along the last axis
              rng.choice(values, size=(37,)),                        # broadcast along the first axes
              layout(rng.choice(values, size=shape), "negstep2")):   # strided
        got = call(ufuncs, op, arrays, p)
        pb = np.broadcast_to(p, shape)
        exp, ref = np.empty(shape, dtype), np.empty(shape, dtype)
        for v in values:  # the functions take scalars: one call per value
            sel = pb == v
            exp[sel] = call(relucore, op, arrays, float(v))[sel]
            ref[sel] = call(relucore.reference, op, arrays, float(v))[sel]
        assert_bitwise(got, exp, f"{isa} parameter array vs functional")
        if op.tol == "exact":
            assert_bitwise(got, ref, f"{isa} parameter array vs reference")


def test_prelu_is_leaky_relu_with_a_broadcast_weight(isa, dtype, rng):
    x = make_data(rng, (4, 7, 9, 9), dtype)
    w = rng.standard_normal(7).astype(dtype)
    got = ufuncs.leaky_relu(x, w[:, None, None])
    assert_bitwise(got, relucore.prelu(x, w), "prelu")
    assert_bitwise(got, relucore.reference.prelu(x, w), "reference prelu")
    dy = make_data(rng, x.shape, dtype)
    assert_bitwise(ufuncs.leaky_relu_backward(dy, x, w[:, None, None]), relucore.prelu_backward(dy, x, w)[0],
                   "prelu_backward dx")


# --------------------------------------------------------------------------- out=, where=


@pytest.mark.parametrize("op", UOPS, ids=IDS)
def test_out_aliasing_inputs(isa, op, dtype, rng):
    p = params_of(op)[0]
    for i in range(len(op.inputs)):  # in place into each input in turn, contiguous and strided
        for kind in ("C", "negstep2"):
            arrays = inputs_for(op, rng, (5, 67), dtype)
            exp = call(relucore.reference, op, arrays, p)
            views = [layout(a, kind) for a in arrays]
            got = getattr(ufuncs, op.name)(*views, *([] if p is None else [p]), out=views[i])
            assert got is views[i]
            compare(tol_op(op, p), np.ascontiguousarray(got), exp, arrays, f"{isa} out=input {i} {kind}")


def test_out_partially_overlapping(isa, dtype, rng):
    """NumPy sees the overlap and buffers: the result is as if computed into a fresh array."""
    a = make_data(rng, 1001, dtype)
    exp = relucore.reference.relu(a[1:].copy())
    ufuncs.relu(a[1:], out=a[:-1])
    assert_bitwise(a[:-1], exp, "shifted in place")
    b = make_data(rng, 1000, dtype)
    exp = relucore.reference.relu_backward(b[::-1].copy(), b.copy())
    ufuncs.relu_backward(b[::-1], b, out=b)
    assert_bitwise(b, exp, "reversed in place")


@pytest.mark.parametrize("op", UOPS, ids=IDS)
def test_where_leaves_masked_elements(isa, op, dtype, rng):
    p = params_of(op)[0]
    arrays = inputs_for(op, rng, (6, 45), dtype)
    cond = rng.random((6, 45)) < 0.5
    cond[0] = True  # a long run
    out = np.full((6, 45), 7.0, dtype)
    got = getattr(ufuncs, op.name)(*arrays, *([] if p is None else [p]), out=out, where=cond)
    assert got is out
    assert_bitwise(out[~cond], np.full((~cond).sum(), 7.0, dtype), "masked elements")
    exp = call(relucore.reference, op, arrays, p)
    compare(tol_op(op, p), out[cond], exp[cond], [a[cond] for a in arrays], f"{isa} where=")


def test_where_broadcast_row(isa, rng):
    x = make_data(rng, (4, 9), np.float32)
    out = np.zeros_like(x)
    ufuncs.relu(x, out=out, where=np.array([True, False] * 4 + [True]))
    assert_bitwise(out[:, 1::2], np.zeros((4, 4), np.float32), "masked columns")
    assert_bitwise(out[:, ::2], relucore.reference.relu(np.ascontiguousarray(x[:, ::2])), "computed columns")


@pytest.mark.parametrize("name", ["relu_backward", "leaky_relu", "elu", "sigmoid_backward", "tanh_backward"])
def test_reduce_and_accumulate_are_sequential(isa, name, dtype, rng):
    """NumPy's reduce/accumulate feed the running result back in (out[i] = f(out[i-1], in[i])): the
    loops must take that one element at a time, like NumPy's own."""
    f = getattr(ufuncs, name)
    a = (rng.standard_normal(300) * 0.9).astype(dtype)

    def one(acc, v):
        return f(np.array([acc], dtype), np.array([v], dtype))[0]

    for arr in (a, a[::-3]):
        acc, want = arr[0], [arr[0]]
        for v in arr[1:]:
            acc = one(acc, v)
            want.append(acc)
        want = np.array(want, dtype)
        assert_bitwise(f.accumulate(arr), want, f"{name}.accumulate")
        assert_bitwise(np.asarray(f.reduce(arr)), want[-1], f"{name}.reduce")
    m = a.reshape(20, 15)
    assert_bitwise(f.reduce(m, axis=0), np.array([f.reduce(m[:, j]) for j in range(15)], dtype), "reduce axis 0")


# --------------------------------------------------------------------------- dtypes and casting


@pytest.mark.parametrize("src,loop", [(np.bool_, np.float32), (np.int8, np.float32), (np.uint8, np.float32),
                                      (np.int16, np.float32), (np.float16, np.float32), (np.int32, np.float64),
                                      (np.int64, np.float64), (np.uint64, np.float64)])
def test_integer_and_half_inputs_cast_as_numpy_does(isa, src, loop, rng):
    x = (rng.standard_normal(100) * 50).astype(src)
    y = ufuncs.relu(x)
    assert y.dtype == loop
    assert_bitwise(y, relucore.reference.relu(x.astype(loop)), f"relu of {np.dtype(src).name}")
    y = ufuncs.leaky_relu_backward(x, x, np.float32(0.25))  # a float32 scalar: the same loop
    assert y.dtype == loop
    exp = relucore.reference.leaky_relu_backward(x.astype(loop), x.astype(loop), 0.25)
    assert_bitwise(y, exp, f"leaky_relu_backward of {np.dtype(src).name}")


def test_python_scalars_and_lists():
    assert ufuncs.relu(-2) == 0.0 and isinstance(ufuncs.relu(-2.0), np.float64)
    assert ufuncs.relu([-1.0, 3.0]).tolist() == [0.0, 3.0]
    x = np.array([-1.0, 2.0], np.float32)
    assert ufuncs.leaky_relu(x, 0.5).dtype == np.float32  # a Python float does not widen float32
    assert ufuncs.leaky_relu(x, 0.5).tolist() == [-0.5, 2.0]


def test_zero_d_promotion():
    """Scalars and 0-d arrays promote as NumPy's own ufuncs do (NEP 50 on NumPy 2: float32 stays
    float32 beside a Python float; value-based casting on NumPy 1.x: float64)."""
    x = np.float32(-2.0)
    for p in (0.5, np.float32(0.5), np.float64(0.5)):
        y = ufuncs.leaky_relu(x, p)
        assert y.dtype == np.add(x, p).dtype and y == -1.0
    assert ufuncs.leaky_relu(np.array([x]), 0.5).dtype == np.float32  # an array: float32 on every NumPy


def test_dtype_and_casting_arguments(dtype, rng):
    x = make_data(rng, 50, dtype, special_frac=0)
    other = np.float64 if dtype == np.float32 else np.float32
    y = ufuncs.relu(x, dtype=other)  # same_kind: either direction
    assert y.dtype == other
    assert_bitwise(y, relucore.reference.relu(x.astype(other)), "dtype=")
    y = ufuncs.elu(x, 1.0, signature=(other, other, other))
    assert y.dtype == other
    out = np.empty(50, other)
    assert ufuncs.relu(x, out=out) is out
    assert_bitwise(out, relucore.reference.relu(x).astype(other), "out of the other float dtype")
    with pytest.raises(TypeError):
        ufuncs.relu(x, dtype=np.float16)  # no float16 loop
    with pytest.raises(TypeError):
        ufuncs.relu(x.astype(np.int16), casting="no")
    with pytest.raises(TypeError):
        ufuncs.relu(x, out=np.empty(50, np.int64))  # float -> int is not same_kind
    if dtype == np.float64:
        with pytest.raises(TypeError):
            ufuncs.relu(x, out=np.empty(50, np.float32), casting="safe")


@pytest.mark.parametrize("name", ufuncs.__all__)
def test_complex_is_a_type_error(name):
    f = getattr(ufuncs, name)
    args = [np.array([1 + 1j, -1j])] + [np.ones(2)] * (f.nin - 1)
    with pytest.raises(TypeError):
        f(*args)
    with pytest.raises(TypeError):
        f(*[np.ones(2)] * (f.nin - 1), np.array([1j, 2j]))


def test_results_do_not_depend_on_threads(rng):
    x = make_data(rng, 1 << 20, np.float32, special_frac=0.01)
    before = relucore.get_num_threads()
    try:
        relucore.set_num_threads(1)
        one = ufuncs.elu(x, 0.5), ufuncs.relu_backward(x, x[::-1])
        relucore.set_num_threads(2)
        two = ufuncs.elu(x, 0.5), ufuncs.relu_backward(x, x[::-1])
    finally:
        relucore.set_num_threads(before)
    for a, b in zip(one, two):
        assert_bitwise(a, b, "1 vs 2 threads")
