"""Plain-NumPy convolution path: im2col/col2im, conv2d, pooling, linear (the oracle and the "numpy" backend).

Same signatures, results and errors as the native functions (docs/api.md, "Convolution path");
semantics are ``torch.nn.functional``'s (unfold/fold, conv2d, max_pool2d with return_indices,
avg_pool2d with ceil_mode=False, linear). Everything is computed in the input dtype (float32 stays
float32, matmuls included); only ``dbias`` is summed in float64 and then rounded. Argument parsing
and every error come from :mod:`relucore._checks`, shared with the native layer.

Written for reading: a kernel tap ``(i, j)`` touches, for every output position ``(oh, ow)``, the
input pixel ``(oh*sh - ph + i*dh, ow*sw - pw + j*dw)``; on the zero-padded input that is one strided
slice (:func:`_tap`), and each function below is a loop over the ``kh * kw`` taps.
"""

from __future__ import annotations

import numpy as np

from .._checks import (
    check_activation,
    check_avg_pool_backward_args,
    check_col2im_args,
    check_conv_args,
    check_conv_backward_args,
    check_im2col_args,
    check_linear_args,
    check_linear_backward_args,
    check_max_pool_backward_args,
    check_pool_args,
)
from .activations import elu, leaky_relu, relu

__all__ = [
    "im2col",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "linear",
    "linear_backward",
]


# --------------------------------------------------------------------------- helpers


def _pad(x, padding, value=0):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _tap(xp, i, j, stride, dilation, out_hw):
    """View of the padded input ``xp`` that kernel tap ``(i, j)`` sees: shape ``(N, C, OH, OW)``."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    r0, c0 = i * dh, j * dw
    return xp[:, :, r0 : r0 + sh * (oh - 1) + 1 : sh, c0 : c0 + sw * (ow - 1) + 1 : sw]


def _im2col(x, kernel, stride, padding, dilation, out_hw):
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = kernel, out_hw
    xp = _pad(x, padding)
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = _tap(xp, i, j, stride, dilation, out_hw)
    return cols.reshape(n, c * kh * kw, oh * ow)


def _col2im(cols, input_shape, kernel, stride, padding, dilation, out_hw):
    n, c, h, w = input_shape
    (kh, kw), (ph, pw) = kernel, padding
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    taps = cols.reshape(n, c, kh, kw, *out_hw)
    for i in range(kh):
        for j in range(kw):
            _tap(xp, i, j, stride, dilation, out_hw)[...] += taps[:, :, i, j]
    return np.ascontiguousarray(xp[:, :, ph : ph + h, pw : pw + w])


def _window_starts(out, stride, padding):
    """First input row (or column) of each output's window; may be negative (padding)."""
    return np.arange(out) * stride - padding


def _avg_divisor(hw, kernel, stride, padding, out_hw, count_include_pad, dtype):
    """PyTorch's divide_factor per output ``(OH, OW)``, in ``dtype``."""
    sizes = []
    for size, k, s, p, o in zip(hw, kernel, stride, padding, out_hw):
        start = _window_starts(o, s, p)
        end = np.minimum(start + k, size + p)          # window inside the padded input
        if count_include_pad:
            sizes.append(end - start)
        else:
            sizes.append(np.minimum(end, size) - np.maximum(start, 0))  # real pixels only
    return np.multiply.outer(sizes[0], sizes[1]).astype(dtype)


def _sum_f64(a, axis):
    return np.sum(a, axis=axis, dtype=np.float64).astype(a.dtype)


