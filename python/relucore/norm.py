"""The native batch norm with its fused activation: same signatures, results and errors as
relucore.reference.norm.

Each function first offers plain arguments to the compiled fast path, which takes C-contiguous
arrays of one dtype and consistent shapes and returns None for anything else. Then the arguments
are validated by relucore._checks (the code the reference uses, raising its errors) and copied as
needed (running buffers the core could not update in place are written back). Docstrings are
shared with the twins.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _checks as C
from . import _core
from .activations import _c, _doc, _native
from .reference import norm as _ref

#: None, "relu", "leaky_relu", "elu", or (name, parameter).
Activation = Union[None, str, Tuple[str, float]]

__all__ = ["batch_norm", "batch_norm_backward"]

_ACT = _core.NORM_ACTIVATIONS  # name -> code, from cpp/include/relucore/kernels.h NormAct
_PARAM_ACTS = ("leaky_relu", "elu")


def _fast_act(activation):
    """(code, parameter) for the plain spellings of an activation, else None (the checks parse it)."""
    if activation is None:
        return _ACT["none"], 0.0
    if type(activation) is str:
        default = C.BN_ACTIVATIONS.get(activation, False)
        return None if default is False else (_ACT[activation], default or 0.0)
    if (type(activation) is tuple and len(activation) == 2 and activation[0] in _PARAM_ACTS
            and type(activation[1]) in (float, int)):
        return _ACT[activation[0]], float(activation[1])
    return None


def _real(v) -> bool:
    return type(v) in (float, int)


@_doc(_ref.batch_norm)
def batch_norm(x: ArrayLike, running_mean: Optional[np.ndarray], running_var: Optional[np.ndarray],
               weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
               momentum: Optional[float] = 0.1, eps: float = 1e-5, *, activation: Activation = None,
               out: Optional[np.ndarray] = None, return_counts: bool = False,
               num_batches_tracked: Optional[np.ndarray] = None) -> Tuple[np.ndarray, ...]:
    act = _fast_act(activation)
    if act is not None and num_batches_tracked is None and _real(momentum) and _real(eps):
        # the core takes plain arrays of consistent shapes and returns None for anything else
        r = _core.batch_norm(x, running_mean, running_var, weight, bias, bool(training), momentum, eps,
                             act[0], act[1], out, bool(return_counts))
        if r is not None:
            return r
    a = C.check_batch_norm_args(x, running_mean, running_var, weight, bias, training, momentum, eps,
                                activation, num_batches_tracked)
    C.check_out(out, a.x.shape, a.x.dtype)
    training = bool(training)
    if training and num_batches_tracked is not None:
        num_batches_tracked += 1
    m = a.momentum
    if m is None:
        m = 1.0 / float(num_batches_tracked) if (training and a.running_mean is not None) else 0.0
    rm, rv = _c(a.running_mean), _c(a.running_var)
    xc = _c(a.x)
    read = [v for v in (xc, a.weight, a.bias) if v is not None]
    if training and rm is not None and (rm is not a.running_mean or rv is not a.running_var
                                        or np.shares_memory(rm, rv)
                                        or any(np.shares_memory(r, v) for r in (rm, rv) for v in read)):
        rm, rv = np.array(a.running_mean), np.array(a.running_var)  # updated, then written back
    r = _native(lambda o: _core.batch_norm(xc, rm, rv, _c(a.weight), _c(a.bias), training, m, a.eps,
                                             _ACT[a.act or "none"], a.param, o, bool(return_counts)), out)
    if training and rm is not None and rm is not a.running_mean:
        a.running_mean[...] = rm
        a.running_var[...] = rv
    return r


@_doc(_ref.batch_norm_backward)
def batch_norm_backward(dy: ArrayLike, x: Optional[ArrayLike], weight: Optional[ArrayLike], save_mean: ArrayLike,
                        save_invstd: ArrayLike, *, bias: Optional[ArrayLike] = None, activation: Activation = None,
                        y: Optional[ArrayLike] = None, training: bool = True,
                        out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    act = _fast_act(activation)
    if act is not None and x is not None and y is None:
        r = _core.batch_norm_backward(dy, x, False, weight, bias, save_mean, save_invstd, act[0], act[1],
                                      bool(training), out)
        if r is not None:
            return r
    a = C.check_batch_norm_backward_args(dy, x, weight, save_mean, save_invstd, bias, activation, y)
    C.check_out(out, a.dy.shape, a.dy.dtype)
    from_y = a.x is None
    dyc, sc = _c(a.dy), _c(a.y if from_y else a.x)
    return _native(lambda o: _core.batch_norm_backward(
        dyc, sc, from_y, _c(a.weight), _c(a.bias), _c(a.save_mean), _c(a.save_invstd),
        _ACT[a.act or "none"], a.param, bool(training), o), out)
