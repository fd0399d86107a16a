"""Layer functions with the Stanford CS231n assignment conventions, over relucore's public functions.

Each ``*_forward`` returns ``(out, cache)`` and each ``*_backward(dout, cache)`` the gradients of its
inputs, so coursework written against the assignments' ``layers.py``, ``fast_layers.py`` and
``layer_utils.py`` switches to relucore's kernels by changing one import::

    from relucore.layers import *        # instead of: from cs231n.layers import *

Caches are opaque: pass them from a forward to its backward unchanged.

Dtypes: float32 and float64 arrays are computed natively in their own dtype and the results keep it
(float64 in, float64 out). All floating-point arrays of one call must share one dtype; any other
dtype is a ``TypeError`` naming the supported ones. Class labels ``y`` are integer arrays.

The course's naive, im2col and "fast" variants are one function each here (the names are aliases):
``conv_forward_naive``, ``conv_forward_im2col``, ``conv_forward_strides`` and ``conv_forward_fast``
are the same function, as are the ``max_pool_*`` variants and ``batchnorm_backward`` and
``batchnorm_backward_alt``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import numpy as np

import relucore as rc

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "affine_relu_forward", "affine_relu_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward", "layernorm_forward", "layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "conv_forward_fast", "conv_backward_fast", "conv_forward_naive", "conv_backward_naive",
    "conv_forward_im2col", "conv_backward_im2col", "conv_forward_strides", "conv_backward_strides",
    "conv_relu_forward", "conv_relu_backward", "conv_relu_pool_forward", "conv_relu_pool_backward",
    "max_pool_forward_fast", "max_pool_backward_fast", "max_pool_forward_naive", "max_pool_backward_naive",
    "max_pool_forward_reshape", "max_pool_backward_reshape", "max_pool_forward_im2col", "max_pool_backward_im2col",
    "softmax_loss", "svm_loss", "dropout_forward", "dropout_backward",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name} has dtype {a.dtype}; supported: float32 and float64")
    return a


def _param(params: Dict[str, Any], params_name: str, key: str, default: Any = None) -> Any:
    if not isinstance(params, dict):
        raise TypeError(f"{params_name} must be a dict, got {type(params).__name__}")
    if key not in params:
        if default is None:
            raise ValueError(f"{params_name} has no {key!r}")
        return default
    return params[key]


# --------------------------------------------------------------------------- affine and ReLU

def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, Any]:
    r"""Affine (fully connected) layer: :math:`out = x_{2} w + b` where :math:`x_{2}` is ``x``
    flattened to one row per example.

    ``w`` has NumPy's ``(in, out)`` layout; it is handed to :func:`relucore.linear` as the view
    ``w.T`` (PyTorch's ``(out, in)`` layout), which :func:`relucore.linear` and
    :func:`relucore.linear_backward` read in place: no copy of ``w`` is made.

    Args:
        x: input, :math:`(N, d_1, \ldots, d_k)`.
        w: weights, :math:`(D, M)` with :math:`D = d_1 \cdots d_k`.
        b: biases, :math:`(M,)`.

    Returns:
        ``(out, cache)``: out of shape :math:`(N, M)`; cache ``(x, w, b)`` for :func:`affine_backward`.

    Shape:
        - x: :math:`(N, d_1, \ldots, d_k)`; w: :math:`(D, M)`; b: :math:`(M,)`; out: :math:`(N, M)`.

    Example::

        >>> x, w, b = np.random.randn(4, 3, 2), np.random.randn(6, 5), np.zeros(5)
        >>> out, cache = affine_forward(x, w, b)
        >>> out.shape
        (4, 5)
    """
    x2 = _rows(x)
    w = _float("w", w)
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (D, M), got shape {w.shape}")
    return rc.linear(x2, w.T, b), (x, w, b)


def _rows(x) -> np.ndarray:
    x = _float("x", x)
    if x.ndim < 1:
        raise ValueError("x must have a leading batch axis (N, ...), got a 0-d array")
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: N or D may be 0


def affine_backward(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`affine_forward`.

    Args:
        dout: upstream gradient, :math:`(N, M)`.
        cache: the forward's cache.

    Returns:
        ``(dx, dw, db)`` shaped like ``x``, ``w`` and ``b``. ``dw`` is the transposed view of
        :func:`relucore.linear_backward`'s ``(M, D)`` weight gradient, which comes in the layout of
        the ``w.T`` it was given: ``dw`` is C-contiguous, and nothing is copied.

    Shape:
        - dout: :math:`(N, M)`; dx: :math:`(N, d_1, \ldots, d_k)`; dw: :math:`(D, M)`; db: :math:`(M,)`.

    Example::

        >>> out, cache = affine_forward(x, w, b)
        >>> dx, dw, db = affine_backward(np.ones_like(out), cache)
    """
    x, w, _ = cache
    dx2, dwt, db = rc.linear_backward(dout, _rows(x), w.T)
    return dx2.reshape(x.shape), dwt.T, db


def relu_forward(x: np.ndarray) -> Tuple[np.ndarray, Any]:
    r"""Rectified linear unit, :math:`out = \max(x, 0)` elementwise.

    The cache is the 1-bit-per-element mask of ``x > 0`` from
    ``relucore.relu(x, return_mask=True)`` and x's shape, not ``x`` itself: 1/64 of the memory for
    float64.

    Args:
        x: input of any shape.

    Returns:
        ``(out, cache)``: out shaped like x; cache ``(mask, x.shape)``, the packed uint8 mask and the
        shape :func:`relu_backward` checks ``dout`` against.

    Shape:
        - x: :math:`(*)`; out: same; mask: :math:`(\lceil x.size / 8 \rceil,)` uint8.

    Example::

        >>> out, cache = relu_forward(np.array([-1.0, 0.5, 2.0]))
        >>> out
        array([0. , 0.5, 2. ])
    """
    x = _float("x", x)
    out, mask = rc.relu(x, return_mask=True)
    return out, (mask, x.shape)


def relu_backward(dout: np.ndarray, cache: Any) -> np.ndarray:
    r"""Gradient of :func:`relu_forward`: ``dout`` where ``x > 0``, else 0.

    Args:
        dout: upstream gradient, shaped like the forward's x (else a ValueError).
        cache: the forward's cache (the bit mask and x's shape).

    Returns:
        dx, shaped like dout.

    Shape:
        - dout: :math:`(*)`; dx: same.

    Example::

        >>> out, cache = relu_forward(np.array([-1.0, 0.5, 2.0]))
        >>> relu_backward(np.ones(3), cache)
        array([0., 1., 1.])
    """
    mask, shape = cache
    if np.shape(dout) != shape:
        raise ValueError(f"dout must have the forward input's shape {shape}, got {np.shape(dout)}")
    return rc.relu_backward(dout, mask=mask)


def affine_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, Any]:
    r"""An affine layer followed by a ReLU: :func:`affine_forward` then :func:`relu_forward`.

    Args:
        x: input, :math:`(N, d_1, \ldots, d_k)`.
        w: weights, :math:`(D, M)`.
        b: biases, :math:`(M,)`.

    Returns:
        ``(out, cache)`` with out of shape :math:`(N, M)`.

    Shape:
        - as :func:`affine_forward`.

    Example::

        >>> out, cache = affine_relu_forward(np.random.randn(4, 6), np.random.randn(6, 5), np.zeros(5))
        >>> dx, dw, db = affine_relu_backward(np.ones_like(out), cache)
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`affine_relu_forward`.

    Args:
        dout: upstream gradient, :math:`(N, M)`.
        cache: the forward's cache.

    Returns:
        ``(dx, dw, db)`` as :func:`affine_backward`.

    Shape:
        - as :func:`affine_backward`.

    Example::

        >>> dx, dw, db = affine_relu_backward(np.ones_like(out), cache)
    """
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