# --------------------------------------------------------------------------- im2col / col2im


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    r"""Extract sliding local blocks into columns (``torch.nn.functional.unfold``).

    .. math:: \text{cols}[n, c k_h k_w + i k_w + j, o_h O_W + o_w] =
              x[n, c, o_h s_h - p_h + i d_h, o_w s_w - p_w + j d_w]

    (0 outside the image), with :math:`O_H = \lfloor (H + 2p_h - d_h(k_h - 1) - 1) / s_h \rfloor + 1`.

    Args:
        x: float32 or float64 array :math:`(N, C, H, W)`, any strides.
        kernel_size: int or pair ``(kh, kw)``.
        stride: int or pair. Default: ``1``.
        padding: int or pair of zero padding on both sides. Default: ``0``.
        dilation: int or pair, spacing of kernel taps. Default: ``1``.

    Shape:
        - x: :math:`(N, C, H, W)`; cols: :math:`(N, C k_h k_w, O_H O_W)`.

    Example::

        >>> im2col(np.arange(4.0).reshape(1, 1, 2, 2), 1)
        array([[[0., 1., 2., 3.]]])
    """
    x, k, s, p, d, ohw = check_im2col_args(x, kernel_size, stride, padding, dilation)
    return _im2col(x, k, s, p, d, ohw)


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1):
    r"""Sum columns back into an image (``torch.nn.functional.fold``): the adjoint of :func:`im2col`.

    Overlapping windows are summed and padded positions dropped, so
    :math:`\langle \text{im2col}(x), c \rangle = \langle x, \text{col2im}(c) \rangle`.

    Args:
        cols: float32 or float64 array :math:`(N, C k_h k_w, O_H O_W)`.
        input_shape: ``(N, C, H, W)`` of the image.
        kernel_size, stride, padding, dilation: as in :func:`im2col`. Defaults: ``1``, ``0``, ``1``.

    Shape:
        - cols: :math:`(N, C k_h k_w, O_H O_W)`; x: ``input_shape``.

    Example::

        >>> col2im(np.ones((1, 4, 4)), (1, 1, 3, 3), 2)
        array([[[[1., 2., 1.],
                 [2., 4., 2.],
                 [1., 2., 1.]]]])
    """
    cols, shape, k, s, p, d, ohw = check_col2im_args(cols, input_shape, kernel_size, stride, padding, dilation)
    with np.errstate(all="ignore"):
        return _col2im(cols, shape, k, s, p, d, ohw)


