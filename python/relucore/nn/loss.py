"""Loss layers: :class:`CrossEntropyLoss` and :class:`MSELoss`.

A loss's ``forward(input, target)`` returns the loss; ``backward(grad=1.0)`` returns the gradient
with respect to ``input`` (scaled by ``grad``, the upstream gradient of the loss), to be passed to
the model's ``backward``.
"""

from __future__ import annotations

import numpy as np

from . import _functions as F
from .module import Module

__all__ = ["CrossEntropyLoss", "MSELoss"]

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
        x = self._input(input, "(*)")
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
        saved = self._take()
        diff = saved[0]
        if self.reduction == "none":  # an array of the losses' dtype (no silent cast)
            return 2 * diff * self._dy(grad, diff.shape, saved, diff.dtype)
        scale = 2.0 * float(grad) / (max(diff.size, 1) if self.reduction == "mean" else 1)
        return diff * diff.dtype.type(scale)


class CrossEntropyLoss(_Loss):
    r"""Softmax cross-entropy between logits and targets, as ``torch.nn.CrossEntropyLoss``.

    With :math:`\log p = \text{log\_softmax}(x)` over the class axis (axis 1; axis 0 for unbatched
    :math:`(C,)` logits) and the target distribution :math:`t' = (1 - \varepsilon) t + \varepsilon / C`
    (:math:`t` one-hot for class indices):

    .. math::
        \ell = -\sum_c t'_c \log p_c

    per position, averaged over the positions not ignored (``"mean"``), summed (``"sum"``) or
    returned per position (``"none"``). The loss and its gradient come from one fused call
    (``relucore.cross_entropy``); :meth:`backward` returns that gradient.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``.
        label_smoothing: :math:`\varepsilon` in :math:`[0, 1]`. Default: ``0.0``.
        ignore_index: a class index that contributes no loss and no gradient. Default: ``-100``.

    Shape:
        - input: :math:`(C)`, :math:`(N, C)` or :math:`(N, C, *)`.
        - target: integer class indices :math:`()`, :math:`(N)` or :math:`(N, *)`; or class
          probabilities shaped like ``input``, with its dtype.
        - output: a float; :math:`(N, *)` for ``"none"``.

    Example::

        >>> loss_fn = nn.CrossEntropyLoss()
        >>> loss_fn(np.zeros((2, 4)), np.array([1, 3]))      # log(4)
        1.3862943611198906
        >>> loss_fn.backward()                                 # (softmax - one_hot) / N
        array([[ 0.125, -0.375,  0.125,  0.125],
               [ 0.125,  0.125,  0.125, -0.375]])
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__(reduction)
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)

    def forward(self, input, target):
        x = self._input(input, "(C), (N, C) or (N, C, *)", min_ndim=1)
        loss, dlogits = self._kernel(F.cross_entropy, x, target, reduction=self.reduction,
                                     label_smoothing=self.label_smoothing, ignore_index=self.ignore_index)
        self._keep(dlogits, np.shape(loss))
        return loss if self.reduction == "none" else float(loss)

    def backward(self, grad=1.0):
        """The gradient with respect to the logits, times ``grad`` (the loss's upstream gradient: a
        number, or an array shaped like the loss for ``"none"``)."""
        saved = dlogits, loss_shape = self._take()
        if self.reduction != "none" or not loss_shape:
            g = float(grad)
            return dlogits if g == 1.0 else dlogits * dlogits.dtype.type(g)
        g = self._dy(grad, loss_shape, saved, dlogits.dtype)  # the losses' dtype (no silent cast)
        return dlogits * np.expand_dims(g, 1)  # the class axis

    def extra_repr(self) -> str:
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        return ", ".join(parts)
