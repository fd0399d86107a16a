"""Plain-NumPy batch normalization, optionally fused with its activation.

Same signatures, return conventions and errors as :mod:`relucore.norm`. Statistics and every
intermediate are computed in float64 and the results rounded to the input dtype once, so this is
the accuracy yardstick for the native kernels. Results are computed into fresh arrays first, so
``out=`` may alias any input.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_batch_norm_args, check_batch_norm_backward_args, check_out

__all__ = ["batch_norm", "batch_norm_backward"]


def _axes(x: np.ndarray) -> tuple:
    """Every axis but the channel axis 1."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x: np.ndarray, default: float) -> np.ndarray:
    """A (C,) vector (or ``default`` everywhere for None) in float64, shaped to broadcast over x."""
    c = x.shape[1]
    v = np.full(c, default) if v is None else np.asarray(v, dtype=np.float64)
    return v.reshape((1, c) + (1,) * (x.ndim - 2))


def _activate(z: np.ndarray, act, param: float) -> np.ndarray:
    if act == "relu":
        return np.where(z < 0, 0.0, z)
    if act == "leaky_relu":
        return np.where(z > 0, z, z * param)
    if act == "elu":
        with np.errstate(over="ignore"):
            return np.where(z <= 0, param * np.expm1(np.minimum(z, 0)), z)
    return z


def _derivative(z: np.ndarray, act, param: float) -> np.ndarray:
    """d act / dz; NaN ``z`` passes the gradient as in the activations' backward functions."""
    if act == "relu":
        return np.where(z <= 0, 0.0, 1.0)
    if act == "leaky_relu":
        return np.where(z > 0, 1.0, param)
    if act == "elu":
        return np.where(z <= 0, param * np.exp(np.minimum(z, 0)), 1.0)
    return np.ones_like(z)


def _invert(y: np.ndarray, act, param: float) -> np.ndarray:
    """The pre-activation z with act(z) = y (an invertible activation)."""
    if act == "leaky_relu":
        return np.where(y > 0, y, y / param)
    if act == "elu":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y > 0, y, np.log1p(y / param))
    return y


def _counts(y: np.ndarray) -> np.ndarray:
    return np.asarray(np.count_nonzero(y > 0, axis=_axes(y)), dtype=np.int64).reshape(y.shape[1])


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5, *, activation=None, out=None, return_counts=False, num_batches_tracked=None):
    r"""Batch normalization over the channel axis 1, optionally followed by an activation.

    .. math::
        y = \text{act}\left(\frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \cdot \gamma + \beta\right)

    In training, :math:`\mu` and :math:`\sigma^2` are the mean and biased variance over every axis but
    the channel axis, and the running buffers are updated in place as PyTorch does:
    ``running = (1 - m) * running + m * batch`` with the *unbiased* batch variance, where ``m`` is
    ``momentum``, or ``1 / num_batches_tracked`` (a cumulative average) for ``momentum=None``. In
    evaluation, :math:`\mu` and :math:`\sigma^2` are the running buffers and nothing is updated.

    Args:
        x: float32 or float64 array :math:`(N, C)` or :math:`(N, C, *)` with 1 to 3 spatial dims.
        running_mean: :math:`(C,)` array of x's dtype, updated in place in training; may be ``None``
            (with ``running_var``) in training.
        running_var: :math:`(C,)` array, likewise.
        weight: :math:`\gamma`, :math:`(C,)` or ``None`` for ones. Default: ``None``.
        bias: :math:`\beta`, :math:`(C,)` or ``None`` for zeros. Default: ``None``.
        training: use batch statistics and update the running buffers. Default: ``False``.
        momentum: the running buffers' update factor, or ``None`` for a cumulative average.
            Default: ``0.1``.
        eps: added to the variance. Default: ``1e-5``.
        activation: ``None``, ``"relu"``, ``("leaky_relu", slope)`` or ``("elu", alpha)`` (a name
            alone takes PyTorch's default 0.01 or 1.0), applied in the same pass. Default: ``None``.
        out: optional array for y (may be ``x``). Default: ``None``.
        return_counts: also return the int64 number of ``y > 0`` per channel (the active units
            after a ReLU). Default: ``False``.
        num_batches_tracked: 0-d int64 array counting the training batches, incremented in place in
            training (as ``torch.nn.BatchNorm*d`` does); required for ``momentum=None``.
            Default: ``None``.

    Returns:
        ``(y, save_mean, save_invstd)`` (and ``counts`` if asked): the mean and
        :math:`1/\sqrt{\sigma^2 + \epsilon}` that were used (the batch's in training, the running
        buffers' in evaluation), for :func:`batch_norm_backward`.

    Raises:
        ValueError: a training batch with one value per channel (as PyTorch), shapes that do not
            match, read-only running buffers in training.

    Shape:
        - x: :math:`(N, C, *)`; y: same; save_mean, save_invstd, counts: :math:`(C,)`.

    Example::

        >>> x = np.random.default_rng(0).standard_normal((8, 3, 4, 4), dtype=np.float32)
        >>> rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
        >>> y, mean, invstd = batch_norm(x, rm, rv, training=True, activation="relu")
    """
    a = check_batch_norm_args(x, running_mean, running_var, weight, bias, training, momentum, eps,
                              activation, num_batches_tracked)
    x = a.x
    check_out(out, x.shape, x.dtype)
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite x gives NaN statistics, as in PyTorch
        return _batch_norm(a, x, xd, training, out, return_counts, num_batches_tracked)


