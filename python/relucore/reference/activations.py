"""Plain-NumPy activations: the correctness oracle and the "numpy" backend.

Same signatures, return conventions and errors as the native functions
(docs/api.md). Everything is computed in the input dtype (float32 stays
float32); only prelu's ``dweight`` is accumulated in float64. Every result is
computed into a fresh array first, so ``out=`` may alias any input.

Special values, as PyTorch gives them; the native functions (:mod:`relucore.activations`) and the
NumPy ufuncs (:mod:`relucore.ufuncs`, whose parameters are broadcast operands) give the same:

=====================  ========================================================================
relu                   ``relu(-0.0)`` is -0.0; NaN stays NaN; ``relu(-inf)`` is 0
relu_backward          ``x <= 0`` (also ``x == -0.0``, ``-inf``) gives exactly +0, even for an
                       infinite or NaN ``dy``: the gradient at exactly 0 is 0 (``grad_at_zero``
                       changes that in the functional API only); NaN ``x`` passes ``dy``
leaky_relu             ``x * slope`` wherever not ``x > 0``: -0.0 gives -0.0 (slope > 0), NaN
                       stays NaN, ``-inf`` gives ``-inf * slope`` (NaN for a slope of 0)
leaky_relu_backward    ``dy * slope`` wherever not ``x > 0``: also at ``x == 0`` and NaN ``x``
elu                    ``elu(-0.0)`` is -0.0 (alpha > 0); ``elu(-inf)`` is ``-alpha``; NaN stays NaN
elu_backward           ``dy * alpha * exp(x)`` at ``x <= 0``: ``dy * alpha`` at 0, 0 at ``-inf``;
                       NaN ``x`` passes ``dy``
sigmoid                0 at ``-inf``, 1 at ``+inf``, 0.5 at ±0; NaN stays NaN
sigmoid/tanh_backward  plain arithmetic on ``dy`` and ``y`` (NaN and inf propagate as IEEE says)
relu6                  ``relu6(-0.0)`` is -0.0; NaN stays NaN; 6 at ``+inf``, 0 at ``-inf``
relu6_backward         exactly +0 at ``x <= 0`` and ``x >= 6`` (also at 0 and 6); NaN ``x`` passes ``dy``
=====================  ========================================================================
"""

from __future__ import annotations

import numpy as np

from .._checks import (
    check_float,
    check_mask,
    check_out,
    check_same,
    check_scalar,
    check_weight,
    check_x_or_mask,
)

__all__ = [
    "relu",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "elu",
    "elu_backward",
    "prelu",
    "prelu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "relu6",
    "relu6_backward",
]


# --------------------------------------------------------------------------- helpers


def _finish(y, dtype, out):
    """Return the fresh result ``y`` (as an ndarray of ``dtype``), or copy it into ``out``."""
    y = np.asarray(y, dtype=dtype)  # ufuncs turn 0-d arrays into scalars; undo that
    if out is None:
        return y
    np.copyto(out, y)
    return out


def _pack(bits: np.ndarray) -> np.ndarray:
    """Bit mask: element i (C order) is bit i % 8 of byte i // 8."""
    return np.packbits(np.ravel(bits, order="C"), bitorder="little")


def _unpack(mask: np.ndarray, shape: tuple) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    return np.unpackbits(mask, count=n, bitorder="little").astype(bool).reshape(shape)


def _counts(y: np.ndarray) -> np.ndarray:
    """int64 number of ``y > 0`` per channel (axis 1), or over all of ``y`` if ndim < 2."""
    pos = y > 0
    if y.ndim < 2:
        return np.array(np.count_nonzero(pos), dtype=np.int64)
    axes = (0,) + tuple(range(2, y.ndim))
    return np.asarray(np.count_nonzero(pos, axis=axes), dtype=np.int64).reshape(y.shape[1])


def _forward(y, dtype, out, bits, return_mask, return_counts):
    """Assemble ``y`` / ``(y, mask)`` / ``(y, counts)`` / ``(y, mask, counts)``."""
    y = np.asarray(y, dtype=dtype)
    extra = []
    if return_mask:
        extra.append(_pack(bits))  # bits were taken from x before out (maybe x) is written
    if return_counts:
        extra.append(_counts(y))
    y = _finish(y, dtype, out)
    return (y, *extra) if extra else y


