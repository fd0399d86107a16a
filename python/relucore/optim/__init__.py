"""Optimizers over :class:`relucore.nn.Parameter` objects, in the style of ``torch.optim``:
:class:`SGD`, :class:`Adam`, :class:`AdamW`, and learning-rate schedules in
:mod:`relucore.optim.lr_scheduler`.

Each updates ``p.data`` in place from ``p.grad`` with PyTorch's update rule; parameters whose
``grad`` is ``None`` are skipped.
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