def _batch_norm(a, x, xd, training, out, return_counts, num_batches_tracked):
    c = x.shape[1]
    n = x.size // c if c else 0
    if training:
        # an empty batch normalizes nothing and leaves the running buffers alone
        mean = xd.mean(axis=_axes(x)) if n else np.zeros(c)
        var = xd.var(axis=_axes(x)) if n else np.zeros(c)
        if num_batches_tracked is not None:
            num_batches_tracked += 1
        if a.running_mean is not None and n:
            m = 1.0 / float(num_batches_tracked) if a.momentum is None else a.momentum
            a.running_mean[...] = (1 - m) * a.running_mean + m * mean
            a.running_var[...] = (1 - m) * a.running_var + m * var * (n / (n - 1))
    else:
        mean = a.running_mean.astype(np.float64)
        var = a.running_var.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        invstd = 1.0 / np.sqrt(var + a.eps)
    z = (xd - _per_channel(mean, x, 0)) * _per_channel(invstd, x, 0) * _per_channel(a.weight, x, 1)
    y = _activate(z + _per_channel(a.bias, x, 0), a.act, a.param).astype(x.dtype)
    result = (y, mean.astype(x.dtype), invstd.astype(x.dtype))
    if return_counts:
        result += (_counts(y),)
    if out is not None:
        np.copyto(out, y)
        result = (out,) + result[1:]
    return result


def batch_norm_backward(dy, x, weight, save_mean, save_invstd, *, bias=None, activation=None, y=None,
                        training=True, out=None):
    r"""Gradients of :func:`batch_norm` (with its fused activation) for the upstream gradient ``dy``.

    With :math:`\hat x = (x - \mu) \sigma^{-1}`, :math:`z = \gamma \hat x + \beta` and
    :math:`g = dy \cdot \text{act}'(z)`:

    .. math::
        d\beta = \sum g, \quad d\gamma = \sum g \hat x, \quad
        dx = \gamma \sigma^{-1} \left(g - \frac{d\beta}{n} - \hat x \frac{d\gamma}{n}\right)

    (sums over every axis but the channel axis, :math:`n` values each). In evaluation
    (``training=False``) the statistics are constants and :math:`dx = \gamma \sigma^{-1} g`.

    Memory-saving form (in the spirit of In-Place Activated BatchNorm): pass ``x=None`` and the
    forward output ``y`` instead; z is recovered by inverting the activation and
    :math:`\hat x = (z - \beta) / \gamma`. That needs an invertible activation (none,
    ``("leaky_relu", slope > 0)``, ``("elu", alpha > 0)``) and a weight without zeros; plain ReLU is
    a ValueError. ELU outputs rounded to exactly ``-alpha`` cannot be inverted (their gradient
    is not finite).

    Args:
        dy: upstream gradient, shaped like x.
        x: the forward input, or ``None`` with ``y``.
        weight: the forward's :math:`\gamma` (or ``None`` for ones).
        save_mean: the forward's ``save_mean``.
        save_invstd: the forward's ``save_invstd``.
        bias: the forward's :math:`\beta` (or ``None`` for zeros); needed to recompute ``z`` with
            an activation, or to invert ``y``. Default: ``None``.
        activation: the forward's activation. Default: ``None``.
        y: the forward output, used only when ``x`` is ``None``. Default: ``None``.
        training: whether the forward used batch statistics. Default: ``True``.
        out: optional array for dx (may be ``dy``, ``x`` or ``y``). Default: ``None``.

    Returns:
        ``(dx, dweight, dbias)``; dweight and dbias are computed even when ``weight`` is ``None``.

    Shape:
        - dy, x, y: :math:`(N, C, *)`; dx: same; dweight, dbias: :math:`(C,)`.

    Example::

        >>> y, mean, invstd = batch_norm(x, None, None, training=True, activation="relu")
        >>> dx, dw, db = batch_norm_backward(np.ones_like(y), x, None, mean, invstd,
        ...                                  activation="relu")
    """
    a = check_batch_norm_backward_args(dy, x, weight, save_mean, save_invstd, bias, activation, y)
    dy = a.dy
    check_out(out, dy.shape, dy.dtype)
    mean = _per_channel(a.save_mean, dy, 0)
    invstd = _per_channel(a.save_invstd, dy, 0)
    w = _per_channel(a.weight, dy, 1)
    b = _per_channel(a.bias, dy, 0)
    if a.x is not None:
        xhat = (a.x.astype(np.float64) - mean) * invstd
        z = xhat * w + b
    else:
        z = _invert(a.y.astype(np.float64), a.act, a.param)
        xhat = (z - b) / w
    g = dy.astype(np.float64) * _derivative(z, a.act, a.param)
    axes = _axes(dy)
    dbias = g.sum(axis=axes)
    with np.errstate(invalid="ignore"):
        dweight = (g * xhat).sum(axis=axes)
    if training:
        n = max(dy.size // dy.shape[1], 1) if dy.shape[1] else 1
        dx = w * invstd * (g - _per_channel(dbias, dy, 0) / n - xhat * _per_channel(dweight, dy, 0) / n)
    else:
        dx = w * invstd * g
    dx = dx.astype(dy.dtype)
    if out is not None:
        np.copyto(out, dx)
        dx = out
    return dx, dweight.astype(dy.dtype), dbias.astype(dy.dtype)
