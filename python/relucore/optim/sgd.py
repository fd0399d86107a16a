"""Stochastic gradient descent :class:`SGD`."""

from __future__ import annotations

from typing import Any, Dict, Iterable

import numpy as np

from .. import _core
from ..nn import _functions as F
from .optimizer import Optimizer, check_nonnegative

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``.

    For each parameter :math:`\theta` with gradient :math:`g` (step :math:`t`):

    .. math::
        g &\leftarrow g + \lambda \theta \\
        b_t &= \begin{cases} g & t = 1 \\ \mu b_{t-1} + (1 - \tau) g & t > 1 \end{cases} \\
        g &\leftarrow g + \mu b_t \text{ (Nesterov) or } b_t \text{ (momentum } \mu \ne 0) \\
        \theta &\leftarrow \theta - \gamma g

    Args:
        params: parameters, or dicts defining parameter groups.
        lr: :math:`\gamma`, the learning rate. Default: ``1e-3``.
        momentum: :math:`\mu`. Default: ``0``.
        dampening: :math:`\tau`. Default: ``0``.
        weight_decay: :math:`\lambda` (L2 penalty). Default: ``0``.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0). Default: ``False``.

    Example::

        >>> p = nn.Parameter(np.array([1.0, 2.0]))
        >>> opt = optim.SGD([p], lr=0.1, momentum=0.9)
        >>> p.grad = np.array([1.0, -1.0])
        >>> opt.step()
        >>> p.data
        array([0.9, 2.1])
    """

    _ARRAY_STATE = ("momentum_buffer",)

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _check_group(self, group: Dict[str, Any]) -> None:
        check_nonnegative(lr=group["lr"], momentum=group["momentum"], weight_decay=group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")

    def step(self) -> None:
        """Update, in place, every parameter whose ``grad`` is not ``None``. On the native backend
        a group's parameters go to one native call, which computes what the per-parameter NumPy
        operations compute, rounding for rounding; it takes plain float32/float64 arrays with
        gradients of their dtype, and a group with anything else is updated by NumPy."""
        if F.current() is not F.native():
            return super().step()
        for group in self.param_groups:
            self._plain(group)
            mu = group["momentum"]
            items, ps, new = [], [], []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                self._check_grad(p)
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer") if mu != 0 else None
                first = mu != 0 and buf is None
                if first:
                    buf = np.empty_like(p.data)
                    new.append((state, buf))
                items.append((p.data, g, buf, first))
                ps.append(p)
            if not items:
                continue
            if _core.sgd_step(items, group["lr"], mu, group["dampening"], group["weight_decay"], group["nesterov"]):
                for state, buf in new:
                    state["momentum_buffer"] = buf
            else:
                for p in ps:
                    self._update(p, p.grad.astype(p.data.dtype, copy=False), group, self.state[p])

    def _update(self, p, grad, group, state) -> None:
        wd, mu = group["weight_decay"], group["momentum"]
        if wd != 0:
            grad = grad + wd * p.data
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad)
            else:
                buf *= mu
                buf += (1 - group["dampening"]) * grad
            grad = grad + mu * buf if group["nesterov"] else buf
        p.data -= group["lr"] * grad