def _channel_view(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reshape a prelu weight (1 or C elements) to broadcast along axis 1 of ``x``."""
    if x.ndim < 2:
        return w.reshape(())
    return w.reshape((1, w.shape[0]) + (1,) * (x.ndim - 2))


# --------------------------------------------------------------------------- ReLU


def relu(x, *, out=None, return_mask=False, return_counts=False):
    r"""Rectified linear unit, elementwise.

    .. math:: \text{ReLU}(x) = \begin{cases} 0 & x < 0 \\ x & \text{otherwise} \end{cases}

    so ``relu(-0.0) == -0.0`` and ``relu(nan)`` is NaN (as PyTorch).

    Args:
        x: float32 or float64 array, any shape and strides.
        out: optional array for the result (may be ``x``). Default: ``None``.
        return_mask: also return the uint8 bit mask of ``not (x <= 0)``. Default: ``False``.
        return_counts: also return int64 counts of ``y > 0`` per channel (axis 1). Default: ``False``.

    Shape:
        - x: :math:`(*)`; y: same; mask: :math:`(\lceil x.size / 8 \rceil,)`;
          counts: :math:`(C,)` for ndim >= 2, else :math:`()`.

    Example::

        >>> y, mask = relu(np.array([-1.0, 0.0, 2.0]), return_mask=True)
        >>> y, mask
        (array([0., 0., 2.]), array([4], dtype=uint8))
    """
    x = check_float("x", x)
    check_out(out, x.shape, x.dtype)
    y = np.where(x < 0, x.dtype.type(0), x)
    bits = ~(x <= 0) if return_mask else None
    return _forward(y, x.dtype, out, bits, return_mask, return_counts)


def relu_backward(dy, x=None, *, mask=None, grad_at_zero=0.0, out=None):
    r"""Gradient of :func:`relu` with respect to its input.

    .. math:: dx = \begin{cases} dy & \lnot(x \le 0) \\ g \cdot dy & x = 0 \\ 0 & x < 0 \end{cases}

    with :math:`g` = ``grad_at_zero``. For ``g == 0`` the result at ``x <= 0`` is exactly
    ``+0`` (even for infinite or NaN ``dy``); NaN ``x`` passes ``dy``.

    Args:
        dy: upstream gradient, float32 or float64.
        x: the forward input (same shape and dtype as ``dy``). Exactly one of ``x``, ``mask``.
        mask: the bit mask from ``relu(x, return_mask=True)``; then ``dx = dy if bit else 0``.
        grad_at_zero: subgradient used at ``x == 0``; must be 0 with ``mask``. Default: ``0.0``.
        out: optional array for the result (may be ``dy`` or ``x``). Default: ``None``.

    Shape:
        - dy, x: :math:`(*)`; dx: same.

    Example::

        >>> relu_backward(np.ones(3), np.array([-1.0, 0.0, 2.0]), grad_at_zero=0.5)
        array([0. , 0.5, 1. ])
    """
    dy = check_float("dy", dy)
    check_x_or_mask(x, mask)
    g = check_scalar("grad_at_zero", grad_at_zero)
    zero = dy.dtype.type(0)
    if mask is not None:
        mask = check_mask(mask, dy.size)
        if g != 0:
            raise ValueError(
                "grad_at_zero must be 0 when mask is given (the mask does not record x == 0)"
            )
        check_out(out, dy.shape, dy.dtype)
        dx = np.where(_unpack(mask, dy.shape), dy, zero)
        return _finish(dx, dy.dtype, out)
    x = check_float("x", x)
    check_same("dy", dy, "x", x)
    check_out(out, dy.shape, dy.dtype)
    if g == 0:
        dx = np.where(x <= 0, zero, dy)
    else:
        with np.errstate(all="ignore"):
            at_zero = dy.dtype.type(g) * dy
        dx = np.where(x <= 0, np.where(x == 0, at_zero, zero), dy)
    return _finish(dx, dy.dtype, out)


# --------------------------------------------------------------------------- Leaky ReLU


def leaky_relu(x, negative_slope=0.01, *, out=None, return_mask=False, return_counts=False):
    r"""Leaky ReLU, elementwise.

    .. math:: \text{LeakyReLU}(x) = \begin{cases} x & x > 0 \\ s \cdot x & \text{otherwise} \end{cases}

    Args:
        x: float32 or float64 array.
        negative_slope: :math:`s`, rounded to ``x.dtype`` before use. Default: ``0.01``.
        out: optional array for the result (may be ``x``). Default: ``None``.
        return_mask: also return the uint8 bit mask of ``x > 0``. Default: ``False``.
        return_counts: also return int64 counts of ``y > 0`` per channel. Default: ``False``.

    Shape:
        - x: :math:`(*)`; y: same; mask and counts as in :func:`relu`.

    Example::

        >>> leaky_relu(np.array([-1.0, 2.0]), 0.1)
        array([-0.1,  2. ])
    """
    x = check_float("x", x)
    s = x.dtype.type(check_scalar("negative_slope", negative_slope))
    check_out(out, x.shape, x.dtype)
    with np.errstate(all="ignore"):
        y = np.where(x > 0, x, x * s)
    bits = (x > 0) if return_mask else None
    return _forward(y, x.dtype, out, bits, return_mask, return_counts)


def leaky_relu_backward(dy, x=None, negative_slope=0.01, *, mask=None, out=None):
    r"""Gradient of :func:`leaky_relu`: ``dx = dy if x > 0 else dy * negative_slope``.

    Args:
        dy: upstream gradient, float32 or float64.
        x: the forward input. Exactly one of ``x``, ``mask``.
        negative_slope: as in the forward call. Default: ``0.01``.
        mask: the bit mask from ``leaky_relu(x, return_mask=True)`` (bit = ``x > 0``).
        out: optional array for the result (may alias an input). Default: ``None``.

    Shape:
        - dy, x: :math:`(*)`; dx: same.

    Example::

        >>> leaky_relu_backward(np.ones(2), np.array([-1.0, 2.0]), 0.1)
        array([0.1, 1. ])
    """
    dy = check_float("dy", dy)
    check_x_or_mask(x, mask)
    s = dy.dtype.type(check_scalar("negative_slope", negative_slope))
    if mask is not None:
        mask = check_mask(mask, dy.size)
        positive = _unpack(mask, dy.shape)
    else:
        x = check_float("x", x)
        check_same("dy", dy, "x", x)
        positive = x > 0
    check_out(out, dy.shape, dy.dtype)
    with np.errstate(all="ignore"):
        dx = np.where(positive, dy, dy * s)
    return _finish(dx, dy.dtype, out)


# --------------------------------------------------------------------------- ELU


def elu(x, alpha=1.0, *, out=None, return_counts=False):
    r"""Exponential linear unit, elementwise.

    .. math:: \text{ELU}(x) = \begin{cases} x & \lnot(x \le 0) \\ \alpha \cdot (e^x - 1) & x \le 0 \end{cases}

    computed with ``expm1`` in ``x.dtype``: ``elu(-0.0) == -0.0`` (alpha > 0),
    ``elu(-inf) == -alpha``, ``elu(nan)`` is NaN.

    Args:
        x: float32 or float64 array.
        alpha: :math:`\alpha`, rounded to ``x.dtype``. Default: ``1.0``.
        out: optional array for the result (may be ``x``). Default: ``None``.
        return_counts: also return int64 counts of ``y > 0`` per channel. Default: ``False``.

    Shape:
        - x: :math:`(*)`; y: same.

    Example::

        >>> elu(np.array([-np.inf, 0.0, 2.0]))
        array([-1.,  0.,  2.])
    """
    x = check_float("x", x)
    a = x.dtype.type(check_scalar("alpha", alpha))
    check_out(out, x.shape, x.dtype)
    with np.errstate(all="ignore"):
        y = np.where(x <= 0, a * np.expm1(x), x)
    return _forward(y, x.dtype, out, None, False, return_counts)


def elu_backward(dy, x, alpha=1.0, *, out=None):
    r"""Gradient of :func:`elu`: ``dx = dy * alpha * exp(x) if x <= 0 else dy``.

    Args:
        dy: upstream gradient, float32 or float64.
        x: the forward input (same shape and dtype). NaN ``x`` passes ``dy``.
        alpha: as in the forward call. Default: ``1.0``.
        out: optional array for the result (may alias an input). Default: ``None``.

    Shape:
        - dy, x: :math:`(*)`; dx: same.

    Example::

        >>> elu_backward(np.ones(2), np.array([0.0, 1.0]))
        array([1., 1.])
    """
    dy = check_float("dy", dy)
    x = check_float("x", x)
    check_same("dy", dy, "x", x)
    a = dy.dtype.type(check_scalar("alpha", alpha))
    check_out(out, dy.shape, dy.dtype)
    with np.errstate(all="ignore"):
        dx = np.where(x <= 0, dy * a * np.exp(x), dy)
    return _finish(dx, dy.dtype, out)


# --------------------------------------------------------------------------- PReLU


def prelu(x, weight, *, out=None):
    r"""Parametric ReLU with a learnt slope per channel (axis 1).

    .. math:: \text{PReLU}(x) = \begin{cases} x & x > 0 \\ w_c \cdot x & \text{otherwise} \end{cases}

    Args:
        x: float32 or float64 array; channel axis 1 (no channel axis if ndim < 2).
        weight: 1-D array of 1 or C slopes, dtype of ``x``.
        out: optional array for the result (may be ``x``). Default: ``None``.

    Shape:
        - x: :math:`(N, C, *)` or :math:`(*)` with ndim < 2; weight: :math:`(1,)` or :math:`(C,)`.

    Example::

        >>> prelu(np.array([[-1.0, -1.0]]), np.array([0.25, 0.5]))
        array([[-0.25, -0.5 ]])
    """
    x = check_float("x", x)
    weight = check_weight(weight, x)
    check_out(out, x.shape, x.dtype)
    w = _channel_view(weight, x)
    with np.errstate(all="ignore"):
        y = np.where(x > 0, x, w * x)
    return _finish(y, x.dtype, out)


def prelu_backward(dy, x, weight):
    r"""Gradients of :func:`prelu` with respect to ``x`` and ``weight``.

    .. math::
        dx = \begin{cases} dy & x > 0 \\ w_c \cdot dy & \text{otherwise} \end{cases}, \qquad
        dw_c = \sum_{i \in c} \begin{cases} 0 & x_i > 0 \\ x_i \cdot dy_i & \text{otherwise} \end{cases}

    The products are formed in ``x.dtype`` and summed in float64 (a fixed order),
    then rounded to ``x.dtype``. A 1-element weight sums over the whole array.

    Args:
        dy: upstream gradient (shape and dtype of ``x``).
        x: the forward input.
        weight: the slopes used in the forward call.

    Returns:
        ``(dx, dweight)``; ``dweight`` has the shape of ``weight``.

    Example::

        >>> prelu_backward(np.ones((1, 2)), np.array([[-1.0, 3.0]]), np.array([0.25, 0.5]))
        (array([[0.25, 1.  ]]), array([-1.,  0.]))
    """
    dy = check_float("dy", dy)
    x = check_float("x", x)
    check_same("dy", dy, "x", x)
    weight = check_weight(weight, x)
    w = _channel_view(weight, x)
    positive = x > 0
    with np.errstate(all="ignore"):
        dx = np.where(positive, dy, w * dy)
        terms = np.where(positive, x.dtype.type(0), x * dy).astype(np.float64)
        if weight.shape[0] == 1 or x.ndim < 2:
            dw = np.sum(terms).reshape(1)
        else:
            dw = np.sum(terms, axis=(0,) + tuple(range(2, x.ndim)))
    dweight = np.asarray(dw, dtype=x.dtype).reshape(weight.shape)
    return np.asarray(dx, dtype=x.dtype), dweight


# --------------------------------------------------------------------------- sigmoid, tanh


def sigmoid(x, *, out=None):
    r"""Logistic sigmoid, elementwise: :math:`\sigma(x) = 1 / (1 + e^{-x})` in ``x.dtype``.

    Args:
        x: float32 or float64 array.
        out: optional array for the result (may be ``x``). Default: ``None``.

    Shape:
        - x: :math:`(*)`; y: same.

    Example::

        >>> sigmoid(np.array([-np.inf, 0.0, np.inf]))
        array([0. , 0.5, 1. ])
    """
    x = check_float("x", x)
    check_out(out, x.shape, x.dtype)
    one = x.dtype.type(1)
    with np.errstate(all="ignore"):
        y = one / (one + np.exp(-x))
    return _finish(y, x.dtype, out)


def sigmoid_backward(dy, y, *, out=None):
    r"""Gradient of :func:`sigmoid` from its output: ``dx = dy * y * (1 - y)``.

    Args:
        dy: upstream gradient, float32 or float64.
        y: ``sigmoid(x)`` (same shape and dtype as ``dy``).
        out: optional array for the result (may alias an input). Default: ``None``.

    Shape:
        - dy, y: :math:`(*)`; dx: same.

    Example::

        >>> sigmoid_backward(np.ones(1), np.array([0.5]))
        array([0.25])
    """
    dy = check_float("dy", dy)
    y = check_float("y", y)
    check_same("dy", dy, "y", y)
    check_out(out, dy.shape, dy.dtype)
    one = dy.dtype.type(1)
    with np.errstate(all="ignore"):
        dx = dy * y * (one - y)
    return _finish(dx, dy.dtype, out)


def tanh(x, *, out=None):
    r"""Hyperbolic tangent, elementwise (``np.tanh`` in ``x.dtype``).

    Args:
        x: float32 or float64 array.
        out: optional array for the result (may be ``x``). Default: ``None``.

    Shape:
        - x: :math:`(*)`; y: same.

    Example::

        >>> tanh(np.array([0.0, np.inf]))
        array([0., 1.])
    """
    x = check_float("x", x)
    check_out(out, x.shape, x.dtype)
    with np.errstate(all="ignore"):
        y = np.tanh(x)
    return _finish(y, x.dtype, out)


def tanh_backward(dy, y, *, out=None):
    r"""Gradient of :func:`tanh` from its output: ``dx = dy * (1 - y * y)``.

    Args:
        dy: upstream gradient, float32 or float64.
        y: ``tanh(x)`` (same shape and dtype as ``dy``).
        out: optional array for the result (may alias an input). Default: ``None``.

    Shape:
        - dy, y: :math:`(*)`; dx: same.

    Example::

        >>> tanh_backward(np.ones(1), np.array([0.5]))
        array([0.75])
    """
    dy = check_float("dy", dy)
    y = check_float("y", y)
    check_same("dy", dy, "y", y)
    check_out(out, dy.shape, dy.dtype)
    one = dy.dtype.type(1)
    with np.errstate(all="ignore"):
        dx = dy * (one - y * y)
    return _finish(dx, dy.dtype, out)


# --------------------------------------------------------------------------- ReLU6


def relu6(x, *, out=None, return_mask=False, return_counts=False):
    r"""ReLU capped at 6, elementwise (``torch.nn.functional.relu6``).

    .. math:: \text{ReLU6}(x) = \min(\max(0, x), 6)

    so ``relu6(-0.0) == -0.0`` and ``relu6(nan)`` is NaN (as PyTorch).

    Args:
        x: float32 or float64 array, any shape and strides.
        out: optional array for the result (may be ``x``). Default: ``None``.
        return_mask: also return the uint8 bit mask of ``not (x <= 0 or x >= 6)``, the elements
            the gradient passes. Default: ``False``.
        return_counts: also return int64 counts of ``y > 0`` per channel (axis 1). Default: ``False``.

    Shape:
        - x: :math:`(*)`; y: same; mask and counts as in :func:`relu`.

    Example::

        >>> relu6(np.array([-1.0, 3.0, 7.0]))
        array([0., 3., 6.])
    """
    x = check_float("x", x)
    check_out(out, x.shape, x.dtype)
    y = np.where(x < 0, x.dtype.type(0), np.where(x > 6, x.dtype.type(6), x))
    bits = ~((x <= 0) | (x >= 6)) if return_mask else None
    return _forward(y, x.dtype, out, bits, return_mask, return_counts)


def relu6_backward(dy, x=None, *, mask=None, out=None):
    r"""Gradient of :func:`relu6` with respect to its input.

    .. math:: dx = \begin{cases} 0 & x \le 0 \text{ or } x \ge 6 \\ dy & \text{otherwise} \end{cases}

    The result at ``x <= 0`` and ``x >= 6`` is exactly ``+0`` (even for infinite or NaN ``dy``);
    NaN ``x`` passes ``dy``.

    Args:
        dy: upstream gradient, float32 or float64.
        x: the forward input (same shape and dtype as ``dy``). Exactly one of ``x``, ``mask``.
        mask: the bit mask from ``relu6(x, return_mask=True)``; then ``dx = dy if bit else 0``.
        out: optional array for the result (may be ``dy`` or ``x``). Default: ``None``.

    Shape:
        - dy, x: :math:`(*)`; dx: same.

    Example::

        >>> relu6_backward(np.ones(4), np.array([-1.0, 0.0, 3.0, 6.0]))
        array([0., 0., 1., 0.])
    """
    dy = check_float("dy", dy)
    check_x_or_mask(x, mask)
    zero = dy.dtype.type(0)
    if mask is not None:
        mask = check_mask(mask, dy.size)
        check_out(out, dy.shape, dy.dtype)
        return _finish(np.where(_unpack(mask, dy.shape), dy, zero), dy.dtype, out)
    x = check_float("x", x)
    check_same("dy", dy, "x", x)
    check_out(out, dy.shape, dy.dtype)
    return _finish(np.where((x <= 0) | (x >= 6), zero, dy), dy.dtype, out)
