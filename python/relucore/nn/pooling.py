"""Pooling layers :class:`MaxPool2d` and :class:`AvgPool2d`."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _checks as C
from .. import _core
from ..activations import _c
from . import _functions as F
from .conv import IntOrPair, pair
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d"]

#: windows of at most this many positions keep one byte per output for backward
MAX_POSITIONS = 255


def _window_origins(shape, kernel_size, stride, padding):
    """Each output's window origin (first row, first column), broadcast over ``shape``'s planes."""
    oh, ow = shape[2], shape[3]
    rows = np.arange(oh, dtype=np.int64)[:, None] * stride[0] - padding[0]
    cols = np.arange(ow, dtype=np.int64)[None, :] * stride[1] - padding[1]
    return rows, cols


def max_pool_kept(x, kernel_size, stride, padding) -> Tuple[np.ndarray, np.ndarray]:
    """``(y, kept)``: the backend's ``max_pool2d(x, ...)`` output and what backward needs. On the
    native backend each maximum's position ``i * kw + j`` in its window as uint8 (windows of at most
    :data:`MAX_POSITIONS` positions); otherwise the backend's int64 ``indices``, as it returns them
    (converting them would add work to the NumPy backend that a plain NumPy layer does not do)."""
    if kernel_size[0] * kernel_size[1] > MAX_POSITIONS or F.current() is not F.native():
        return F.max_pool2d(x, kernel_size, stride, padding)
    x, k, s, p, _ = C.check_pool_args(x, kernel_size, stride, padding)
    return _core.max_pool2d_positions(_c(x), k[0], k[1], s[0], s[1], p[0], p[1])


def max_pool_kept_backward(dy, kept, input_shape, kernel_size, stride, padding) -> np.ndarray:
    """The backend's ``max_pool2d_backward`` for what :func:`max_pool_kept` returned (on any
    backend: positions kept natively are converted to indices for another one)."""
    if kept.dtype == np.int64:
        return F.max_pool2d_backward(dy, kept, input_shape)
    if F.current() is F.native():
        dy = C.check_4d("dy", C.check_float("dy", dy))
        (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
        dx = _core.max_pool2d_positions_backward(_c(dy), kept, *input_shape, kh, kw, sh, sw, ph, pw)
        if dx is None:
            raise ValueError("the kept window positions do not fit the input (was the cache changed?)")
        return dx
    rows, cols = _window_origins(kept.shape, kernel_size, stride, padding)
    pos = kept.astype(np.int64)
    indices = (rows + pos // kernel_size[1]) * input_shape[3] + cols + pos % kernel_size[1]
    return F.max_pool2d_backward(dy, indices, input_shape)


def poolable(m) -> bool:
    """Whether ``m`` can run in the sweep of a batch norm and activation before it (training): a
    MaxPool2d (exactly) of at most :data:`MAX_POSITIONS` window positions."""
    return type(m) is MaxPool2d and m.kernel_size[0] * m.kernel_size[1] <= MAX_POSITIONS


class _Pool2d(Module):
    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0) -> None:
        super().__init__()
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)

    def _check(self, x):
        return self._input(x, "(N, C, H, W)", (4,))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    r"""2-D max pooling over NCHW images; backward keeps one byte per output: which window
    position holds the maximum (the int64 index of each maximum for windows of more than 255
    positions, and on the numpy backend).

    .. math::
        y[n, c, h, w] = \max_{i < k_h, j < k_w} x[n, c, s_h h - p_h + i, s_w w - p_w + j]

    (padding is :math:`-\infty`).

    Args:
        kernel_size: window size, int or pair.
        stride: int or pair. Default: ``kernel_size``.
        padding: implicit :math:`-\infty` padding on each side (at most half the window). Default: ``0``.

    Shape:
        - Input: :math:`(N, C, H_{in}, W_{in})`.
        - Output: :math:`(N, C, H_{out}, W_{out})`,
          :math:`H_{out} = \lfloor (H_{in} + 2p_h - k_h) / s_h \rfloor + 1`, likewise :math:`W_{out}`.

    Example::

        >>> nn.MaxPool2d(2)(np.zeros((1, 3, 8, 8), np.float32)).shape
        (1, 3, 4, 4)
    """

    def forward(self, x):
        x = self._check(x)
        y, kept = self._kernel(max_pool_kept, x, self.kernel_size, self.stride, self.padding)
        self._keep(kept, x.shape, x.dtype)
        return y

    def backward(self, dy):
        saved = kept, x_shape, dtype = self._take()
        dy = self._dy(dy, kept.shape, saved, dtype)
        return self._kernel(max_pool_kept_backward, dy, kept, x_shape, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    r"""2-D average pooling over NCHW images.

    .. math::
        y[n, c, h, w] = \frac{1}{D} \sum_{i < k_h, j < k_w} x[n, c, s_h h - p_h + i, s_w w - p_w + j]

    with :math:`D = k_h k_w`, or the number of taps inside the image when ``count_include_pad`` is
    ``False``.

    Args:
        kernel_size: window size, int or pair.
        stride: int or pair. Default: ``kernel_size``.
        padding: implicit zero padding on each side (at most half the window). Default: ``0``.
        count_include_pad: count padded zeros in :math:`D`. Default: ``True``.

    Shape:
        - Input: :math:`(N, C, H_{in}, W_{in})`; Output: :math:`(N, C, H_{out}, W_{out})` as for
          :class:`MaxPool2d`.

    Example::

        >>> nn.AvgPool2d(2)(np.ones((1, 3, 8, 8), np.float32))[0, 0, 0]
        array([1., 1., 1., 1.], dtype=float32)
    """

    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def _args(self):
        return self.kernel_size, self.stride, self.padding, self.count_include_pad

    def forward(self, x):
        x = self._check(x)
        y = self._kernel(F.avg_pool2d, x, *self._args())
        self._keep(x.shape, y.shape, y.dtype)
        return y

    def backward(self, dy):
        saved = x_shape, y_shape, dtype = self._take()
        return F.avg_pool2d_backward(self._dy(dy, y_shape, saved, dtype), x_shape, *self._args())

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.count_include_pad else s + ", count_include_pad=False"