# --------------------------------------------------------------------------- batch normalization

def _batchnorm(x, gamma, beta, bn_param, ndim, name):
    x = _float("x", x)
    if x.ndim != ndim:
        raise ValueError(f"x must be {ndim}-D for {name}, got shape {x.shape}")
    mode = _param(bn_param, "bn_param", "mode")
    if mode not in ("train", "test"):
        raise ValueError(f"bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    features = x.shape[1]
    rm = bn_param.get("running_mean")
    rv = bn_param.get("running_var")
    rm = np.zeros(features, dtype=x.dtype) if rm is None else np.asarray(rm)
    rv = np.zeros(features, dtype=x.dtype) if rv is None else np.asarray(rv)
    for key, r in (("running_mean", rm), ("running_var", rv)):
        if r.shape != (features,):
            raise ValueError(f"bn_param[{key!r}] must have shape ({features},), got {r.shape}")
    if mode == "train":
        out, mean, invstd = rc.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
        # The course averages the biased batch variance (PyTorch the unbiased one); recover it
        # from invstd = 1 / sqrt(var + eps) in float64.
        var = 1.0 / np.square(invstd.astype(np.float64)) - eps
        rm = (momentum * rm + (1 - momentum) * mean).astype(rm.dtype, copy=False)
        rv = (momentum * rv + (1 - momentum) * var).astype(rv.dtype, copy=False)
    else:
        out, mean, invstd = rc.batch_norm(x, rm.astype(x.dtype, copy=False), rv.astype(x.dtype, copy=False),
                                          gamma, beta, training=False, eps=eps)
    bn_param["running_mean"], bn_param["running_var"] = rm, rv
    return out, (x, gamma, mean, invstd, mode == "train")


def _batchnorm_backward(dout, cache):
    x, gamma, mean, invstd, training = cache
    return rc.batch_norm_backward(dout, x, gamma, mean, invstd, training=training)


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      bn_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""Batch normalization of each feature (column) over the batch.

    .. math:: out = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    In ``'train'`` mode :math:`\mu` and :math:`\sigma^2` are the batch mean and *biased* variance,
    and the running averages in ``bn_param`` become, with the course's convention (not PyTorch's)::

        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var = momentum * running_var + (1 - momentum) * sample_var   # biased

    In ``'test'`` mode the running averages are used and nothing is updated.

    Args:
        x: input, :math:`(N, D)`.
        gamma: scale, :math:`(D,)`.
        beta: shift, :math:`(D,)`.
        bn_param: dict with ``'mode'`` (``'train'`` or ``'test'``, required), ``'eps'``
            (default ``1e-5``), ``'momentum'`` (default ``0.9``), ``'running_mean'`` and
            ``'running_var'`` (:math:`(D,)`; created as zeros of x's dtype when missing). The updated
            running averages are stored back into ``bn_param`` as new arrays.

    Returns:
        ``(out, cache)``: out shaped like x; cache for :func:`batchnorm_backward`.

    Shape:
        - x: :math:`(N, D)`; gamma, beta, running averages: :math:`(D,)`; out: :math:`(N, D)`.

    Example::

        >>> bn_param = {"mode": "train"}
        >>> out, cache = batchnorm_forward(np.random.randn(8, 3), np.ones(3), np.zeros(3), bn_param)
        >>> sorted(bn_param)
        ['mode', 'running_mean', 'running_var']
    """
    return _batchnorm(x, gamma, beta, bn_param, 2, "batchnorm_forward")


def batchnorm_backward(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`batchnorm_forward`.

    With :math:`\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}` and sums over the batch:
    :math:`d\beta = \sum dout`, :math:`d\gamma = \sum dout \cdot \hat x`, and in ``'train'`` mode
    :math:`dx = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}} (dout - \frac{d\beta}{N} - \hat x \frac{d\gamma}{N})`
    (in ``'test'`` mode the statistics are constants: :math:`dx = \gamma\, dout / \sqrt{\sigma^2 + \epsilon}`).
    That is the course's simplified form, so ``batchnorm_backward_alt`` is this same function.

    Args:
        dout: upstream gradient, :math:`(N, D)`.
        cache: the forward's cache.

    Returns:
        ``(dx, dgamma, dbeta)``.

    Shape:
        - dout, dx: :math:`(N, D)`; dgamma, dbeta: :math:`(D,)`.

    Example::

        >>> dx, dgamma, dbeta = batchnorm_backward(np.ones_like(out), cache)
    """
    return _batchnorm_backward(dout, cache)


batchnorm_backward_alt = batchnorm_backward  # the course's name for the simplified-formula backward


def spatial_batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                              bn_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""Batch normalization of each channel over the batch and both spatial axes.

    The same as :func:`batchnorm_forward` with the statistics taken over :math:`N \cdot H \cdot W`
    values per channel (no transposes: relucore normalizes axis 1 directly).

    Args:
        x: input, :math:`(N, C, H, W)`.
        gamma: scale, :math:`(C,)`.
        beta: shift, :math:`(C,)`.
        bn_param: as :func:`batchnorm_forward`; running averages of shape :math:`(C,)`.

    Returns:
        ``(out, cache)``: out shaped like x.

    Shape:
        - x, out: :math:`(N, C, H, W)`; gamma, beta: :math:`(C,)`.

    Example::

        >>> out, cache = spatial_batchnorm_forward(np.random.randn(2, 3, 4, 4), np.ones(3), np.zeros(3),
        ...                                        {"mode": "train"})
    """
    return _batchnorm(x, gamma, beta, bn_param, 4, "spatial_batchnorm_forward")


def spatial_batchnorm_backward(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`spatial_batchnorm_forward`.

    Args:
        dout: upstream gradient, :math:`(N, C, H, W)`.
        cache: the forward's cache.

    Returns:
        ``(dx, dgamma, dbeta)``.

    Shape:
        - dout, dx: :math:`(N, C, H, W)`; dgamma, dbeta: :math:`(C,)`.

    Example::

        >>> dx, dgamma, dbeta = spatial_batchnorm_backward(np.ones_like(out), cache)
    """
    return _batchnorm_backward(dout, cache)


def _scale_shift(x, gamma, beta, shape):
    """gamma and beta as arrays of x's dtype and the given shape (TypeError, ValueError naming them)."""
    out = []
    for name, a in (("gamma", gamma), ("beta", beta)):
        a = _float(name, a)
        if a.dtype != x.dtype:
            raise TypeError(f"{name} has dtype {a.dtype} but x has {x.dtype}: the arrays of one call share one dtype")
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for x of shape {x.shape}, got {a.shape}")
        out.append(a)
    return out


def _normalize_rows(x, gamma, beta, rows, eps, axes, shape):
    """Normalize each of ``rows`` equal slices of x (C order) with batch_norm's statistics, then
    scale and shift by gamma and beta (of ``shape``) broadcast against x."""
    gamma, beta = _scale_shift(x, gamma, beta, shape)
    size = x.size // rows if rows else 0
    if size == 1:
        raise ValueError(f"x of shape {x.shape} leaves one value per normalized group: nothing to normalize")
    x3 = x.reshape(1, rows, size)  # batch_norm's channels are the slices
    xhat, mean, invstd = rc.batch_norm(x3, None, None, training=True, eps=eps)
    xhat = xhat.reshape(x.shape)
    return xhat * gamma + beta, (x3, xhat, gamma, mean, invstd, axes)


def _normalize_rows_backward(dout, cache):
    x3, xhat, gamma, mean, invstd, axes = cache
    dout = _float("dout", dout)
    if dout.dtype != xhat.dtype:
        raise TypeError(f"dout has dtype {dout.dtype} but the forward ran in {xhat.dtype}")
    if dout.shape != xhat.shape:
        raise ValueError(f"dout must have the forward output's shape {xhat.shape}, got {dout.shape}")
    dgamma = np.sum(dout * xhat, axis=axes).reshape(np.shape(gamma))
    dbeta = np.sum(dout, axis=axes).reshape(np.shape(gamma))
    dxhat = (dout * gamma).reshape(x3.shape)
    dx, _, _ = rc.batch_norm_backward(dxhat, x3, None, mean, invstd)
    return dx.reshape(dout.shape), dgamma, dbeta


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      ln_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""Layer normalization: each example (row) normalized over its features, then scaled and shifted
    per feature. The same in training and at test time (no running averages).

    .. math:: out_{ij} = \gamma_j \frac{x_{ij} - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}} + \beta_j

    with :math:`\mu_i`, :math:`\sigma_i^2` the mean and biased variance of row :math:`i`.

    Args:
        x: input, :math:`(N, D)`.
        gamma: scale, :math:`(D,)`.
        beta: shift, :math:`(D,)`.
        ln_param: dict with optional ``'eps'`` (default ``1e-5``).

    Returns:
        ``(out, cache)``: out shaped like x.

    Shape:
        - x, out: :math:`(N, D)`; gamma, beta: :math:`(D,)`.

    Example::

        >>> out, cache = layernorm_forward(np.random.randn(4, 5), np.ones(5), np.zeros(5), {})
        >>> np.allclose(out.mean(axis=1), 0)
        True
    """
    x = _float("x", x)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (N, D) for layernorm_forward, got shape {x.shape}")
    return _normalize_rows(x, gamma, beta, x.shape[0], _param(ln_param, "ln_param", "eps", 1e-5), 0, x.shape[1:])


def layernorm_backward(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`layernorm_forward`.

    Args:
        dout: upstream gradient, :math:`(N, D)`.
        cache: the forward's cache.

    Returns:
        ``(dx, dgamma, dbeta)``.

    Shape:
        - dout, dx: :math:`(N, D)`; dgamma, dbeta: :math:`(D,)`.

    Example::

        >>> dx, dgamma, dbeta = layernorm_backward(np.ones_like(out), cache)
    """
    return _normalize_rows_backward(dout, cache)


