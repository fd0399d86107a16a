"""Layers with forward and backward over relucore's kernels, in the style of ``torch.nn``.

Every layer keeps what its backward needs; ``backward(dy)`` returns the gradient with respect to its
input and adds the gradients of its parameters to their ``.grad``. Parameters are
:class:`Parameter` objects (``.data`` and ``.grad`` NumPy arrays), float32 unless ``dtype=np.float64``
is given. :func:`manual_seed` makes initialisation and dropout reproducible.

Example::

    >>> import relucore.nn as nn
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> y = model(np.zeros((8, 4), np.float32))
    >>> dx = model.backward(np.ones_like(y))
"""

from . import init
from .activation import ELU, LeakyReLU, LogSoftmax, PReLU, ReLU, ReLU6, Sigmoid, Softmax, Tanh
from .container import Flatten, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .fuse import fuse
from .init import manual_seed
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, Parameter
from .norm import BatchNorm1d, BatchNorm2d
from ..distributed.sync_batchnorm import SyncBatchNorm  # noqa: E402  (needs mpi4py only when used)
from .pooling import AvgPool2d, MaxPool2d
from .summary import summary

__all__ = [
    "Module", "Parameter", "Sequential", "Flatten", "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "ReLU",
    "ReLU6", "LeakyReLU", "PReLU", "ELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "MaxPool2d", "AvgPool2d",
    "Dropout", "CrossEntropyLoss", "MSELoss",
    "SyncBatchNorm", "init", "manual_seed", "summary", "fuse",
]
