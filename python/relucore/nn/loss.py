"""Loss layers: :class:`MSELoss`.

A loss's ``forward(input, target)`` returns the loss; ``backward(grad=1.0)`` returns the gradient
with respect to ``input`` (scaled by ``grad``, the upstream gradient of the loss), to be passed to
the model's ``backward``.
"""

from __future__ import annotations

import numpy as np

from .module import Module

__all__ = ["MSELoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    r"""Mean squared error between ``input`` and ``target``.

    .. math::
        \ell = \frac{1}{n} \sum_i (x_i - t_i)^2 \quad (\text{reduction="mean"})

    ``"sum"`` drops the :math:`1/n`; ``"none"`` returns the elementwise :math:`(x_i - t_i)^2`.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``.

    Shape:
        - input: :math:`(*)`; target: same shape; output: a float (an array like input for ``"none"``).

    Example::

        >>> loss_fn = nn.MSELoss()
        >>> loss_fn(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
        5.0
        >>> loss_fn.backward()
        array([1., 3.])
    """

    def forward(self, input, target):
        x = self._input(input, range(0, 33), "(*)")
        t = np.asarray(target)
        if t.shape != x.shape:
            raise ValueError(f"{self._label()}: target shape {t.shape} differs from input shape {x.shape}")
        diff = x - t.astype(x.dtype, copy=False)
        self._keep(diff)
        sq = diff * diff
        if self.reduction == "none":
            return sq
        total = sq.sum(dtype=np.float64)
        return float(total / max(sq.size, 1)) if self.reduction == "mean" else float(total)

    def backward(self, grad=1.0):
        (diff,) = self._take()
        if self.reduction == "none":
            return 2 * diff * self._dy(grad, diff.shape)
        scale = 2.0 * float(grad) / (max(diff.size, 1) if self.reduction == "mean" else 1)
        return diff * diff.dtype.type(scale)
