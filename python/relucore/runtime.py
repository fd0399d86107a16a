"""What the native core runs on and how to choose it: the kernel set (ISA), the GEMM, the 3x3
convolution algorithm, threads, the kept scratch memory; the RELUCORE_ISA, RELUCORE_GEMM and
RELUCORE_CONV overrides."""

from __future__ import annotations

import importlib.util
import operator
import os
import sys
import warnings
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Callable, Optional, Sequence, Type

import numpy as np

from . import _core

# Test hooks with no public meaning: the GEMM itself (C = alpha op(A) op(B) + beta C, in place),
# the output size above which stores bypass the cache (-1: the last-level cache size), the thread
# pool's counters, a delay before each piece a pool worker runs, and a replay of job records through
# a fresh straggler detector.
from ._core import (  # noqa: F401
    _gemm, _pool_detector_replay, _pool_late_worker, _pool_stats, _reset_pool_stats, _set_stream_threshold,
)
# CPU features per ISA: required by dispatch, enabled by the compiler, present on this CPU.
from ._core import _compiled_features, _cpu_features, _isa_features, _usable_isas_with  # noqa: F401
# The output cache's counters (hits, misses, cached_bytes, blocks, enabled, bounds) and a calloc probe.
from ._core import _output_cache_stats, _output_cache_zeros  # noqa: F401

__all__ = [
    "runtime_info", "show_runtime", "set_num_threads", "get_num_threads",
    "use_isa", "get_isa", "use_gemm", "get_gemm", "use_conv_algorithm", "get_conv_algorithm", "release_scratch",
    "use_backend", "get_backend",
]

_GEMMS = ("auto", "own", "blas")
_CONV_ALGORITHMS = ("auto", "gemm", "winograd", "fft")
_BACKENDS = ("native", "numpy")


def _apply_env_override() -> None:
    """Honour RELUCORE_ISA, RELUCORE_GEMM and RELUCORE_CONV at import."""
    _apply_isa_override()
    _apply_choice("RELUCORE_GEMM", _core.set_gemm, _GEMMS)
    _apply_choice("RELUCORE_CONV", _core.set_conv_algo, _CONV_ALGORITHMS)


def _apply_isa_override() -> None:
    """Honour RELUCORE_ISA=scalar|avx2|avx512; warn (never fail) if it cannot apply."""
    want = os.environ.get("RELUCORE_ISA", "").strip().lower()
    if not want:
        return
    if want in _core.usable_isas():
        _core.set_isa(want)
        return
    why = "not compiled into this build" if want not in _core.compiled_isas() else "not supported by this CPU"
    warnings.warn(
        f"RELUCORE_ISA={want!r} is {why}; using {_core.get_isa()!r} "
        f"(usable: {', '.join(_core.usable_isas())})",
        RuntimeWarning,
        stacklevel=4,
    )


def _apply_choice(var: str, setter: Callable[[str], None], choices: Sequence[str]) -> None:
    """Honour ``var`` (one of ``choices``) through ``setter``; warn (never fail) on an unknown value."""
    want = os.environ.get(var, "").strip().lower()
    if not want:
        return
    try:
        setter(want)
    except ValueError:
        warnings.warn(
            f"{var}={want!r} is not one of {', '.join(repr(c) for c in choices)}; using 'auto'",
            RuntimeWarning,
            stacklevel=4,
        )


def set_num_threads(n: int) -> None:
    """Set the number of threads relucore's ops use, for the whole process (like
    ``torch.set_num_threads``): every Python thread's later calls use it.

    The default is ``OMP_NUM_THREADS`` when it is set, else the number of CPUs the process may run
    on (``os.sched_getaffinity``). ``threadpoolctl.threadpool_limits`` changes the same setting.

    Args:
        n (int): the thread count, from 1 to ``relucore.runtime.thread_limit()`` (the larger of 256
            and four times the CPU count).

    Raises:
        TypeError: if ``n`` is not an integer (``bool`` included).
        ValueError: if ``n`` lies outside that range.
    """
    if isinstance(n, bool) or not hasattr(type(n), "__index__"):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    _core.set_num_threads(operator.index(n))


