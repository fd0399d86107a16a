"""The native convolution path: im2col/col2im, conv2d, pooling and linear (the twin of relucore.reference.conv).

Arguments are validated and parsed by relucore._checks (the same code the reference uses), inputs
made C-contiguous, then one call into the compiled core. Docstrings are shared with the reference.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _checks as C
from . import _core
from .activations import _c, _doc
from .reference import conv as _ref

__all__ = [
    "im2col", "col2im", "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward", "linear", "linear_backward",
]

IntOrPair = Union[int, Tuple[int, int]]
#: None, "relu", "leaky_relu", "elu", or (name, parameter).
Activation = Union[None, str, Tuple[str, float]]

_BLAS_MAX = 2**31 - 1  # scipy-openblas32 takes 32-bit sizes


def _blas_fits(why: str = "", **sizes):
    for name, v in sizes.items():
        if v > _BLAS_MAX:
            raise ValueError(f"{name} = {v}{why} exceeds the BLAS's 32-bit size limit ({_BLAS_MAX})")


def _conv_fits(a: C.ConvArgs):
    f, cg = a.weight.shape[0], a.x.shape[1] // a.groups
    _blas_fits(" (from weight's shape and groups)", **{"C/groups*kh*kw": cg * a.kernel[0] * a.kernel[1],
                                                         "F/groups": f // a.groups})
    _blas_fits(f" (x's {a.x.shape[2]}x{a.x.shape[3]} planes with padding {a.padding}, stride {a.stride}, "
               f"dilation {a.dilation} and kernel {a.kernel})", **{"OH*OW": a.out_hw[0] * a.out_hw[1]})


@_doc(_ref.im2col)
def im2col(x: ArrayLike, kernel_size: IntOrPair, stride: IntOrPair = 1, padding: IntOrPair = 0,
           dilation: IntOrPair = 1) -> np.ndarray:
    x, k, s, p, d, (oh, ow) = C.check_im2col_args(x, kernel_size, stride, padding, dilation)
    if x.size == 0:  # all padding, or nothing: no loop over a count no memory backs
        return np.zeros((x.shape[0], x.shape[1] * k[0] * k[1], oh * ow), x.dtype)
    return _core.im2col(_c(x), k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1])


@_doc(_ref.col2im)
def col2im(cols: ArrayLike, input_shape: Sequence[int], kernel_size: IntOrPair, stride: IntOrPair = 1,
           padding: IntOrPair = 0, dilation: IntOrPair = 1) -> np.ndarray:
    cols, shape, k, s, p, d, _ = C.check_col2im_args(cols, input_shape, kernel_size, stride, padding, dilation)
    if cols.size == 0:
        return np.zeros(shape, cols.dtype)
    return _core.col2im(_c(cols), *shape, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1])


@_doc(_ref.conv2d)
def conv2d(x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrPair = 1,
           padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1, *,
           activation: Activation = None) -> np.ndarray:
    a = C.check_conv_args(x, weight, bias, stride, padding, dilation, groups)
    act, param = C.check_activation(activation)
    if math.prod(a.out_shape) == 0:
        return np.zeros(a.out_shape, a.x.dtype)
    _conv_fits(a)
    s, p, d = a.stride, a.padding, a.dilation
    return _core.conv2d(_c(a.x), _c(a.weight), _c(a.bias), s[0], s[1], p[0], p[1], d[0], d[1], a.groups,
                        _core.NORM_ACTIVATIONS[act or "none"], param)


@_doc(_ref.conv2d_backward)
def conv2d_backward(dy: ArrayLike, x: ArrayLike, weight: ArrayLike, stride: IntOrPair = 1, padding: IntOrPair = 0,
                    dilation: IntOrPair = 1, groups: int = 1, *, compute_dx: bool = True,
                    compute_dweight: bool = True, compute_dbias: bool = True
                    ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    a = C.check_conv_backward_args(dy, x, weight, stride, padding, dilation, groups)
    want = bool(compute_dx), bool(compute_dweight), bool(compute_dbias)
    if math.prod(a.out_shape) == 0:  # no gradient flows
        dt = a.x.dtype
        shapes = a.x.shape, a.weight.shape, a.weight.shape[:1]
        return tuple(np.zeros(shape, dt) if w else None for w, shape in zip(want, shapes))
    _conv_fits(a)
    s, p, d = a.stride, a.padding, a.dilation
    return _core.conv2d_backward(_c(np.asarray(dy)), _c(a.x), _c(a.weight), s[0], s[1], p[0], p[1], d[0], d[1],
                                 a.groups, *want)


@_doc(_ref.max_pool2d)
def max_pool2d(x: ArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0) -> Tuple[np.ndarray, np.ndarray]:
    x, k, s, p, _ = C.check_pool_args(x, kernel_size, stride, padding)
    return _core.max_pool2d(_c(x), k[0], k[1], s[0], s[1], p[0], p[1])


@_doc(_ref.max_pool2d_backward)
def max_pool2d_backward(dy: ArrayLike, indices: ArrayLike, input_shape: Sequence[int]) -> np.ndarray:
    dy, indices, shape = C.check_max_pool_backward_args(dy, indices, input_shape, check_range=False)
    if math.prod(shape) == 0:
        return np.zeros(shape, dy.dtype)
    dx = _core.max_pool2d_backward(_c(dy), _c(indices), *shape)
    if dx is None:  # an index outside its plane: let the shared check say which
        C.check_max_pool_backward_args(dy, indices, input_shape)
        raise AssertionError("unreachable: the native scatter rejected indices the check accepts")
    return dx


@_doc(_ref.avg_pool2d)
def avg_pool2d(x: ArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
               count_include_pad: bool = True) -> np.ndarray:
    x, k, s, p, _ = C.check_pool_args(x, kernel_size, stride, padding)
    return _core.avg_pool2d(_c(x), k[0], k[1], s[0], s[1], p[0], p[1], bool(count_include_pad))


@_doc(_ref.avg_pool2d_backward)
def avg_pool2d_backward(dy: ArrayLike, input_shape: Sequence[int], kernel_size: IntOrPair,
                        stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                        count_include_pad: bool = True) -> np.ndarray:
    dy, shape, k, s, p, _ = C.check_avg_pool_backward_args(dy, input_shape, kernel_size, stride, padding)
    if math.prod(shape) == 0:
        return np.zeros(shape, dy.dtype)
    return _core.avg_pool2d_backward(_c(dy), *shape, k[0], k[1], s[0], s[1], p[0], p[1], bool(count_include_pad))


def _maybe_t(a: np.ndarray) -> Tuple[np.ndarray, bool]:
    """A 2-D operand as the core takes it: ``(a, False)`` with ``a`` C-contiguous (a copy if need
    be), or ``(a.T, True)`` when ``a`` is the transpose of a C-contiguous array (``W.T`` of the
    ``(in, out)`` weights of ``x @ W``), which the GEMM reads as it is."""
    t = a.T
    if (not a.flags.c_contiguous and t.flags.c_contiguous and t.flags.aligned and t.dtype.isnative
            and type(a) is np.ndarray):
        return t, True
    return _c(a), False


@_doc(_ref.linear)
def linear(x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None) -> np.ndarray:
    x, weight, bias = C.check_linear_args(x, weight, bias)
    lead, n_in = x.shape[:-1], x.shape[-1]
    if math.prod(lead) * weight.shape[0] == 0:
        return np.zeros(lead + weight.shape[:1], x.dtype)
    x2, x_t = _maybe_t(x.reshape(math.prod(lead), n_in))  # not -1: in_features may be 0
    w, w_t = _maybe_t(weight)
    _blas_fits(rows=math.prod(lead), in_features=n_in, out_features=weight.shape[0])
    y = _core.linear(x2, x_t, w, w_t, _c(bias))
    return y.reshape(lead + (weight.shape[0],))


@_doc(_ref.linear_backward)
def linear_backward(dy: ArrayLike, x: ArrayLike, weight: ArrayLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    dy, x, weight = C.check_linear_backward_args(dy, x, weight)
    n_in, n_out = x.shape[-1], weight.shape[0]
    if dy.size == 0:  # no gradient flows
        return np.zeros(x.shape, x.dtype), np.zeros_like(weight), np.zeros(n_out, x.dtype)
    rows = math.prod(x.shape[:-1])
    (x2, x_t), dy2 = _maybe_t(x.reshape(rows, n_in)), _c(dy.reshape(rows, n_out))
    w, w_t = _maybe_t(weight)
    _blas_fits(rows=rows, in_features=n_in, out_features=n_out)
    dx, dw, db = _core.linear_backward(dy2, x2, x_t, w, w_t)
    return dx.reshape(x.shape), (dw.T if w_t else dw), db
