"""What the native core runs on: the chosen ISA and GEMM, threads, versions; the RELUCORE_ISA and
RELUCORE_GEMM overrides."""

from __future__ import annotations

import importlib.util
import operator
import os
import sys
import warnings

import numpy as np

from . import _core

__all__ = ["runtime_info", "show_runtime", "set_num_threads", "get_num_threads"]


def _apply_env_override() -> None:
    """Honour RELUCORE_ISA, RELUCORE_GEMM and RELUCORE_CONV at import."""
    _apply_isa_override()
    _apply_choice("RELUCORE_GEMM", _core.set_gemm, ("auto", "own", "blas"))
    _apply_choice("RELUCORE_CONV", _core.set_conv_algo, ("auto", "gemm", "winograd"))


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


def _apply_choice(var: str, setter, choices) -> None:
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
        n (int): the thread count, from 1 to ``relucore._core.thread_limit()`` (the larger of 256
            and four times the CPU count).

    Raises:
        TypeError: if ``n`` is not an integer (``bool`` included).
        ValueError: if ``n`` lies outside that range.
    """
    if isinstance(n, bool) or not hasattr(type(n), "__index__"):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    _core.set_num_threads(operator.index(n))


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


def runtime_info() -> dict:
    """A dict describing the native core: ``isa`` (chosen), ``compiled_isas``, ``usable_isas``,
    ``num_threads``, ``openmp``, ``gemm`` (the GEMM in use: relucore's own register tile on avx512,
    else the BLAS; ``RELUCORE_GEMM=own|blas`` overrides), ``blas`` (the BLAS library and its
    configuration), ``conv_algo`` (3x3 stride-1 layers: ``auto`` = Winograd F(2x2, 3x3) when both
    channel counts are >= 16, the layer is large enough (>= 48 output tiles of 2x2 in the batch,
    >= 2**23 multiply-adds) and every value is finite, else the GEMM; ``RELUCORE_CONV=gemm|winograd``
    overrides), ``version``,
    ``numpy``, ``compiler`` and ``tiles`` (elements per kernel main-loop iteration, by dtype)."""
    from . import __version__

    return {
        "isa": _core.get_isa(),
        "compiled_isas": list(_core.compiled_isas()),
        "usable_isas": list(_core.usable_isas()),
        "num_threads": get_num_threads(),
        "openmp": bool(_core.openmp),
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