def thread_limit() -> int:
    """The largest thread count :func:`set_num_threads` accepts: the larger of 256 and four times
    the CPUs this process may use (at most 4096)."""
    return int(_core.thread_limit())


def get_num_threads() -> int:
    """The number of threads relucore's ops use (process-wide; set by :func:`set_num_threads`,
    ``OMP_NUM_THREADS`` at import or ``threadpoolctl``)."""
    return int(_core.get_num_threads())


def _register_threadpoolctl(threadpoolctl) -> None:
    """Make relucore's thread count visible to ``threadpoolctl`` (>= 3.5: ``register`` and
    ``LibController``) as user_api ``"relucore"``, through the extension's plain C entry points."""
    base, register = getattr(threadpoolctl, "LibController", None), getattr(threadpoolctl, "register", None)
    if base is None or register is None:
        return

    class RelucoreController(base):
        user_api = "relucore"
        internal_api = "relucore"
        filename_prefixes = ("_core",)  # relucore/_core.<abi>.so; other _core modules lack the symbols
        check_symbols = ("relucore_get_num_threads", "relucore_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.relucore_get_num_threads()

        def set_num_threads(self, num_threads):
            return self.dynlib.relucore_set_num_threads(int(num_threads))

        def get_version(self):
            from . import __version__

            return __version__

    register(RelucoreController)


class _ThreadpoolctlHook:
    """Registers relucore with threadpoolctl when that is imported, so that importing relucore does
    not import threadpoolctl (or require it)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "threadpoolctl":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not _ThreadpoolctlHook]
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _register_threadpoolctl(module)

        spec.loader.exec_module = exec_module
        return spec


def _hook_threadpoolctl() -> None:
    """Register with threadpoolctl now if it is imported, else as soon as it is."""
    if "threadpoolctl" in sys.modules:
        _register_threadpoolctl(sys.modules["threadpoolctl"])
    elif _ThreadpoolctlHook not in sys.meta_path:
        sys.meta_path.insert(0, _ThreadpoolctlHook)


_hook_threadpoolctl()


def runtime_info() -> dict[str, Any]:
    """A dict describing the native core.

    Keys: ``isa`` (the kernel set in use: :func:`use_isa`), ``compiled_isas``, ``usable_isas``,
    ``num_threads`` (relucore's own thread pool), ``gemm`` (the GEMM in use: relucore's own
    register tile on avx512, else the BLAS; :func:`use_gemm`), ``blas`` (the BLAS library and its
    configuration), ``conv_algo`` (the stride-1 convolution algorithm setting, :func:`use_conv_algorithm`;
    what ``"auto"`` picks: docs/api.md, Convolution), ``version``, ``numpy``, ``compiler`` and
    ``tiles`` (elements per kernel main-loop iteration, by dtype).

    Example::

        >>> import relucore as rc
        >>> rc.runtime_info()["isa"] in rc.runtime_info()["usable_isas"]
        True
    """
    from . import __version__

    return {
        "isa": _core.get_isa(),
        "compiled_isas": list(_core.compiled_isas()),
        "usable_isas": list(_core.usable_isas()),
        "num_threads": get_num_threads(),
        "gemm": _core.gemm_info(),
        "blas": _core.blas_info(),
        "conv_algo": _core.get_conv_algo(),
        "version": __version__,
        "numpy": np.__version__,
        "compiler": _core.compiler,
        "tiles": dict(_core.tiles()),
    }


def show_runtime() -> None:
    """Print :func:`runtime_info` one item a line."""
    for k, v in runtime_info().items():
        print(f"{k:>14}: {v}")


class _Restore(AbstractContextManager):
    """What the ``use_*`` functions return: the new setting is already in force; leaving a ``with``
    block puts back the one found at the call."""

    def __init__(self, name: str, value: str, previous: str, setter: Callable[[str], None]) -> None:
        self._name, self._value, self._previous, self._setter = name, value, previous, setter

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._setter(self._previous)

    def __repr__(self) -> str:
        return f"{self._name}({self._value!r})"


def _use(name: str, value: object, choices: Sequence[str], what: str, getter: Callable[[], str],
         setter: Callable[[str], None]) -> AbstractContextManager[None]:
    """Check ``value`` against ``choices``, set it, and return the guard that restores the old value."""
    listed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name}(): name must be a str naming {what} (one of {listed}), got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name}(): name {value!r} is not {what}; choose one of {listed}")
    previous = getter()
    setter(value)
    return _Restore(name, value, previous, setter)


def use_isa(name: str) -> AbstractContextManager[None]:
    r"""Run relucore's kernels with the kernel set ``name``, process-wide, from now on.

    Every kernel is compiled once per instruction set; at import relucore picks the best one the CPU
    supports (or ``RELUCORE_ISA``). The choice holds for every thread. Each call reads the settings
    once, at its start. Used as a context manager, the setting found at the call comes back when the
    ``with`` block ends, also on an exception; such blocks nest.

    Args:
        name (str): one of ``runtime_info()["usable_isas"]``: ``"scalar"``, ``"avx2"`` (AVX2 + FMA)
            or ``"avx512"``, as far as this build and CPU have them.

    Returns:
        A context manager; entering it does nothing more, leaving it restores the previous kernel set.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is not usable on this build and CPU (the message lists the usable ones).

    Example::

        >>> import relucore as rc
        >>> with rc.use_isa("scalar"):
        ...     y = rc.relu(x)           # the portable kernels
        >>> rc.use_isa("avx2")           # from now on, until changed
    """
    return _use("use_isa", name, tuple(_core.usable_isas()), "a kernel set usable on this build and CPU",
                _core.get_isa, _core.set_isa)


def get_isa() -> str:
    """The kernel set in use: ``"scalar"``, ``"avx2"`` or ``"avx512"`` (see :func:`use_isa`)."""
    return str(_core.get_isa())


def use_gemm(name: str) -> AbstractContextManager[None]:
    r"""Choose the GEMM behind ``conv2d``, ``conv2d_backward``, ``linear`` and ``linear_backward``,
    process-wide, from now on.

    ``"own"`` is relucore's packed register-tile GEMM (im2col blocks built inside it), ``"blas"`` is
    OpenBLAS from scipy-openblas32, and ``"auto"`` takes relucore's own on the avx512 kernel set and
    OpenBLAS on the others. Both give the same results up to float rounding (summation order).
    ``runtime_info()["gemm"]`` names the one in use. Used as a context manager, the setting found at
    the call comes back when the ``with`` block ends, also on an exception; such blocks nest.

    Args:
        name (str): ``"auto"`` (the default at import, unless ``RELUCORE_GEMM`` says otherwise),
            ``"own"`` or ``"blas"``.

    Returns:
        A context manager; entering it does nothing more, leaving it restores the previous GEMM.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is not one of the three.

    Example::

        >>> with rc.use_gemm("blas"):
        ...     y = rc.linear(x, w)      # through OpenBLAS
    """
    return _use("use_gemm", name, _GEMMS, "a GEMM", _core.get_gemm, _core.set_gemm)


def get_gemm() -> str:
    """The GEMM setting: ``"auto"``, ``"own"`` or ``"blas"`` (see :func:`use_gemm`;
    ``runtime_info()["gemm"]`` names the GEMM ``"auto"`` resolves to)."""
    return str(_core.get_gemm())


def use_conv_algorithm(name: str) -> AbstractContextManager[None]:
    r"""Choose how stride-1 convolutions are computed, process-wide, from now on.

    ``"winograd"`` runs Winograd F(2x2, 3x3) (2.25x fewer multiply-adds; rounding relative to each
    2x2 output tile, see docs/api.md; F(4x4, 3x3) for float64 layers it suits, up to 4x fewer) for
    every 3x3, dilation-1 layer; ``"fft"`` runs 2-D FFTs
    (work per output independent of the kernel's area; rounding relative to each plane's largest
    terms) for every dilation-1 layer with one group and padded planes of at most 96 x 96;
    ``"gemm"`` the direct sum through the GEMM; ``"auto"`` each only where it measured faster:
    Winograd for 3x3 layers with >= 16 channels per group and enough work, the FFT for float64
    layers with kernels of >= 25 taps whose estimated cost is below 0.7x the GEMM's. Inputs with
    inf, NaN or values whose products could overflow always take the GEMM. Used as a context
    manager, the setting found at the call comes back when the ``with`` block ends, also on an
    exception; such blocks nest.

    Args:
        name (str): ``"auto"`` (the default at import, unless ``RELUCORE_CONV`` says otherwise),
            ``"gemm"``, ``"winograd"`` or ``"fft"``.

    Returns:
        A context manager; entering it does nothing more, leaving it restores the previous algorithm.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is not one of the four.

    Example::

        >>> with rc.use_conv_algorithm("gemm"):
        ...     y = rc.conv2d(x, w, padding=1)   # direct-sum rounding
    """
    return _use("use_conv_algorithm", name, _CONV_ALGORITHMS, "a convolution algorithm", _core.get_conv_algo,
                _core.set_conv_algo)


def get_conv_algorithm() -> str:
    """The convolution setting: ``"auto"``, ``"gemm"``, ``"winograd"`` or ``"fft"`` (see :func:`use_conv_algorithm`)."""
    return str(_core.get_conv_algo())


def _layer_functions():
    from .nn import _functions  # relucore.nn loads on first use

    return _functions


def _set_backend(name: str) -> None:
    import relucore
    import relucore.reference

    _layer_functions().set_backend(relucore if name == "native" else relucore.reference)


def use_backend(name: str) -> AbstractContextManager[None]:
    r"""Run the layers of :mod:`relucore.nn` on relucore's kernels or on plain NumPy, process-wide,
    from now on.

    ``"numpy"`` makes every layer call the :mod:`relucore.reference` twin of each function (same
    signatures and results within float rounding): a model and its training run can be checked
    against plain NumPy by switching one setting. Each layer call (``forward``/``backward``, with
    the calls nested in it) uses the backend found at its start, whatever other threads switch
    meanwhile. Used as a context manager, the previous backend comes back when the ``with`` block
    ends, also on an exception; such blocks nest. The functions ``relucore.relu`` etc. are always
    native: call ``relucore.reference`` for the twins.

    Args:
        name (str): ``"native"`` (the default) or ``"numpy"``.

    Returns:
        A context manager; entering it does nothing more, leaving it restores the previous backend.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is not ``"native"`` or ``"numpy"``.

    Example::

        >>> import relucore as rc, relucore.nn as nn
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        >>> with rc.use_backend("numpy"):
        ...     y_numpy = model(x)           # the same layers on plain NumPy
        >>> y = model(x)                     # native again
    """
    return _use("use_backend", name, _BACKENDS, "a layer backend", get_backend, _set_backend)


def get_backend() -> str:
    """The backend of :mod:`relucore.nn`'s layers: ``"native"`` or ``"numpy"`` (see :func:`use_backend`)."""
    import relucore.reference

    return "numpy" if _layer_functions().get_backend() is relucore.reference else "native"


def release_scratch() -> None:
    r"""Free the scratch buffers that convolution and linear layers keep between calls, and the
    memory of the output cache.

    Each thread keeps its packed GEMM blocks, column gradients and Winograd buffers (a few MB) so
    that the next call does not allocate them again, as PyTorch's caching allocator keeps its
    blocks. The output cache keeps the memory of freed output arrays of at least 256 KiB for the
    next output of the same size (at most 256 MiB; see the Runtime section of docs/api.md). This
    returns that memory; the next call allocates it again, with the same results.

    Example::

        >>> y = rc.conv2d(x, w)
        >>> rc.release_scratch()
    """
    _core._release_scratch()
    _core._output_cache_release()
