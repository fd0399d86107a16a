"""Adaptive moment estimation: :class:`Adam` and :class:`AdamW`."""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Tuple

import numpy as np

from .optimizer import Optimizer, check_nonnegative

__all__ = ["Adam", "AdamW"]

_MATH = r"""
    For each parameter :math:`\theta` with gradient :math:`g`, at step :math:`t`:

    .. math::
        {decay}
        m_t &= \beta_1 m_{{t-1}} + (1 - \beta_1) g \\
        v_t &= \beta_2 v_{{t-1}} + (1 - \beta_2) g^2 \\
        \hat v_t &= \max(\hat v_{{t-1}}, v_t) \text{{ with amsgrad, else }} v_t \\
        \theta &\leftarrow \theta - \frac{{\gamma}}{{1 - \beta_1^t}} \,
            \frac{{m_t}}{{\sqrt{{\hat v_t}} / \sqrt{{1 - \beta_2^t}} + \epsilon}}

    Args:
        params: parameters, or dicts defining parameter groups.
        lr: :math:`\gamma`, the learning rate. Default: ``1e-3``.
        betas: :math:`(\beta_1, \beta_2)`. Default: ``(0.9, 0.999)``.
        eps: :math:`\epsilon`. Default: ``1e-8``.
        weight_decay: :math:`\lambda`. Default: ``{wd}``.
        amsgrad: use the running maximum of :math:`v_t` (AMSGrad). Default: ``False``.

    Example::

        >>> p = nn.Parameter(np.array([1.0, 2.0]))
        >>> opt = optim.{name}([p], lr=0.1, weight_decay=0.0)
        >>> p.grad = np.array([3.0, -0.5])
        >>> opt.step()   # the first step moves each element by lr (times the gradient's sign)
        >>> p.data
        array([0.9, 2.1])
"""


class Adam(Optimizer):
    __doc__ = r"""Adam, as ``torch.optim.Adam`` (weight decay as an L2 term added to the gradient).
    """ + _MATH.format(decay=r"g &\leftarrow g + \lambda \theta \\", wd="0", name="Adam")

    _decoupled = False

    _ARRAY_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _check_group(self, group: Dict[str, Any]) -> None:
        check_nonnegative(lr=group["lr"], eps=group["eps"], weight_decay=group["weight_decay"])
        b1, b2 = group["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {group['betas']}")

    def _update(self, p, grad, group, state) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        b1, b2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if self._decoupled:
                p.data *= 1 - lr * wd
            else:
                grad = grad + wd * p.data
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - b1) * (grad - m)  # PyTorch's lerp
        v *= b2
        v += (1 - b2) * grad * grad
        if group["amsgrad"]:
            vmax = state.setdefault("max_exp_avg_sq", np.zeros_like(p.data))
            np.maximum(vmax, v, out=vmax)
            v = vmax
        denom = np.sqrt(v) / math.sqrt(1 - b2**t)
        denom += eps
        p.data -= (lr / (1 - b1**t)) * (m / denom)


class AdamW(Adam):
    __doc__ = r"""AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay
    (:math:`\theta \leftarrow \theta (1 - \gamma \lambda)` before the update, not added to the gradient).
    """ + _MATH.format(decay=r"\theta &\leftarrow \theta (1 - \gamma \lambda) \\", wd="1e-2", name="AdamW")

    _decoupled = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
