"""The 2-D convolution layer :class:`Conv2d`."""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np

from .. import _core
from . import _functions as F
from . import init
from .module import Module, check_int, float_dtype, plain

__all__ = ["Conv2d"]

IntOrPair = Union[int, Tuple[int, int]]


def pair(name: str, v, minimum: int) -> Tuple[int, int]:
    """``v`` (an int or a pair of ints, each >= ``minimum``) as a pair."""
    vs = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(vs) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return tuple(check_int(name, e, minimum) for e in vs)


class Conv2d(Module):
    r"""2-D convolution (cross-correlation) over NCHW images.

    .. math::
        y[n, f] = b[f] + \sum_{c=0}^{C_{in}/G - 1} w[f, c] \star x[n, g(f) \tfrac{C_{in}}{G} + c]

    where :math:`\star` is the 2-D cross-correlation with the stride, padding and dilation given,
    :math:`G` is ``groups`` and :math:`g(f)` the group of filter :math:`f`.

    Args:
        in_channels: channels of the input image.
        out_channels: channels produced (filters).
        kernel_size: int or pair.
        stride: int or pair. Default: ``1``.
        padding: zero padding on each side, int or pair. Default: ``0``.
        dilation: spacing between kernel taps, int or pair. Default: ``1``.
        groups: blocked connections from input to output channels; must divide both. Default: ``1``.
        bias: learn an additive bias. Default: ``True``.
        dtype: float32 or float64. Default: ``np.float32``.
        rng: :class:`numpy.random.Generator` for the initial values, or ``None`` for the default
            generator (:func:`relucore.nn.manual_seed`). Default: ``None``.

    Attributes:
        weight: :math:`(C_{out}, C_{in}/G, k_h, k_w)`, from :math:`\mathcal{U}(-k, k)` with
            :math:`k = 1/\sqrt{C_{in}/G \cdot k_h k_w}` (PyTorch's kaiming_uniform with ``a=sqrt(5)``).
        bias: :math:`(C_{out},)`, from :math:`\mathcal{U}(-k, k)`.

    Shape:
        - Input: :math:`(N, C_{in}, H_{in}, W_{in})`.
        - Output: :math:`(N, C_{out}, H_{out}, W_{out})`, with
          :math:`H_{out} = \lfloor (H_{in} + 2p_h - d_h (k_h - 1) - 1) / s_h \rfloor + 1`, likewise
          :math:`W_{out}`.

    Example::

        >>> m = nn.Conv2d(16, 33, 3, stride=2, padding=1)
        >>> m(np.zeros((20, 16, 50, 100), np.float32)).shape
        (20, 33, 25, 50)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1, bias: bool = True, *,
                 dtype=np.float32, rng=None) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = pair("stride", stride, 1)
        self.padding = pair("padding", padding, 0)
        self.dilation = pair("dilation", dilation, 1)
        self.groups = check_int("groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups = {self.groups} must divide in_channels = {self.in_channels} "
                             f"and out_channels = {self.out_channels}")
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        w, b = init.layer_parameters(shape, bias, float_dtype(dtype), rng, type(self).__name__)
        self.weight = w
        self.register_parameter("bias", b)

    def _geometry(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x):
        return self.forward_activation(x)

    def _direct(self, x, w, b):
        """The native kernels' geometry arguments if ``x``, ``w`` and ``b`` can go to them without
        the argument checks (:meth:`Module._checked`), else None."""
        if not self._checked(x, w, b):
            return None
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        return sh, sw, ph, pw, dh, dw, self.groups

    def forward_activation(self, x, activation=None):
        """The convolution followed by ``activation`` (``None``, ``"relu"`` or ``("leaky_relu",
        slope)`` with ``slope >= 0``) in one call. Backward then takes the activation's derivative
        from the output (its sign is the pre-activation's), so the output is kept too."""
        w = self.weight.data
        b = None if self.bias is None else self.bias.data
        geometry = None if activation is not None else self._direct(x, w, b)
        if geometry is not None:
            y = _core.conv2d(x, w, b, *geometry, 0, 0.0)
            self._keep(x, y.shape, None, None)
            return y
        x = self._input(x, f"(N, {self.in_channels}, H, W)", (4,), channels=self.in_channels,
                        dtype=self.weight.dtype)
        fused = {} if activation is None else {"activation": activation}
        y = self._kernel(F.conv2d, x, w, b, **self._geometry(), **fused)
        self._keep(x, y.shape, activation, None if activation is None else y)
        if y.size:
            self._remember(x, w, b)
        return y

    def _forward_moments(self, x):
        """``(y, sums)``: the forward (no activation), and where the native forward gives them the
        output's per-plane sums as a training batch norm after this layer takes its statistics
        (``BatchNorm2d.forward_activation``'s ``run_sums``), else None."""
        w = self.weight.data
        b = None if self.bias is None else self.bias.data
        geometry = self._direct(x, w, b)
        if geometry is None:
            return self.forward_activation(x), None
        y, sums = _core.conv2d_moments(x, w, b, *geometry)
        self._keep(x, y.shape, None, None)
        return y, sums

    def backward(self, dy, input_grad: bool = True):
        """As :meth:`Module.backward`; ``input_grad=False`` skips the input's gradient (a network's
        first layer does not need it) and returns None."""
        return self._backward(dy, input_grad)

    def _backward(self, dy, input_grad: bool = True, bias_grad=None):
        """:meth:`backward`, with ``bias_grad`` the bias gradient if the layer after this one
        (a batch norm) already summed dy as the convolution would (it is then not summed again)."""
        saved = x, y_shape, activation, y = self._take()
        w = self.weight.data
        has_bias = self.bias is not None
        if activation is not None or not has_bias:
            bias_grad = None
        geometry = None if activation is not None else self._direct(x, w, self.bias.data if has_bias else None)
        if geometry is not None and plain(dy) and dy.shape == y_shape and dy.dtype == x.dtype:
            dx, dw, db = _core.conv2d_backward(dy, x, w, *geometry, bool(input_grad), True,
                                               has_bias and bias_grad is None)
            self.weight.accumulate(dw)
            if has_bias:
                self.bias.accumulate(db if bias_grad is None else bias_grad)
            return dx
        dy = self._dy(dy, y_shape, saved, x.dtype)
        if activation == "relu":
            dy = F.relu_backward(dy, y)
        elif activation is not None:
            dy = F.leaky_relu_backward(dy, y, activation[1])
        dx, dw, db = F.conv2d_backward(dy, x, w, **self._geometry(), compute_dx=bool(input_grad),
                                       compute_dbias=has_bias and bias_grad is None)
        self.weight.accumulate(dw)
        if has_bias:
            self.bias.accumulate(db if bias_grad is None else bias_grad)
        return dx

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