def spatial_groupnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, G: int,
                              gn_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""Group normalization: the channels of each example split into ``G`` groups of ``C // G``,
    each group normalized over its channels and positions, then scaled and shifted per channel.

    Args:
        x: input, :math:`(N, C, H, W)`.
        gamma: scale, :math:`(1, C, 1, 1)`.
        beta: shift, :math:`(1, C, 1, 1)`.
        G: number of groups, an int dividing C.
        gn_param: dict with optional ``'eps'`` (default ``1e-5``).

    Returns:
        ``(out, cache)``: out shaped like x.

    Shape:
        - x, out: :math:`(N, C, H, W)`; gamma, beta: :math:`(1, C, 1, 1)`.

    Example::

        >>> out, cache = spatial_groupnorm_forward(np.random.randn(2, 6, 4, 4), np.ones((1, 6, 1, 1)),
        ...                                        np.zeros((1, 6, 1, 1)), 3, {})
    """
    x = _float("x", x)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W) for spatial_groupnorm_forward, got shape {x.shape}")
    if isinstance(G, bool) or not isinstance(G, (int, np.integer)) or G < 1 or x.shape[1] % G:
        raise ValueError(f"G must be an int >= 1 dividing C = {x.shape[1]}, got {G!r}")
    eps = _param(gn_param, "gn_param", "eps", 1e-5)
    return _normalize_rows(x, gamma, beta, x.shape[0] * int(G), eps, (0, 2, 3), (1, x.shape[1], 1, 1))


def spatial_groupnorm_backward(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`spatial_groupnorm_forward`.

    Args:
        dout: upstream gradient, :math:`(N, C, H, W)`.
        cache: the forward's cache.

    Returns:
        ``(dx, dgamma, dbeta)``; dgamma and dbeta shaped like gamma.

    Shape:
        - dout, dx: :math:`(N, C, H, W)`; dgamma, dbeta: :math:`(1, C, 1, 1)`.

    Example::

        >>> dx, dgamma, dbeta = spatial_groupnorm_backward(np.ones_like(out), cache)
    """
    return _normalize_rows_backward(dout, cache)


