"""The native (SIMD C++) activations: same signatures, results and errors as relucore.reference.

Each function first offers its arguments to the compiled fast path, which takes plain C-contiguous
float32/float64 arrays and returns None for anything else. Only then does the Python side validate
(raising the documented TypeError/ValueError), make contiguous copies, and copy into an ``out`` the
kernel could not write directly. Docstrings are shared with the reference twins.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _checks as C
from . import _core
from . import reference as _ref

#: y, or (y, mask), (y, counts), (y, mask, counts) when asked for.
Forward = Union[np.ndarray, Tuple[np.ndarray, ...]]

__all__ = [
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
    "prelu", "prelu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "relu6", "relu6_backward",
]

_ACT = _core.ACTIVATIONS  # name -> code, from cpp/include/relucore/activations.inc
_RELU, _LEAKY, _ELU, _SIGMOID, _TANH, _RELU6 = (
    _ACT[n] for n in ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "relu6"))


def _doc(twin):
    def attach(f):
        f.__doc__ = twin.__doc__
        return f
    return attach


def _contiguous(a: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array into 1-d.
    if type(a) is np.ndarray and a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.array(a, order="C", copy=True, subok=False)


def _c(a):
    """``a`` as a C-contiguous aligned ndarray (None stays None): what the compiled core takes."""
    return None if a is None else _contiguous(np.asarray(a))


def _native(call, out):
    """Run ``call(out)``; if the kernel cannot write ``out`` directly, compute fresh and copy."""
    r = call(out)
    if r is None and out is not None:
        r = call(None)
        if r is not None:
            if isinstance(r, tuple):
                np.copyto(out, r[0])
                r = (out,) + r[1:]
            else:
                np.copyto(out, r)
                r = out
    if r is None:  # prepared arguments must always be accepted
        raise RuntimeError("relucore: the native kernel refused validated arguments (a bug)")
    return r


def _forward(act, x, param, param_name, out, return_mask, return_counts):
    x = C.check_float("x", x)
    param = C.check_scalar(param_name, param) if param_name else 0.0
    C.check_out(out, x.shape, x.dtype)
    xc = _contiguous(x)
    return _native(lambda o: _core.forward(act, xc, param, o, bool(return_mask), bool(return_counts)), out)


def _backward(act, dy, s, s_name, param, param_name, out):
    dy = C.check_float("dy", dy)
    s = C.check_float(s_name, s)
    C.check_same("dy", dy, s_name, s)
    param = C.check_scalar(param_name, param) if param_name else 0.0
    C.check_out(out, dy.shape, dy.dtype)
    dyc, sc = _contiguous(dy), _contiguous(s)
    return _native(lambda o: _core.backward(act, dyc, sc, param, o), out)


def _backward_mask(act, dy, mask, param, out):
    dy = C.check_float("dy", dy)
    mask = C.check_mask(mask, dy.size)
    C.check_out(out, dy.shape, dy.dtype)
    dyc, mc = _contiguous(dy), np.ascontiguousarray(mask)
    return _native(lambda o: _core.backward_mask(act, dyc, mc, param, o), out)


def _fast(f, *args):
    try:
        return f(*args)
    except TypeError:  # a parameter pybind11 could not convert: the slow path names it
        return None


@_doc(_ref.relu)
def relu(x: ArrayLike, *, out: Optional[np.ndarray] = None, return_mask: bool = False,
         return_counts: bool = False) -> Forward:
    r = _fast(_core.forward, _RELU, x, 0.0, out, return_mask, return_counts)
    return r if r is not None else _forward(_RELU, x, 0.0, None, out, return_mask, return_counts)


@_doc(_ref.relu_backward)
def relu_backward(dy: ArrayLike, x: Optional[ArrayLike] = None, *, mask: Optional[np.ndarray] = None,
                  grad_at_zero: float = 0.0, out: Optional[np.ndarray] = None) -> np.ndarray:
    if mask is None and x is not None:
        r = _fast(_core.backward, _RELU, dy, x, grad_at_zero, out)
        return r if r is not None else _backward(_RELU, dy, x, "x", grad_at_zero, "grad_at_zero", out)
    C.check_x_or_mask(x, mask)
    if C.check_scalar("grad_at_zero", grad_at_zero) != 0:
        raise ValueError("grad_at_zero must be 0 when mask is given (the mask does not record x == 0)")
    return _backward_mask(_RELU, dy, mask, 0.0, out)


@_doc(_ref.leaky_relu)
def leaky_relu(x: ArrayLike, negative_slope: float = 0.01, *, out: Optional[np.ndarray] = None,
               return_mask: bool = False, return_counts: bool = False) -> Forward:
    r = _fast(_core.forward, _LEAKY, x, negative_slope, out, return_mask, return_counts)
    if r is not None:
        return r
    return _forward(_LEAKY, x, negative_slope, "negative_slope", out, return_mask, return_counts)


@_doc(_ref.leaky_relu_backward)
def leaky_relu_backward(dy: ArrayLike, x: Optional[ArrayLike] = None, negative_slope: float = 0.01, *,
                        mask: Optional[np.ndarray] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    if mask is None and x is not None:
        r = _fast(_core.backward, _LEAKY, dy, x, negative_slope, out)
        return r if r is not None else _backward(_LEAKY, dy, x, "x", negative_slope, "negative_slope", out)
    C.check_x_or_mask(x, mask)
    slope = C.check_scalar("negative_slope", negative_slope)
    return _backward_mask(_LEAKY, dy, mask, slope, out)


@_doc(_ref.elu)
def elu(x: ArrayLike, alpha: float = 1.0, *, out: Optional[np.ndarray] = None,
        return_counts: bool = False) -> Forward:
    r = _fast(_core.forward, _ELU, x, alpha, out, False, return_counts)
    return r if r is not None else _forward(_ELU, x, alpha, "alpha", out, False, return_counts)


@_doc(_ref.elu_backward)
def elu_backward(dy: ArrayLike, x: ArrayLike, alpha: float = 1.0, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    r = _fast(_core.backward, _ELU, dy, x, alpha, out)
    return r if r is not None else _backward(_ELU, dy, x, "x", alpha, "alpha", out)


def _plain_forward(act, x, out):
    r = _core.forward(act, x, 0.0, out, False, False)
    return r if r is not None else _forward(act, x, 0.0, None, out, False, False)


def _plain_backward(act, dy, y, out):
    r = _core.backward(act, dy, y, 0.0, out)
    return r if r is not None else _backward(act, dy, y, "y", 0.0, None, out)


@_doc(_ref.sigmoid)
def sigmoid(x: ArrayLike, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    return _plain_forward(_SIGMOID, x, out)


@_doc(_ref.sigmoid_backward)
def sigmoid_backward(dy: ArrayLike, y: ArrayLike, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    return _plain_backward(_SIGMOID, dy, y, out)


@_doc(_ref.tanh)
def tanh(x: ArrayLike, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    return _plain_forward(_TANH, x, out)


@_doc(_ref.tanh_backward)
def tanh_backward(dy: ArrayLike, y: ArrayLike, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    return _plain_backward(_TANH, dy, y, out)


@_doc(_ref.relu6)
def relu6(x: ArrayLike, *, out: Optional[np.ndarray] = None, return_mask: bool = False,
          return_counts: bool = False) -> Forward:
    r = _fast(_core.forward, _RELU6, x, 0.0, out, return_mask, return_counts)
    return r if r is not None else _forward(_RELU6, x, 0.0, None, out, return_mask, return_counts)


@_doc(_ref.relu6_backward)
def relu6_backward(dy: ArrayLike, x: Optional[ArrayLike] = None, *, mask: Optional[np.ndarray] = None,
                   out: Optional[np.ndarray] = None) -> np.ndarray:
    if mask is None and x is not None:
        r = _fast(_core.backward, _RELU6, dy, x, 0.0, out)
        return r if r is not None else _backward(_RELU6, dy, x, "x", 0.0, None, out)
    C.check_x_or_mask(x, mask)
    return _backward_mask(_RELU6, dy, mask, 0.0, out)


@_doc(_ref.prelu)
def prelu(x: ArrayLike, weight: ArrayLike, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    r = _core.prelu(x, weight, out)
    if r is not None:
        return r
    x = C.check_float("x", x)
    weight = C.check_weight(weight, x)
    C.check_out(out, x.shape, x.dtype)
    xc, wc = _contiguous(x), _contiguous(weight)
    return _native(lambda o: _core.prelu(xc, wc, o), out)


@_doc(_ref.prelu_backward)
def prelu_backward(dy: ArrayLike, x: ArrayLike, weight: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    r = _core.prelu_backward(dy, x, weight)
    if r is not None:
        return r
    dy = C.check_float("dy", dy)
    x = C.check_float("x", x)
    C.check_same("dy", dy, "x", x)
    weight = C.check_weight(weight, x)
    return _native(lambda o: _core.prelu_backward(_contiguous(dy), _contiguous(x), _contiguous(weight)), None)
