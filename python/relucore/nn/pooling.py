"""Pooling layers :class:`MaxPool2d` and :class:`AvgPool2d`."""

from __future__ import annotations

from typing import Optional

from . import _functions as F
from .conv import IntOrPair, pair
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d"]


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
    r"""2-D max pooling over NCHW images; backward keeps the int64 index of each maximum.

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
        y, indices = self._kernel(F.max_pool2d, x, self.kernel_size, self.stride, self.padding)
        self._keep(indices, x.shape)
        return y

    def backward(self, dy):
        saved = indices, x_shape = self._take()
        return F.max_pool2d_backward(self._dy(dy, indices.shape, saved), indices, x_shape)


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
        self._keep(x.shape, y.shape)
        return y

    def backward(self, dy):
        saved = x_shape, y_shape = self._take()
        return F.avg_pool2d_backward(self._dy(dy, y_shape, saved), x_shape, *self._args())

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.count_include_pad else s + ", count_include_pad=False"