# --------------------------------------------------------------------------- conv2d


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None):
    r"""2-D convolution (cross-correlation) over NCHW images, as ``torch.nn.functional.conv2d``,
    optionally followed by an activation.

    .. math:: y[n, f] = \text{act}\Big(b[f] + \sum_{c' < C/G} \sum_{i, j} w[f, c', i, j] \,
              x[n, g(f) \tfrac{C}{G} + c', o_h s_h - p_h + i d_h, o_w s_w - p_w + j d_w]\Big)

    with :math:`g(f) = \lfloor f G / F \rfloor` the group of filter :math:`f`. Computed as
    ``im2col`` then one matmul per group in ``x.dtype``, then the activation (:func:`relu`,
    :func:`leaky_relu` or :func:`elu` of the result). The native function applies the activation
    as it writes each output element, with the same result as that second step.

    Args:
        x: float32 or float64 array :math:`(N, C, H, W)`.
        weight: filters :math:`(F, C/\text{groups}, k_h, k_w)`, dtype of ``x``.
        bias: optional :math:`(F,)`. Default: ``None``.
        stride: int or pair. Default: ``1``.
        padding: int or pair of zero padding. Default: ``0``.
        dilation: int or pair. Default: ``1``.
        groups: number of channel groups; must divide C and F (``groups = C`` is depthwise). Default: ``1``.
        activation: ``None``, ``"relu"``, ``"leaky_relu"`` or ``("leaky_relu", negative_slope)``
            (slope 0.01 if not given), ``"elu"`` or ``("elu", alpha)`` (alpha 1.0 if not given); the
            spellings of :func:`batch_norm`'s ``activation``. Default: ``None``.

    Shape:
        - x: :math:`(N, C, H, W)`; y: :math:`(N, F, O_H, O_W)`.

    Example::

        >>> conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), np.array([0.5]))
        array([[[[4.5, 4.5],
                 [4.5, 4.5]]]])
        >>> conv2d(np.ones((1, 1, 3, 3)), -np.ones((1, 1, 2, 2)), activation="relu")
        array([[[[0., 0.],
                 [0., 0.]]]])
    """
    a = check_conv_args(x, weight, bias, stride, padding, dilation, groups)
    act, param = check_activation(activation)
    x, w, g = a.x, a.weight, a.groups
    n, c = x.shape[:2]
    f = w.shape[0]
    k = w.shape[1] * w.shape[2] * w.shape[3]            # C/G * kh * kw
    npos = a.out_hw[0] * a.out_hw[1]
    with np.errstate(all="ignore"):
        cols = _im2col(x, a.kernel, a.stride, a.padding, a.dilation, a.out_hw)
        cols = cols.reshape(n, g, k, npos)              # (N, G, C/G*kh*kw, OH*OW)
        y = np.matmul(w.reshape(g, f // g, k), cols)    # (N, G, F/G, OH*OW)
        y = y.reshape(a.out_shape)
        if a.bias is not None:
            y += a.bias.reshape(1, f, 1, 1)
    if act == "relu":
        return relu(y)
    if act == "leaky_relu":
        return leaky_relu(y, param)
    if act == "elu":
        return elu(y, param)
    return y


def conv2d_backward(dy, x, weight, stride=1, padding=0, dilation=1, groups=1, *, compute_dx=True,
                    compute_dweight=True, compute_dbias=True):
    r"""Gradients of :func:`conv2d` with respect to ``x``, ``weight`` and ``bias``.

    .. math::
        dW_g = dY_g \, \text{cols}_g^\top \ (\text{summed over } n), \qquad
        dx = \text{col2im}(W_g^\top dY_g), \qquad db[f] = \sum_{n, o_h, o_w} dy[n, f, o_h, o_w]

    ``dbias`` does not depend on whether the forward call had a bias; it is summed in float64,
    then rounded to ``dy.dtype``. ``dy`` is the gradient with respect to the convolution's own
    output: after a fused ``activation``, pass it through that activation's backward first.

    Args:
        dy: upstream gradient :math:`(N, F, O_H, O_W)`, the shape of the forward output.
        x, weight, stride, padding, dilation, groups: as in the forward call.
        compute_dx: compute ``dx`` (a network's first layer does not need it). Default: ``True``.
        compute_dweight: compute ``dweight``. Default: ``True``.
        compute_dbias: compute ``dbias``. Default: ``True``.

    Returns:
        ``(dx, dweight, dbias)`` with the shapes of ``x``, ``weight`` and :math:`(F,)`; each
        gradient not asked for is ``None`` and is not computed.

    Example::

        >>> dx, dw, db = conv2d_backward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))
        >>> dx[0, 0], dw[0, 0], db
        (array([[1., 2., 1.],
               [2., 4., 2.],
               [1., 2., 1.]]), array([[4., 4.],
               [4., 4.]]), array([4.]))
    """
    a = check_conv_backward_args(dy, x, weight, stride, padding, dilation, groups)
    dy = np.asarray(dy)
    x, w, g = a.x, a.weight, a.groups
    n, c = x.shape[:2]
    f = w.shape[0]
    k = w.shape[1] * w.shape[2] * w.shape[3]
    npos = a.out_hw[0] * a.out_hw[1]
    dx = dweight = dbias = None
    with np.errstate(all="ignore"):
        dyg = dy.reshape(n, g, f // g, npos)
        if compute_dweight:
            # one matmul per group over all images and positions, (F/G, N*L) @ (N*L, K)
            cols = _im2col(x, a.kernel, a.stride, a.padding, a.dilation, a.out_hw).reshape(n, g, k, npos)
            dy_rows = dyg.transpose(1, 2, 0, 3).reshape(g, f // g, n * npos)
            cols_t = cols.transpose(1, 0, 3, 2).reshape(g, n * npos, k)
            dweight = np.ascontiguousarray(np.matmul(dy_rows, cols_t).reshape(w.shape))
        if compute_dx:
            # columns' gradient per image, folded back
            dcols = np.matmul(w.reshape(g, f // g, k).transpose(0, 2, 1), dyg)   # (N, G, K, L)
            dx = _col2im(dcols.reshape(n, c * a.kernel[0] * a.kernel[1], npos), x.shape,
                         a.kernel, a.stride, a.padding, a.dilation, a.out_hw)
        if compute_dbias:
            dbias = _sum_f64(dy, (0, 2, 3))
    return dx, dweight, dbias


# --------------------------------------------------------------------------- pooling


def max_pool2d(x, kernel_size, stride=None, padding=0):
    r"""2-D max pooling with indices, as ``torch.nn.functional.max_pool2d(..., return_indices=True)``.

    Padded positions never win. A NaN in a window wins (propagates); with several NaNs the last
    one's index is returned, and among equal values the first (as PyTorch's CPU kernel:
    ``if val > max or isnan(val): take``). A window of only ``-inf`` returns its first pixel.

    Args:
        x: float32 or float64 array :math:`(N, C, H, W)`.
        kernel_size: int or pair.
        stride: int or pair. Default: ``None`` (= ``kernel_size``).
        padding: int or pair, at most half of ``kernel_size``. Default: ``0``.

    Returns:
        ``(y, indices)``: ``indices`` int64, each the flat index ``h * W + w`` of the maximum
        within its ``(n, c)`` plane.

    Shape:
        - x: :math:`(N, C, H, W)`; y, indices: :math:`(N, C, O_H, O_W)` (dilation 1).

    Example::

        >>> max_pool2d(np.array([[[[1.0, 3.0], [3.0, 2.0]]]]), 2)
        (array([[[[3.]]]]), array([[[[1]]]]))
    """
    x, k, s, p, ohw = check_pool_args(x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    rows = _window_starts(ohw[0], s[0], p[0])
    cols = _window_starts(ohw[1], s[1], p[1])
    # start like PyTorch: value -inf, index of the window's first real pixel
    best = np.full((n, c) + ohw, -np.inf, dtype=x.dtype)
    first = np.maximum(rows, 0)[:, None] * w + np.maximum(cols, 0)[None, :]
    index = np.broadcast_to(first, best.shape).astype(np.int64)
    xp = _pad(x, p)
    for i in range(k[0]):
        r = rows + i
        for j in range(k[1]):
            q = cols + j
            inside = ((r >= 0) & (r < h))[:, None] & ((q >= 0) & (q < w))[None, :]
            v = _tap(xp, i, j, s, (1, 1), ohw)
            take = inside & ((v > best) | np.isnan(v))
            best = np.where(take, v, best)
            index = np.where(take, r[:, None] * w + q[None, :], index)
    return best, index


def max_pool2d_backward(dy, indices, input_shape):
    r"""Gradient of :func:`max_pool2d`: ``dy`` scatter-added to the pixels ``indices`` point at.

    .. math:: dx[n, c].\text{flat}[\text{idx}[n, c, o]] \mathrel{+}= dy[n, c, o]

    (sums where windows overlap and share a maximum).

    Args:
        dy: upstream gradient :math:`(N, C, O_H, O_W)`, float32 or float64.
        indices: the int64 ``indices`` from :func:`max_pool2d` (shape of ``dy``).
        input_shape: ``(N, C, H, W)`` of the forward input.

    Shape:
        - dy, indices: :math:`(N, C, O_H, O_W)`; dx: ``input_shape``.

    Example::

        >>> max_pool2d_backward(np.array([[[[5.0]]]]), np.array([[[[1]]]]), (1, 1, 2, 2))
        array([[[[0., 5.],
                 [0., 0.]]]])
    """
    dy, indices, shape = check_max_pool_backward_args(dy, indices, input_shape)
    n, c, h, w = shape
    dx = np.zeros((n * c, h * w), dtype=dy.dtype)
    planes = np.arange(n * c)[:, None]
    with np.errstate(all="ignore"):
        m = dy.shape[2] * dy.shape[3]
        np.add.at(dx, (planes, indices.reshape(n * c, m)), dy.reshape(n * c, m))
    return dx.reshape(shape)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    r"""2-D average pooling, as ``torch.nn.functional.avg_pool2d`` with ``ceil_mode=False``.

    .. math:: y[n, c, o_h, o_w] = \frac{1}{D} \sum_{i, j} x_{\text{pad}}[n, c, o_h s_h + i, o_w s_w + j]

    summed in ``x.dtype`` in window order, with :math:`D = k_h k_w` if ``count_include_pad``
    else the number of real (unpadded) pixels in the window.

    Args:
        x: float32 or float64 array :math:`(N, C, H, W)`.
        kernel_size: int or pair.
        stride: int or pair. Default: ``None`` (= ``kernel_size``).
        padding: int or pair of zero padding, at most half of ``kernel_size``. Default: ``0``.
        count_include_pad: count padded zeros in the divisor. Default: ``True``.

    Shape:
        - x: :math:`(N, C, H, W)`; y: :math:`(N, C, O_H, O_W)`.

    Example::

        >>> avg_pool2d(np.ones((1, 1, 2, 2)), 2, stride=1, padding=1)[0, 0]
        array([[0.25, 0.5 , 0.25],
               [0.5 , 1.  , 0.5 ],
               [0.25, 0.5 , 0.25]])
    """
    x, k, s, p, ohw = check_pool_args(x, kernel_size, stride, padding)
    xp = _pad(x, p)
    total = np.zeros(x.shape[:2] + ohw, dtype=x.dtype)
    with np.errstate(all="ignore"):
        for i in range(k[0]):
            for j in range(k[1]):
                total += _tap(xp, i, j, s, (1, 1), ohw)
        return total / _avg_divisor(x.shape[2:], k, s, p, ohw, count_include_pad, x.dtype)


def avg_pool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0, count_include_pad=True):
    r"""Gradient of :func:`avg_pool2d`: each ``dy / D`` spread over its window (padding dropped).

    Args:
        dy: upstream gradient :math:`(N, C, O_H, O_W)`, the forward output's shape.
        input_shape: ``(N, C, H, W)`` of the forward input.
        kernel_size, stride, padding, count_include_pad: as in the forward call.
            Defaults: ``None``, ``0``, ``True``.

    Shape:
        - dy: :math:`(N, C, O_H, O_W)`; dx: ``input_shape``.

    Example::

        >>> avg_pool2d_backward(np.ones((1, 1, 1, 1)), (1, 1, 2, 2), 2)
        array([[[[0.25, 0.25],
                 [0.25, 0.25]]]])
    """
    dy, shape, k, s, p, ohw = check_avg_pool_backward_args(dy, input_shape, kernel_size, stride, padding)
    n, c, h, w = shape
    with np.errstate(all="ignore"):
        share = dy / _avg_divisor((h, w), k, s, p, ohw, count_include_pad, dy.dtype)
        dxp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), dtype=dy.dtype)
        for i in range(k[0]):
            for j in range(k[1]):
                _tap(dxp, i, j, s, (1, 1), ohw)[...] += share
    return np.ascontiguousarray(dxp[:, :, p[0] : p[0] + h, p[1] : p[1] + w])


# --------------------------------------------------------------------------- linear


def linear(x, weight, bias=None):
    r"""Affine map over the last axis, as ``torch.nn.functional.linear``.

    .. math:: y = x W^\top + b

    Args:
        x: float32 or float64 array :math:`(*, \text{in})`, at least 1-D.
        weight: :math:`(\text{out}, \text{in})`, dtype of ``x``.
        bias: optional :math:`(\text{out},)`. Default: ``None``.

    Shape:
        - x: :math:`(*, \text{in})`; y: :math:`(*, \text{out})`.

    Example::

        >>> linear(np.array([1.0, 2.0]), np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([0.5, 0.0]))
        array([3.5, 2. ])
    """
    x, weight, bias = check_linear_args(x, weight, bias)
    with np.errstate(all="ignore"):
        y = np.matmul(x, weight.T)
        if bias is not None:
            y = y + bias
    return np.asarray(y, dtype=x.dtype)


def linear_backward(dy, x, weight):
    r"""Gradients of :func:`linear` with respect to ``x``, ``weight`` and ``bias``.

    .. math:: dx = dy\, W, \qquad dW = \sum dy^\top x, \qquad db = \sum dy

    summed over all leading dimensions; ``dbias`` in float64, rounded to ``dy.dtype``.

    Args:
        dy: upstream gradient :math:`(*, \text{out})`.
        x, weight: as in the forward call.

    Returns:
        ``(dx, dweight, dbias)`` with shapes :math:`(*, \text{in})`, :math:`(\text{out}, \text{in})`,
        :math:`(\text{out},)`. The native function returns ``dweight`` in the layout of ``weight``
        when that is the transpose ``W.T`` of a C-contiguous ``(in, out)`` array: ``dweight.T`` is
        then C-contiguous, and ``weight`` is read in place, not copied.

    Example::

        >>> linear_backward(np.array([1.0, 2.0]), np.array([3.0]), np.array([[1.0], [1.0]]))
        (array([3.]), array([[3.],
               [6.]]), array([1., 2.]))
    """
    dy, x, weight = check_linear_backward_args(dy, x, weight)
    out_f, in_f = weight.shape
    rows = int(np.prod(x.shape[:-1], dtype=np.int64))  # leading dims flattened
    dy2 = dy.reshape(rows, out_f)
    x2 = x.reshape(rows, in_f)
    with np.errstate(all="ignore"):
        dx = np.asarray(np.matmul(dy, weight), dtype=x.dtype)
        dweight = np.matmul(dy2.T, x2)
        dbias = _sum_f64(dy2, 0)
    return dx, dweight, dbias
