"""Plain-NumPy softmax, log-softmax and the fused softmax cross-entropy.

Same signatures, return conventions and errors as :mod:`relucore.loss`. Every intermediate is
float64 and the results are rounded to the input dtype once, so this is the accuracy yardstick for
the native kernels. Results are computed into fresh arrays first, so ``out=`` may alias any input.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_axis, check_cross_entropy_args, check_float, check_out, check_softmax_backward_args

__all__ = ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "cross_entropy"]


def _shifted(x: np.ndarray, axis: int):
    """(x - max, log of the sum of exp(x - max)) in float64 along ``axis`` (kept as length 1)."""
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        d = xd - xd.max(axis=axis, keepdims=True)
        return d, np.log(np.exp(d).sum(axis=axis, keepdims=True))


def _finish(r: np.ndarray, dtype, out):
    r = r.astype(dtype)
    if out is None:
        return r
    np.copyto(out, r)
    return out


def _prepare(x, axis, out):
    x = check_float("x", x)
    ax = check_axis(axis, x.ndim)
    check_out(out, x.shape, x.dtype)
    return x, ax


def _backward_args(dy, y, axis, out):
    """The checked dy, then dy and y in float64, and the keyword arguments of a sum along the axis."""
    dy, y, ax = check_softmax_backward_args(dy, y, axis)
    check_out(out, dy.shape, dy.dtype)
    keep = dict(axis=ax, keepdims=True) if dy.ndim else {}
    return dy, dy.astype(np.float64), y.astype(np.float64), keep


def softmax(x, axis=-1, *, out=None):
    r"""Softmax along one axis.

    .. math::
        \text{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \quad m = \max_j x_j

    Subtracting the maximum keeps it finite for any finite logits (±1e4 included). A slice holding
    NaN or +inf gives NaN throughout that slice, as in PyTorch.

    Args:
        x: float32 or float64 array, any shape (a 0-d array is one slice of one value).
        axis: the axis to normalize over. Default: ``-1``.
        out: optional array for the result (may be ``x``). Default: ``None``.

    Returns:
        An array like ``x`` whose slices along ``axis`` are positive and sum to 1.

    Shape:
        - x: any; output: same.

    Example::

        >>> p = softmax(np.array([[1.0, 2.0, 3.0]], np.float32))
    """
    x, ax = _prepare(x, axis, out)
    if x.size == 0:
        return _finish(x, x.dtype, out)
    d, lse = _shifted(x.reshape(x.shape or (1,)), ax)
    with np.errstate(invalid="ignore"):
        return _finish(np.exp(d - lse).reshape(x.shape), x.dtype, out)


def log_softmax(x, axis=-1, *, out=None):
    r"""Logarithm of the softmax along one axis, computed without forming the softmax.

    .. math::
        \text{log\_softmax}(x)_i = x_i - m - \log \sum_j e^{x_j - m}, \quad m = \max_j x_j

    Args:
        x: float32 or float64 array, any shape.
        axis: the axis to normalize over. Default: ``-1``.
        out: optional array for the result (may be ``x``). Default: ``None``.

    Returns:
        An array like ``x`` (every entry :math:`\le 0` for finite logits).

    Shape:
        - x: any; output: same.

    Example::

        >>> logp = log_softmax(np.array([[1e4, 0.0, -1e4]], np.float32))  # [[0, -1e4, -2e4]]
    """
    x, ax = _prepare(x, axis, out)
    if x.size == 0:
        return _finish(x, x.dtype, out)
    d, lse = _shifted(x.reshape(x.shape or (1,)), ax)
    with np.errstate(invalid="ignore"):
        return _finish((d - lse).reshape(x.shape), x.dtype, out)


def softmax_backward(dy, y, axis=-1, *, out=None):
    r"""Gradient of :func:`softmax` from the upstream gradient ``dy`` and the forward output ``y``.

    .. math::
        dx_i = y_i \left(dy_i - \sum_j dy_j\, y_j\right)

    Args:
        dy: upstream gradient, shaped like y.
        y: the forward output of :func:`softmax`.
        axis: the forward's axis. Default: ``-1``.
        out: optional array for dx (may be ``dy`` or ``y``). Default: ``None``.

    Returns:
        dx, shaped like y.

    Shape:
        - dy, y: any (the same); dx: same.

    Example::

        >>> y = softmax(x)
        >>> dx = softmax_backward(np.ones_like(y), y)  # zeros: the slices' sums are constant
    """
    dy, dyd, yd, keep = _backward_args(dy, y, axis, out)
    with np.errstate(invalid="ignore", over="ignore"):
        return _finish(yd * (dyd - (dyd * yd).sum(**keep)), dy.dtype, out)


def log_softmax_backward(dy, y, axis=-1, *, out=None):
    r"""Gradient of :func:`log_softmax` from the upstream gradient ``dy`` and the forward output ``y``.

    .. math::
        dx_i = dy_i - e^{y_i} \sum_j dy_j

    Args:
        dy: upstream gradient, shaped like y.
        y: the forward output of :func:`log_softmax`.
        axis: the forward's axis. Default: ``-1``.
        out: optional array for dx (may be ``dy`` or ``y``). Default: ``None``.

    Returns:
        dx, shaped like y.

    Shape:
        - dy, y: any (the same); dx: same.

    Example::

        >>> y = log_softmax(x)
        >>> dx = log_softmax_backward(np.ones_like(y), y)
    """
    dy, dyd, yd, keep = _backward_args(dy, y, axis, out)
    with np.errstate(invalid="ignore", over="ignore"):
        return _finish(dyd - np.exp(yd) * dyd.sum(**keep), dy.dtype, out)


def cross_entropy(logits, target, *, reduction="mean", label_smoothing=0.0, ignore_index=-100, out=None):
    r"""Softmax cross-entropy and its gradient with respect to the logits, in one call.

    With :math:`\log p = \text{log\_softmax}(x)` over the class axis (axis 1, or 0 for unbatched
    :math:`(C,)` logits), :math:`C` classes and smoothing :math:`\varepsilon`, each position's
    target distribution is :math:`t' = (1 - \varepsilon)\, t + \varepsilon / C` (:math:`t` one-hot
    for class indices) and

    .. math::
        \ell = -\sum_c t'_c \log p_c, \qquad \frac{\partial \ell}{\partial x_c} = p_c \sum_k t'_k - t'_c

    As in ``torch.nn.functional.cross_entropy``: ``reduction="mean"`` divides the sum by the
    number of positions whose target is not ``ignore_index`` (class indices; a NaN loss and zero
    gradients if there is none)
    or by the number of positions (probabilities); ``"sum"`` adds them; ``"none"`` returns one loss
    per position. Positions whose class index is ``ignore_index`` contribute no loss and no
    gradient.

    Args:
        logits: float32 or float64 array :math:`(C,)`, :math:`(N, C)` or :math:`(N, C, *)`.
        target: integer class indices shaped like ``logits`` without the class axis, or class
            probabilities shaped like ``logits`` with their dtype (one-hot rows work).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``.
        label_smoothing: :math:`\varepsilon` in :math:`[0, 1]`. Default: ``0.0``.
        ignore_index: a class index that is skipped (class-index targets only). Default: ``-100``.
        out: optional array for the gradient (may be ``logits``: a network rarely needs the logits
            after the loss). Default: ``None``.

    Returns:
        ``(loss, dlogits)``: the loss (a scalar of the logits' dtype, or an array of the target's
        positions for ``"none"``) and its gradient with respect to the logits, shaped like them.
        For ``"none"`` the gradient is that of the losses' sum.

    Raises:
        TypeError: float class indices, a probability target of another dtype.
        ValueError: a class index outside ``[0, C)`` that is not ``ignore_index``, shapes that do
            not match, an unknown reduction, smoothing outside [0, 1].

    Shape:
        - logits: :math:`(N, C, *)`; target: :math:`(N, *)` or :math:`(N, C, *)`;
          loss: scalar, or :math:`(N, *)` for ``"none"``; dlogits: like logits.

    Example::

        >>> logits = np.random.default_rng(0).standard_normal((4, 10), dtype=np.float32)
        >>> loss, dlogits = cross_entropy(logits, np.array([1, 0, 9, 3]))
    """
    a = check_cross_entropy_args(logits, target, reduction, label_smoothing, ignore_index)
    x = a.logits  # (N, C, S)
    check_out(out, np.shape(logits), x.dtype)
    n, c, s = x.shape
    eps = a.label_smoothing
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        d, lse = _shifted(x, 1)
        logp = d - lse
        if a.probabilities:
            t = (1 - eps) * a.target.astype(np.float64) + eps / c
            count = n * s
            losses = -(t * logp).sum(axis=1)  # (N, S)
        else:
            valid = a.target != a.ignore_index  # (N, S)
            idx = np.where(valid, a.target, 0)[:, None, :]
            # only the target's log-probability (and all of them when smoothing): a -inf logit of
            # another class leaves the loss finite, as in PyTorch
            losses = -(1 - eps) * np.take_along_axis(logp, idx, 1)[:, 0, :]
            if eps > 0:
                losses -= (eps / c) * logp.sum(axis=1)
            losses = np.where(valid, losses, 0.0)
            t = np.zeros(x.shape)
            np.put_along_axis(t, idx, 1 - eps, 1)
            t = (t + eps / c) * valid[:, None, :]
            count = int(valid.sum())
        grad = np.exp(logp) * t.sum(axis=1, keepdims=True) - t
        if a.reduction == "mean":
            # nothing counted: a NaN loss and zero gradients, as PyTorch
            loss = x.dtype.type(losses.sum() / count if count else np.nan)
            grad = grad * (1.0 / count if count else 0.0)
        elif a.reduction == "sum":
            loss = x.dtype.type(losses.sum())
        else:
            loss = losses.astype(x.dtype).reshape(a.shape)
    return loss, _finish(grad.reshape(np.shape(logits)), x.dtype, out)
