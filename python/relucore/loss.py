"""The native softmax, log-softmax and fused softmax cross-entropy: same signatures, results and
errors as relucore.reference.loss.

Each function first offers plain arguments to the compiled fast path, which takes C-contiguous
arrays (int64 class indices) and returns None for anything else; then the arguments are validated
by relucore._checks (the twin's errors) and copied as needed. Docstrings are shared with the twins.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _checks as C
from . import _core
from .activations import _c, _doc, _native
from .reference import loss as _ref

__all__ = ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "cross_entropy"]

_RED = _core.REDUCTIONS  # name -> code, from cpp/include/relucore/loss.h Reduction


def _axis_fast(x, axis):
    """``axis`` in [0, ndim) for an ndarray and a plain int, else None (the checks handle it)."""
    if type(axis) is int and type(x) is np.ndarray:
        n = x.ndim or 1
        if -n <= axis < n:
            return axis % n
    return None


def _softmax(x, axis, out, log):
    ax = _axis_fast(x, axis)
    if ax is not None:
        r = _core.softmax(x, ax, log, out)
        if r is not None:
            return r
    x = C.check_float("x", x)
    ax = C.check_axis(axis, x.ndim)
    C.check_out(out, x.shape, x.dtype)
    xc = _c(x)
    return _native(lambda o: _core.softmax(xc, ax, log, o), out)


def _softmax_backward(dy, y, axis, out, log):
    ax = _axis_fast(dy, axis)
    if ax is not None:
        r = _core.softmax_backward(dy, y, ax, log, out)
        if r is not None:
            return r
    dy, y, ax = C.check_softmax_backward_args(dy, y, axis)
    C.check_out(out, dy.shape, dy.dtype)
    dyc, yc = _c(dy), _c(y)
    return _native(lambda o: _core.softmax_backward(dyc, yc, ax, log, o), out)


@_doc(_ref.softmax)
def softmax(x: ArrayLike, axis: int = -1, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    return _softmax(x, axis, out, False)


@_doc(_ref.log_softmax)
def log_softmax(x: ArrayLike, axis: int = -1, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    return _softmax(x, axis, out, True)


@_doc(_ref.softmax_backward)
def softmax_backward(dy: ArrayLike, y: ArrayLike, axis: int = -1, *,
                     out: Optional[np.ndarray] = None) -> np.ndarray:
    return _softmax_backward(dy, y, axis, out, False)


@_doc(_ref.log_softmax_backward)
def log_softmax_backward(dy: ArrayLike, y: ArrayLike, axis: int = -1, *,
                         out: Optional[np.ndarray] = None) -> np.ndarray:
    return _softmax_backward(dy, y, axis, out, True)


@_doc(_ref.cross_entropy)
def cross_entropy(logits: ArrayLike, target: ArrayLike, *, reduction: str = "mean", label_smoothing: float = 0.0,
                  ignore_index: int = -100,
                  out: Optional[np.ndarray] = None) -> Tuple[Union[np.floating, np.ndarray], np.ndarray]:
    code = _RED.get(reduction) if type(reduction) is str else None
    if (code is not None and type(logits) is np.ndarray and type(label_smoothing) in (float, int)
            and type(ignore_index) is int and -2**63 <= ignore_index < 2**63):
        r = _core.cross_entropy(logits, target, code, label_smoothing, ignore_index, out)
        if r is not None:
            return (logits.dtype.type(r[0]) if code != _RED["none"] else r[0]), r[1]
    a = C.check_cross_entropy_args(logits, target, reduction, label_smoothing, ignore_index)
    x = np.asarray(logits)
    C.check_out(out, x.shape, x.dtype)
    xc = _c(x)
    tc = _c(a.target).reshape(x.shape if a.probabilities else a.shape)
    code = _RED[a.reduction]
    r = _core.cross_entropy(xc, tc, code, a.label_smoothing, a.ignore_index, out)
    if r is None and out is not None:  # out overlaps an input: compute fresh, then copy
        r = _core.cross_entropy(xc, tc, code, a.label_smoothing, a.ignore_index, None)
        if r is not None:
            np.copyto(out, r[1])
            r = (r[0], out)
    if r is None:  # prepared arguments must always be accepted
        raise RuntimeError("relucore: the native kernel refused validated arguments (a bug)")
    return (x.dtype.type(r[0]) if code != _RED["none"] else r[0]), r[1]
