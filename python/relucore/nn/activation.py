"""Activation layers: ReLU, ReLU6, LeakyReLU, PReLU, ELU, Sigmoid, Tanh, Softmax and LogSoftmax.

ReLU, ReLU6 and LeakyReLU keep only the 1-bit mask of their input's sign for backward (32x less
memory than float32 ``x``); Sigmoid, Tanh, Softmax and LogSoftmax keep their output, ELU and PReLU
their input.
"""

from __future__ import annotations

import numpy as np

from . import _functions as F
from .module import Module, Parameter, check_int, float_dtype

__all__ = ["ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


def _real(name: str, v) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    return float(v)


class _Elementwise(Module):
    """An activation that keeps one thing for backward (a mask, its input or its output) with the
    output's shape."""

    def _finish(self, y, kept):
        self._keep(kept, y.shape, y.dtype)
        return y

    def _grad(self, dy):
        saved = self._take()
        return saved[0], self._dy(dy, saved[1], saved, saved[2])


class ReLU(_Elementwise):
    r"""Applies the rectified linear unit elementwise: :math:`\text{ReLU}(x) = \max(0, x)`.

    Backward keeps only the bit mask of ``x > 0``, unless ``grad_at_zero`` is not 0: the mask does
    not record ``x == 0``, so the input is kept instead.

    Args:
        grad_at_zero: the derivative used where ``x == 0`` exactly. Default: ``0.0`` (PyTorch's).

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> nn.ReLU()(np.array([-1.0, 0.0, 2.0]))
        array([0., 0., 2.])
    """

    def __init__(self, grad_at_zero: float = 0.0) -> None:
        super().__init__()
        self.grad_at_zero = _real("grad_at_zero", grad_at_zero)

    def forward(self, x):
        if self.grad_at_zero == 0:
            y, mask = self._kernel(F.relu, x, return_mask=True)
            return self._finish(y, ("mask", mask))
        x = np.asarray(x)
        return self._finish(self._kernel(F.relu, x), ("x", x, self.grad_at_zero))

    def backward(self, dy):
        kept, dy = self._grad(dy)
        if kept[0] == "mask":
            return F.relu_backward(dy, mask=kept[1])
        return F.relu_backward(dy, kept[1], grad_at_zero=kept[2])

    def extra_repr(self) -> str:
        return f"grad_at_zero={self.grad_at_zero}" if self.grad_at_zero else ""


class ReLU6(_Elementwise):
    r"""Applies :math:`\text{ReLU6}(x) = \min(\max(0, x), 6)` elementwise; backward keeps the bit
    mask of ``0 < x < 6``.

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> nn.ReLU6()(np.array([-1.0, 3.0, 8.0]))
        array([0., 3., 6.])
    """

    def forward(self, x):
        y, mask = self._kernel(F.relu6, x, return_mask=True)
        return self._finish(y, mask)

    def backward(self, dy):
        mask, dy = self._grad(dy)
        return F.relu6_backward(dy, mask=mask)


class LeakyReLU(_Elementwise):
    r"""Applies the leaky rectified linear unit elementwise; backward keeps the bit mask of ``x > 0``.

    .. math::
        \text{LeakyReLU}(x) = \begin{cases} x & x > 0 \\ \text{negative\_slope} \cdot x & \text{otherwise} \end{cases}

    Args:
        negative_slope: the slope for :math:`x \le 0`. Default: ``0.01``.

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> nn.LeakyReLU(0.1)(np.array([-1.0, 2.0]))
        array([-0.1,  2. ])
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _real("negative_slope", negative_slope)

    def forward(self, x):
        y, mask = self._kernel(F.leaky_relu, x, self.negative_slope, return_mask=True)
        return self._finish(y, (mask, self.negative_slope))

    def backward(self, dy):
        (mask, slope), dy = self._grad(dy)
        return F.leaky_relu_backward(dy, mask=mask, negative_slope=slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(_Elementwise):
    r"""Applies the exponential linear unit elementwise.

    .. math::
        \text{ELU}(x) = \begin{cases} x & x > 0 \\ \alpha (\exp(x) - 1) & x \le 0 \end{cases}

    Args:
        alpha: :math:`\alpha`. Default: ``1.0``.

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> nn.ELU()(np.array([-1.0, 2.0]))
        array([-0.63212056,  2.        ])
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _real("alpha", alpha)

    def forward(self, x):
        x = np.asarray(x)
        return self._finish(self._kernel(F.elu, x, self.alpha), (x, self.alpha))

    def backward(self, dy):
        (x, alpha), dy = self._grad(dy)
        return F.elu_backward(dy, x, alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class _KeepsOutput(_Elementwise):
    """An activation whose derivative is a function of its output, kept for backward."""

    _functions = ("", "")  # names of the forward and backward kernel functions

    def forward(self, x):
        y = self._kernel(getattr(F, self._functions[0]), x)
        return self._finish(y, y)

    def backward(self, dy):
        y, dy = self._grad(dy)
        return getattr(F, self._functions[1])(dy, y)


class Sigmoid(_KeepsOutput):
    r"""Applies :math:`\sigma(x) = 1 / (1 + \exp(-x))` elementwise; backward keeps the output.

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> nn.Sigmoid()(np.array([0.0]))
        array([0.5])
    """

    _functions = ("sigmoid", "sigmoid_backward")


class Tanh(_KeepsOutput):
    r"""Applies :math:`\tanh(x)` elementwise; backward keeps the output.

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> nn.Tanh()(np.array([0.0]))
        array([0.])
    """

    _functions = ("tanh", "tanh_backward")


class _AlongAxis(_Elementwise):
    """Softmax and log-softmax: an output-keeping activation over one axis ``dim``."""

    _functions = ("", "")

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, -(2**63))

    def forward(self, x):
        y = self._kernel(getattr(F, self._functions[0]), x, self.dim)
        return self._finish(y, (y, self.dim))

    def backward(self, dy):
        (y, dim), dy = self._grad(dy)
        return getattr(F, self._functions[1])(dy, y, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_AlongAxis):
    r"""Applies softmax along ``dim``: :math:`\text{Softmax}(x)_i = \exp(x_i) / \sum_j \exp(x_j)`,
    so each slice is a probability distribution; backward keeps the output.

    Args:
        dim: the axis to normalise. Default: ``-1`` (PyTorch asks for it explicitly).

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> nn.Softmax(dim=1)(np.zeros((2, 4)))
        array([[0.25, 0.25, 0.25, 0.25],
               [0.25, 0.25, 0.25, 0.25]])
    """

    _functions = ("softmax", "softmax_backward")


class LogSoftmax(_AlongAxis):
    r"""Applies :math:`\log(\text{Softmax}(x))` along ``dim``, computed without forming the softmax
    (stable for large logits); backward keeps the output.

    Args:
        dim: the axis to normalise. Default: ``-1`` (PyTorch asks for it explicitly).

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> nn.LogSoftmax(dim=1)(np.zeros((1, 2)))
        array([[-0.69314718, -0.69314718]])
    """

    _functions = ("log_softmax", "log_softmax_backward")


class PReLU(Module):
    r"""Leaky ReLU with a learnt slope, one per channel (axis 1) or one shared.

    .. math::
        \text{PReLU}(x) = \begin{cases} x & x > 0 \\ a \cdot x & \text{otherwise} \end{cases}

    Args:
        num_parameters: number of slopes :math:`a`: 1, or the number of input channels. Default: ``1``.
        init: initial value of every :math:`a`. Default: ``0.25``.
        dtype: float32 or float64. Default: ``np.float32``.

    Attributes:
        weight: the slopes, :math:`(\text{num\_parameters},)`.

    Shape:
        - Input: :math:`(N, C, *)` (or any shape with one shared slope); Output: same.

    Example::

        >>> m = nn.PReLU(3)
        >>> m(np.full((2, 3, 4, 4), -1.0, np.float32))[0, :, 0, 0]
        array([-0.25, -0.25, -0.25], dtype=float32)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype=np.float32) -> None:
        super().__init__()
        self.num_parameters = check_int("num_parameters", num_parameters)
        self.weight = Parameter(np.full(self.num_parameters, _real("init", init)), float_dtype(dtype))

    def forward(self, x):
        x = self._input(x, "(N, C, *)", dtype=self.weight.dtype)
        if self.num_parameters > 1 and (x.ndim < 2 or x.shape[1] != self.num_parameters):
            raise ValueError(f"{self._label()}: expected input of shape (N, {self.num_parameters}, *), "
                             f"got {x.shape}")
        y = self._kernel(F.prelu, x, self.weight.data)
        self._keep(x)
        return y

    def backward(self, dy):
        saved = self._take()
        x = saved[0]
        dx, dw = F.prelu_backward(self._dy(dy, x.shape, saved, x.dtype), x, self.weight.data)
        self.weight.accumulate(dw)
        return dx

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
