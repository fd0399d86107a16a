"""The one place where relucore.nn reaches the kernel functions.

Layers call ``F.conv2d(...)``, ``F.batch_norm(...)`` and so on through this module, whose attributes
resolve to the functions of the current backend module: ``relucore`` (the native kernels) by
default. ``relucore.reference`` has the same signatures, so pointing the backend there runs every
layer on plain NumPy (``relucore.use_backend("numpy")``). A module's forward or backward pins the
backend it finds at entry for its whole duration on the calling thread (nested calls keep the outer
one's), so switching the backend from another thread never mixes the two within one call.
"""

from __future__ import annotations

import functools
import importlib
import threading
from types import ModuleType

_backend: ModuleType = importlib.import_module("relucore")
_NATIVE = _backend
_pinned = threading.local()  # .backend: the module the calling thread's current call uses


def native() -> ModuleType:
    """The native kernels' module (``relucore``)."""
    return _NATIVE


def set_backend(module: ModuleType) -> ModuleType:
    """Make the layers call ``module``'s functions; returns the previous backend module."""
    global _backend
    previous, _backend = _backend, module
    return previous


def get_backend() -> ModuleType:
    """The module whose functions the layers call."""
    return _backend


def pinned(method):
    """Wrap a forward/backward so that it runs on the backend found at its entry."""

    @functools.wraps(method)
    def run(*args, **kwargs):
        if getattr(_pinned, "backend", None) is not None:  # inside an outer call: keep its backend
            return method(*args, **kwargs)
        _pinned.backend = _backend
        try:
            return method(*args, **kwargs)
        finally:
            _pinned.backend = None

    run.__pinned__ = True
    return run


def current() -> ModuleType:
    """The backend of the calling thread's layer calls now: the one pinned by the call in progress,
    else the process-wide one."""
    return getattr(_pinned, "backend", None) or _backend


class override:
    """Run the calling thread's layer calls inside the block on ``module``, whatever the process-wide
    backend (for wrappers such as relucore.diagnostics' counting backend). A class, not a generator
    context manager: it wraps every watched layer call, and this costs a third as much."""

    __slots__ = ("module", "previous")

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.previous = getattr(_pinned, "backend", None)
        _pinned.backend = self.module

    def __exit__(self, *exc) -> None:
        _pinned.backend = self.previous


def __getattr__(name: str):
    return getattr(current(), name)
