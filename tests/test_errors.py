"""Bad arguments: the native functions and the reference raise the same documented errors."""

from __future__ import annotations

import numpy as np
import pytest
import relucore.reference as reference
from _helpers import assert_bitwise

# name -> (call(module, *arrays), the names of its array arguments in order)
FUNCS = {
    "relu": (lambda m, x: m.relu(x), ("x",)),
    "relu_backward": (lambda m, dy, x: m.relu_backward(dy, x), ("dy", "x")),
    "leaky_relu": (lambda m, x: m.leaky_relu(x), ("x",)),
    "leaky_relu_backward": (lambda m, dy, x: m.leaky_relu_backward(dy, x), ("dy", "x")),
    "elu": (lambda m, x: m.elu(x), ("x",)),
    "elu_backward": (lambda m, dy, x: m.elu_backward(dy, x), ("dy", "x")),
    "prelu": (lambda m, x, weight: m.prelu(x, weight), ("x", "weight")),
    "prelu_backward": (lambda m, dy, x, weight: m.prelu_backward(dy, x, weight), ("dy", "x", "weight")),
    "sigmoid": (lambda m, x: m.sigmoid(x), ("x",)),
    "sigmoid_backward": (lambda m, dy, y: m.sigmoid_backward(dy, y), ("dy", "y")),
    "tanh": (lambda m, x: m.tanh(x), ("x",)),
    "tanh_backward": (lambda m, dy, y: m.tanh_backward(dy, y), ("dy", "y")),
}
OUT_FUNCS = {
    "relu": lambda m, x, out: m.relu(x, out=out),
    "relu_backward": lambda m, x, out: m.relu_backward(x, x, out=out),
    "relu_backward_mask": lambda m, x, out: m.relu_backward(x, mask=np.zeros((x.size + 7) // 8, np.uint8), out=out),
    "leaky_relu": lambda m, x, out: m.leaky_relu(x, out=out, return_mask=True),
    "leaky_relu_backward": lambda m, x, out: m.leaky_relu_backward(x, x, out=out),
    "elu": lambda m, x, out: m.elu(x, out=out),
    "elu_backward": lambda m, x, out: m.elu_backward(x, x, out=out),
    "prelu": lambda m, x, out: m.prelu(x, np.ones(x.shape[1], x.dtype), out=out),
    "sigmoid": lambda m, x, out: m.sigmoid(x, out=out),
    "sigmoid_backward": lambda m, x, out: m.sigmoid_backward(x, x, out=out),
    "tanh": lambda m, x, out: m.tanh(x, out=out),
    "tanh_backward": lambda m, x, out: m.tanh_backward(x, x, out=out),
}

BAD_DTYPES = [np.int32, np.int64, np.uint8, np.float16, np.complex64, np.complex128, np.bool_, object]
if hasattr(np, "longdouble") and np.dtype(np.longdouble) != np.dtype(np.float64):
    BAD_DTYPES.append(np.longdouble)


@pytest.fixture(params=["native", "ref"])
def m(request, rc):
    return rc if request.param == "native" else reference


def _args(names, dtype, shape=(2, 3)):
    return {n: (np.ones(shape[1], dtype) if n == "weight" else np.ones(shape, dtype)) for n in names}


def _raises(exc, match, f, *args):
    """Assert ``f`` raises ``exc`` matching ``match``; return the message."""
    with pytest.raises(exc, match=match) as info:
        f(*args)
    return str(info.value)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("bad", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_unsupported_dtype(m, name, bad):
    call, names = FUNCS[name]
    for which in names:
        args = _args(names, np.float32)
        args[which] = args[which].astype(bad)
        msg = _raises(TypeError, "float32 and float64", call, m, *args.values())
        assert which in msg, f"{name}: message should name {which!r}: {msg}"


@pytest.mark.parametrize("name", [n for n in FUNCS if len(FUNCS[n][1]) > 1])
def test_mixed_dtypes(m, name):
    call, names = FUNCS[name]
    for which in names[1:]:
        args = _args(names, np.float32)
        args[which] = args[which].astype(np.float64)
        msg = _raises(TypeError, which, call, m, *args.values())
        assert "float32" in msg and "float64" in msg


@pytest.mark.parametrize("name", [n for n in FUNCS if "backward" in n])
def test_shape_mismatch(m, name):
    call, names = FUNCS[name]
    for bad_shape in [(3, 2), (2, 3, 1), (6,), ()]:
        args = _args(names, np.float64)
        args[names[1]] = np.ones(bad_shape)
        msg = _raises(ValueError, names[1], call, m, *args.values())
        assert names[0] in msg, msg


def test_prelu_weight(m, dtype):
    x = np.ones((2, 3, 4), dtype)
    for w in (np.ones(2, dtype), np.ones(4, dtype), np.ones((1, 3), dtype), np.ones((), dtype), np.ones(0, dtype)):
        _raises(ValueError, "weight", m.prelu, x, w)
        _raises(ValueError, "weight", m.prelu_backward, x, x, w)
    other = np.float64 if dtype == np.float32 else np.float32
    _raises(TypeError, "weight", m.prelu, x, np.ones(3, other))
    _raises(TypeError, "weight", m.prelu_backward, x, x, np.ones(3, other))
    # below 2-D there is one channel
    _raises(ValueError, "weight", m.prelu, np.ones(5, dtype), np.ones(5, dtype))
    assert m.prelu(np.ones(5, dtype), np.ones(1, dtype)).shape == (5,)


@pytest.mark.parametrize("name", OUT_FUNCS)
def test_bad_out(m, name, dtype):
    call = OUT_FUNCS[name]
    x = np.ones((2, 3), dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    _raises(TypeError, "out", call, m, x, np.ones((2, 3), other))
    _raises(TypeError, "out", call, m, x, np.ones((2, 3), np.int32))
    _raises(ValueError, "out", call, m, x, np.ones((3, 2), dtype))
    _raises(ValueError, "out", call, m, x, np.ones(6, dtype))
    _raises(TypeError, "out", call, m, x, [[0.0] * 3] * 2)  # not an ndarray
    ro = np.zeros((2, 3), dtype)
    ro.flags.writeable = False
    _raises(ValueError, "read-only|writeable|writable", call, m, x, ro)
    assert (ro == 0).all()
    _raises(ValueError, "read-only|writeable|writable", call, m, x, np.broadcast_to(np.zeros(3, dtype), (2, 3)))


def test_read_only_inputs_are_fine(m, dtype):
    x = np.linspace(-2, 2, 12, dtype=dtype).reshape(3, 4)
    x.flags.writeable = False
    assert m.relu(x)[0, 0] == 0
    assert m.relu_backward(x, x)[0, 0] == 0
    assert m.prelu_backward(x, x, np.ones(4, dtype))[1].shape == (4,)


def test_bad_scalars(m):
    x = np.ones(3)
    for bad in ("0.1", b"1", None, [0.1], np.array([0.5]), 1j, object()):
        with pytest.raises(TypeError, match="negative_slope"):
            m.leaky_relu(x, bad)
        with pytest.raises(TypeError, match="alpha"):
            m.elu(x, bad)
        with pytest.raises(TypeError, match="grad_at_zero"):
            m.relu_backward(x, x, grad_at_zero=bad)


def test_scalar_parameters_convert_alike(rc):
    """Anything float() takes (bar text) is a valid slope/alpha, natively and in the reference."""
    from decimal import Decimal
    from fractions import Fraction

    x = np.array([-2.0, 0.0, 3.0], np.float32)
    for v in (0.5, 1, True, np.float32(0.5), np.float64(0.5), np.int64(2), np.array(0.5), Fraction(1, 2),
              Decimal("0.5")):
        for call in (lambda m, v=v: m.leaky_relu(x, v), lambda m, v=v: m.elu(x, v),
                     lambda m, v=v: m.relu_backward(x, x, grad_at_zero=v), lambda m, v=v: m.elu_backward(x, x, v)):
            assert_bitwise(call(rc), call(reference), repr(v))


def test_native_never_casts_python_lists(rc):
    with pytest.raises(TypeError, match="float32 and float64"):
        rc.relu([1, -2, 3])
    np.testing.assert_array_equal(rc.relu([1.0, -2.0]), [1.0, 0.0])


def test_error_types_match_reference(rc):
    """The same bad call fails with the same exception type in both implementations."""
    x32, x64 = np.ones(4, np.float32), np.ones(4, np.float64)
    cases = [
        lambda m: m.relu(x32.astype(np.float16)),
        lambda m: m.relu_backward(x32, x64),
        lambda m: m.relu_backward(x32, np.ones(5, np.float32)),
        lambda m: m.relu_backward(x32),
        lambda m: m.relu_backward(x32, x32, mask=np.zeros(1, np.uint8)),
        lambda m: m.relu_backward(x32, mask=np.zeros(1, np.uint8), grad_at_zero=1.0),
        lambda m: m.leaky_relu_backward(x32, mask=np.zeros(2, np.uint8)),
        lambda m: m.elu_backward(x32, x32.reshape(2, 2)),
        lambda m: m.prelu(x32, np.ones(2, np.float32)),
        lambda m: m.sigmoid(x64, out=np.empty(4, np.float32)),
    ]
    for case in cases:
        kinds = []
        for m in (rc, reference):
            try:
                case(m)
            except Exception as e:  # noqa: BLE001
                kinds.append(type(e))
            else:
                kinds.append(None)
        assert kinds[0] is not None and kinds[0] is kinds[1], kinds
