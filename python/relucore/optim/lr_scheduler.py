"""Learning-rate schedules over an optimizer's parameter groups: :class:`StepLR` and
:class:`CosineAnnealingLR` (PyTorch's update rules, step for step)."""

from __future__ import annotations

import math
from typing import Any, Dict, List

from ..nn.module import check_int
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base class: sets each group's ``"lr"`` at construction (epoch 0) and at every :meth:`step`.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        last_epoch: the index of the last epoch, to resume a schedule (the groups then need their
            ``"initial_lr"``). Default: ``-1`` (start).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a relucore.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param_groups[{i}] has no 'initial_lr' to resume the schedule from")
        self.base_lrs: List[float] = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial = True  # the constructor's step (CosineAnnealingLR keeps the current rates)
        self.step()
        self._initial = False

    def get_lr(self) -> List[float]:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the groups' learning rates."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> List[float]:
        """The learning rates the last :meth:`step` set."""
        return list(self._last_lr)

    def state_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    r"""Multiplies each group's learning rate by ``gamma`` every ``step_size`` epochs:
    :math:`\gamma_e = \gamma_0 \cdot \text{gamma}^{\lfloor e / \text{step\_size} \rfloor}`.

    Args:
        optimizer: the optimizer.
        step_size: epochs between decays.
        gamma: the decay factor. Default: ``0.1``.
        last_epoch: to resume a schedule. Default: ``-1``.

    Example::

        >>> opt = optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1)
        >>> sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
        >>> for epoch in range(4):
        ...     opt.step()     # an epoch of training
        ...     sched.step()
        >>> sched.get_last_lr()
        [0.0010000000000000002]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size, self.gamma = check_int("step_size", step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:  # a resumed first step may decay
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from each group's initial learning rate to ``eta_min`` over ``T_max`` epochs
    (then back up, periodically), with PyTorch's recursive update:

    .. math::
        \gamma_e = \eta_{min} + \frac{1}{2} (\gamma_0 - \eta_{min})
            \left(1 + \cos\left(\frac{e \pi}{T_{max}}\right)\right)

    Args:
        optimizer: the optimizer.
        T_max: epochs of one half period.
        eta_min: the minimum learning rate. Default: ``0``.
        last_epoch: to resume a schedule. Default: ``-1``.

    Example::

        >>> opt = optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1)
        >>> sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
        >>> sched.step()
        >>> sched.get_last_lr()   # half way: (0.1 + 0) / 2
        [0.05]
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = check_int("T_max", T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        e, t, lo = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if self._initial:  # the constructor's step keeps the rates, also when resuming (as PyTorch)
            return [g["lr"] for g in groups]
        if (e - 1 - t) % (2 * t) == 0:
            return [g["lr"] + (b - lo) * (1 - math.cos(math.pi / t)) / 2 for b, g in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * e / t)) / (1 + math.cos(math.pi * (e - 1) / t)) * (g["lr"] - lo) + lo
                for g in groups]
