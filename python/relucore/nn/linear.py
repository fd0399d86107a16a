"""The fully connected layer :class:`Linear`."""

from __future__ import annotations

import numpy as np

from .. import _core
from . import _functions as F
from . import init
from .module import Module, check_int, float_dtype, plain

__all__ = ["Linear"]


class Linear(Module):
    r"""Applies an affine map to the last axis: :math:`y = x W^T + b`.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias. Default: ``True``.
        dtype: float32 or float64. Default: ``np.float32``.
        rng: :class:`numpy.random.Generator` for the initial values, or ``None`` for the default
            generator (:func:`relucore.nn.manual_seed`). Default: ``None``.

    Attributes:
        weight: :math:`(\text{out\_features}, \text{in\_features})`, initialised from
            :math:`\mathcal{U}(-k, k)`, :math:`k = 1/\sqrt{\text{in\_features}}` (PyTorch's
            kaiming_uniform with ``a=sqrt(5)``).
        bias: :math:`(\text{out\_features},)`, from :math:`\mathcal{U}(-k, k)`.

    Shape:
        - Input: :math:`(*, H_{in})`, :math:`H_{in} = \text{in\_features}`.
        - Output: :math:`(*, H_{out})`, :math:`H_{out} = \text{out\_features}`.

    Example::

        >>> m = nn.Linear(20, 30)
        >>> m(np.zeros((128, 20), np.float32)).shape
        (128, 30)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype=np.float32,
                 rng=None) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, 0)
        self.out_features = check_int("out_features", out_features, 0)
        w, b = init.layer_parameters((self.out_features, self.in_features), bias, float_dtype(dtype), rng,
                                     type(self).__name__)
        self.weight = w
        self.register_parameter("bias", b)

    def _direct(self, x, w, b) -> bool:
        """Whether a 2-D ``x``, ``w`` and ``b`` can go to the native kernels without the argument
        checks (:meth:`Module._checked`)."""
        return plain(x) and x.ndim == 2 and self._checked(x, w, b)

    def forward(self, x):
        w = self.weight.data
        b = None if self.bias is None else self.bias.data
        if self._direct(x, w, b):
            y = _core.linear(x, False, w, False, b)
            self._keep(x)
            return y
        x = self._input(x, f"(*, {self.in_features})", min_ndim=1, dtype=self.weight.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self._label()}: expected input of shape (*, {self.in_features}), got {x.shape}")
        y = self._kernel(F.linear, x, w, b)
        self._keep(x)
        if y.size:
            self._remember(x, w, b)
        return y

    def backward(self, dy):
        saved = self._take()
        x = saved[0]
        w = self.weight.data
        if (plain(dy) and dy.dtype == x.dtype and dy.shape == x.shape[:-1] + (self.out_features,)
                and self._direct(x, w, None if self.bias is None else self.bias.data)):
            dx, dw, db = _core.linear_backward(dy, x, False, w, False)
        else:
            dy = self._dy(dy, x.shape[:-1] + (self.out_features,), saved, x.dtype)
            dx, dw, db = F.linear_backward(dy, x, w)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