# --------------------------------------------------------------------------- convolution and pooling

def conv_forward_fast(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                      conv_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""Convolution (cross-correlation, as the course and PyTorch) of ``F`` filters over ``x``.

    :math:`H' = 1 + (H + 2\,pad - HH) // stride` and likewise :math:`W'`.
    Also exported as ``conv_forward_naive``, ``conv_forward_im2col`` and ``conv_forward_strides``.

    Args:
        x: input, :math:`(N, C, H, W)`.
        w: filters, :math:`(F, C, HH, WW)`.
        b: biases, :math:`(F,)`.
        conv_param: dict with ``'stride'`` and ``'pad'`` (zero padding on every side), ints.

    Returns:
        ``(out, cache)``: out of shape :math:`(N, F, H', W')`.

    Shape:
        - x: :math:`(N, C, H, W)`; w: :math:`(F, C, HH, WW)`; b: :math:`(F,)`; out: :math:`(N, F, H', W')`.

    Example::

        >>> x, w, b = np.random.randn(2, 3, 8, 8), np.random.randn(4, 3, 3, 3), np.zeros(4)
        >>> out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        >>> out.shape
        (2, 4, 8, 8)
    """
    stride = _param(conv_param, "conv_param", "stride")
    pad = _param(conv_param, "conv_param", "pad")
    return rc.conv2d(x, w, b, stride, pad), (x, w, stride, pad)


def conv_backward_fast(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`conv_forward_fast`. Also exported as ``conv_backward_naive``,
    ``conv_backward_im2col`` and ``conv_backward_strides``.

    Args:
        dout: upstream gradient, :math:`(N, F, H', W')`.
        cache: the forward's cache.

    Returns:
        ``(dx, dw, db)`` shaped like ``x``, ``w`` and ``b``.

    Shape:
        - dout: :math:`(N, F, H', W')`; dx: :math:`(N, C, H, W)`; dw: :math:`(F, C, HH, WW)`; db: :math:`(F,)`.

    Example::

        >>> dx, dw, db = conv_backward_fast(np.ones_like(out), cache)
    """
    x, w, stride, pad = cache
    return rc.conv2d_backward(dout, x, w, stride, pad)


conv_forward_naive = conv_forward_im2col = conv_forward_strides = conv_forward_fast
conv_backward_naive = conv_backward_im2col = conv_backward_strides = conv_backward_fast


def max_pool_forward_fast(x: np.ndarray, pool_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""Max pooling over ``pool_height`` by ``pool_width`` windows.

    :math:`H' = 1 + (H - pool\_height) // stride` and likewise :math:`W'`. In the backward a tie
    within a window sends the gradient to its first maximum (row-major), as PyTorch.
    Also exported as ``max_pool_forward_naive``, ``max_pool_forward_reshape`` and
    ``max_pool_forward_im2col`` (any window and stride, unlike the course's reshape version).

    Args:
        x: input, :math:`(N, C, H, W)`.
        pool_param: dict with ``'pool_height'``, ``'pool_width'`` and ``'stride'``, ints.

    Returns:
        ``(out, cache)``: out of shape :math:`(N, C, H', W')`; cache the int64 argmax indices and x's shape.

    Shape:
        - x: :math:`(N, C, H, W)`; out: :math:`(N, C, H', W')`.

    Example::

        >>> out, cache = max_pool_forward_fast(np.random.randn(2, 3, 8, 8),
        ...                                    {"pool_height": 2, "pool_width": 2, "stride": 2})
        >>> out.shape
        (2, 3, 4, 4)
    """
    ph = _param(pool_param, "pool_param", "pool_height")
    pw = _param(pool_param, "pool_param", "pool_width")
    stride = _param(pool_param, "pool_param", "stride")
    x = _float("x", x)
    out, indices = rc.max_pool2d(x, (ph, pw), stride)
    return out, (indices, x.shape)


def max_pool_backward_fast(dout: np.ndarray, cache: Any) -> np.ndarray:
    r"""Gradient of :func:`max_pool_forward_fast`: each ``dout`` entry goes to its window's maximum.
    Also exported as ``max_pool_backward_naive``, ``max_pool_backward_reshape`` and
    ``max_pool_backward_im2col``.

    Args:
        dout: upstream gradient, :math:`(N, C, H', W')`.
        cache: the forward's cache.

    Returns:
        dx, shaped like the forward's x.

    Shape:
        - dout: :math:`(N, C, H', W')`; dx: :math:`(N, C, H, W)`.

    Example::

        >>> dx = max_pool_backward_fast(np.ones_like(out), cache)
    """
    indices, shape = cache
    return rc.max_pool2d_backward(dout, indices, shape)


max_pool_forward_naive = max_pool_forward_reshape = max_pool_forward_im2col = max_pool_forward_fast
max_pool_backward_naive = max_pool_backward_reshape = max_pool_backward_im2col = max_pool_backward_fast


def conv_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                      conv_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""A convolution followed by a ReLU.

    Args:
        x: input, :math:`(N, C, H, W)`.
        w: filters, :math:`(F, C, HH, WW)`.
        b: biases, :math:`(F,)`.
        conv_param: as :func:`conv_forward_fast`.

    Returns:
        ``(out, cache)``: out of shape :math:`(N, F, H', W')`.

    Shape:
        - as :func:`conv_forward_fast`.

    Example::

        >>> out, cache = conv_relu_forward(x, w, b, {"stride": 1, "pad": 1})
        >>> dx, dw, db = conv_relu_backward(np.ones_like(out), cache)
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`conv_relu_forward`.

    Args:
        dout: upstream gradient, :math:`(N, F, H', W')`.
        cache: the forward's cache.

    Returns:
        ``(dx, dw, db)``.

    Shape:
        - as :func:`conv_backward_fast`.

    Example::

        >>> dx, dw, db = conv_relu_backward(np.ones_like(out), cache)
    """
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)


def conv_relu_pool_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: Dict[str, Any],
                           pool_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""Convolution, ReLU, then max pooling.

    Args:
        x: input, :math:`(N, C, H, W)`.
        w: filters, :math:`(F, C, HH, WW)`.
        b: biases, :math:`(F,)`.
        conv_param: as :func:`conv_forward_fast`.
        pool_param: as :func:`max_pool_forward_fast`.

    Returns:
        ``(out, cache)``. The cache keeps ``out`` itself (as the course's caches keep their inputs):
        do not change it in place before the backward.

    Shape:
        - x: :math:`(N, C, H, W)`; out: :math:`(N, F, H'', W'')` after the convolution and the pooling.

    Example::

        >>> out, cache = conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1},
        ...                                     {"pool_height": 2, "pool_width": 2, "stride": 2})
        >>> dx, dw, db = conv_relu_pool_backward(np.ones_like(out), cache)
    """
    stride = _param(conv_param, "conv_param", "stride")
    pad = _param(conv_param, "conv_param", "pad")
    a = rc.conv2d(x, w, b, stride, pad, activation="relu")  # the ReLU in the convolution's output pass
    out, pool_cache = max_pool_forward_fast(a, pool_param)
    return out, ((x, w, stride, pad), out, pool_cache)


def conv_relu_pool_backward(dout: np.ndarray, cache: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of :func:`conv_relu_pool_forward`.

    Args:
        dout: upstream gradient, shaped like the forward's out.
        cache: the forward's cache.

    Returns:
        ``(dx, dw, db)``.

    Shape:
        - as :func:`conv_backward_fast`, with dout of the pooled shape.

    Example::

        >>> dx, dw, db = conv_relu_pool_backward(np.ones_like(out), cache)
    """
    conv_cache, out, pool_cache = cache
    # The ReLU's gradient on the pooled side: a window's maximum is > 0 exactly where the ReLU
    # passed its argmax, so masking dout by out > 0 before the scatter gives the same dx as masking
    # the full-size gradient after it, at a quarter of the traffic (2x2 windows).
    return conv_backward_fast(max_pool_backward_fast(rc.relu_backward(dout, out), pool_cache), conv_cache)


# --------------------------------------------------------------------------- losses

def softmax_loss(x: np.ndarray, y: np.ndarray) -> Tuple[np.floating, np.ndarray]:
    r"""Softmax cross-entropy loss, averaged over the batch, and its gradient.

    .. math:: loss = -\frac{1}{N} \sum_i \log \frac{e^{x_{i, y_i}}}{\sum_j e^{x_{ij}}}

    Computed by :func:`relucore.cross_entropy` in one fused, numerically stable pass.

    Args:
        x: scores, :math:`(N, C)`.
        y: integer labels, :math:`(N,)`, each in :math:`[0, C)`.

    Returns:
        ``(loss, dx)``: loss a scalar of x's dtype, dx shaped like x.

    Shape:
        - x, dx: :math:`(N, C)`; y: :math:`(N,)`.

    Example::

        >>> loss, dx = softmax_loss(np.zeros((2, 4)), np.array([0, 3]))
        >>> round(float(loss), 4)
        1.3863
    """
    _loss_args(x, y)
    return rc.cross_entropy(x, y)


def _loss_args(x, y) -> Tuple[np.ndarray, np.ndarray]:
    x = _float("x", x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (N, C), got shape {x.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.shape != x.shape[:1]:
        raise ValueError(f"y must have shape (N,) = ({x.shape[0]},), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= x.shape[1]):
        raise ValueError(f"y must hold class labels in [0, {x.shape[1]}), got values in [{y.min()}, {y.max()}]")
    return x, y


def svm_loss(x: np.ndarray, y: np.ndarray) -> Tuple[np.floating, np.ndarray]:
    r"""Multiclass SVM (hinge) loss with margin 1, averaged over the batch, and its gradient.

    .. math:: loss = \frac{1}{N} \sum_i \sum_{j \ne y_i} \max(0, x_{ij} - x_{i, y_i} + 1)

    Args:
        x: scores, :math:`(N, C)`.
        y: integer labels, :math:`(N,)`, each in :math:`[0, C)`.

    Returns:
        ``(loss, dx)``: loss a scalar of x's dtype, dx shaped like x. At a margin of exactly 0 the
        subgradient 0 is taken.

    Shape:
        - x, dx: :math:`(N, C)`; y: :math:`(N,)`.

    Example::

        >>> loss, dx = svm_loss(np.zeros((2, 4)), np.array([0, 3]))
        >>> float(loss)
        3.0
    """
    x, y = _loss_args(x, y)
    n = x.shape[0]
    rows = np.arange(n)
    margins = x - x[rows, y][:, None] + 1
    margins[rows, y] = 0
    margins, mask = rc.relu(margins, out=margins, return_mask=True)
    loss = x.dtype.type(margins.sum() / n) if n else x.dtype.type(0)
    dx = rc.relu_backward(np.full_like(x, 1.0 / n if n else 0.0), mask=mask)
    dx[rows, y] -= dx.sum(axis=1)
    return loss, dx


# --------------------------------------------------------------------------- dropout

def dropout_forward(x: np.ndarray, dropout_param: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    r"""Inverted dropout. ``p`` is the probability of KEEPING a unit (the current course's
    convention, unlike PyTorch's drop probability).

    In ``'train'`` mode ``mask = (rand(*x.shape) < p) / p`` and ``out = x * mask``, so the expected
    output equals x; in ``'test'`` mode ``out`` is ``x`` itself. With ``'seed'`` the uniform draws
    are those of ``np.random.seed(seed); np.random.rand(*x.shape)`` (the course's masks), taken
    from a private ``RandomState`` so NumPy's global random state is left alone; without it they
    come from NumPy's global random state.

    Args:
        x: input of any shape.
        dropout_param: dict with ``'p'`` (keep probability in :math:`(0, 1]`, required), ``'mode'``
            (``'train'`` or ``'test'``, required) and optionally ``'seed'``.

    Returns:
        ``(out, cache)``: out shaped like x; cache the boolean keep mask and ``p``.

    Shape:
        - x: :math:`(*)`; out: same.

    Example::

        >>> out, cache = dropout_forward(np.ones((100, 100)), {"p": 0.8, "mode": "train", "seed": 0})
        >>> round(float(out.mean()), 1)
        1.0
    """
    x = _float("x", x)
    p = _param(dropout_param, "dropout_param", "p")
    mode = _param(dropout_param, "dropout_param", "mode")
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0 < p <= 1:
        raise ValueError(f"dropout_param['p'] is the keep probability and must be in (0, 1], got {p!r}")
    if mode == "test":
        return x, (None, p)
    seed = dropout_param.get("seed")
    draws = np.random.rand(*x.shape) if seed is None else np.random.RandomState(seed).rand(*x.shape)
    keep = draws < p
    return _scale(x, keep, p), (keep, p)


def _scale(a: np.ndarray, keep: np.ndarray, p: float) -> np.ndarray:
    # a * ((rand < p) / p), the course's product, in a's dtype
    return a * (keep * a.dtype.type(1.0 / p))


def dropout_backward(dout: np.ndarray, cache: Any) -> np.ndarray:
    r"""Gradient of :func:`dropout_forward`: ``dout * mask`` in ``'train'`` mode, ``dout`` in ``'test'``.

    Args:
        dout: upstream gradient, shaped like the forward's x.
        cache: the forward's cache.

    Returns:
        dx, shaped like dout.

    Shape:
        - dout: :math:`(*)`; dx: same.

    Example::

        >>> out, cache = dropout_forward(np.ones(10), {"p": 0.5, "mode": "train", "seed": 1})
        >>> dx = dropout_backward(np.ones(10), cache)
    """
    keep, p = cache
    dout = _float("dout", dout)
    if keep is None:
        return dout
    if dout.shape != keep.shape:
        raise ValueError(f"dout must have the forward's shape {keep.shape}, got {dout.shape}")
    return _scale(dout, keep, p)
