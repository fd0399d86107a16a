"""The one place where relucore.nn reaches the kernel functions.

Layers call ``F.conv2d(...)``, ``F.batch_norm(...)`` and so on through this module, whose attributes
resolve to the functions of the current backend module: ``relucore`` (the native kernels) by
default. ``relucore.reference`` has the same signatures, so pointing the backend there runs every
layer on plain NumPy.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_backend: ModuleType = importlib.import_module("relucore")


def set_backend(module: ModuleType) -> ModuleType:
    """Make the layers call ``module``'s functions; returns the previous backend module."""
    global _backend
    previous, _backend = _backend, module
    return previous


def get_backend() -> ModuleType:
    """The module whose functions the layers call."""
    return _backend


def __getattr__(name: str):
    return getattr(_backend, name)
