"""relucore: SIMD C++ kernels for NumPy neural networks.

``import relucore as rc`` then call ``rc.relu(x)`` and friends on float32/float64 NumPy arrays.
``relucore.reference`` holds the same functions in plain NumPy (the oracle and the "numpy" backend);
``relucore.ufuncs`` the elementwise ones as ``numpy.ufunc`` objects; ``relucore.runtime`` chooses
the kernel set, GEMM and convolution algorithm; ``relucore.layers`` has CS231n-style
``(out, cache)`` layer functions and ``relucore.gradcheck`` checks backward passes numerically;
``relucore.nn`` and ``relucore.optim`` are layers, losses and optimizers over these functions.
"""

from . import _core
from .runtime import (
    _apply_env_override, get_backend, get_conv_algorithm, get_gemm, get_isa, get_num_threads, release_scratch,
    runtime_info, set_num_threads, show_runtime, use_backend, use_conv_algorithm, use_gemm, use_isa,
)

_apply_env_override()

from . import reference, runtime  # noqa: E402
from .conv import *  # noqa: E402,F401,F403  (relucore.conv.__all__)
from .activations import *  # noqa: E402,F401,F403  (relucore.activations.__all__)
from .norm import *  # noqa: E402,F401,F403  (relucore.norm.__all__)
from .loss import *  # noqa: E402,F401,F403  (relucore.loss.__all__)
from . import activations as _activations, conv as _conv, loss as _loss, norm as _norm  # noqa: E402
from .gradcheck import gradcheck  # noqa: E402  (shadows the submodule; "from relucore.gradcheck import X" works)

__all__ = _activations.__all__ + _conv.__all__ + _norm.__all__ + _loss.__all__ + [
    "runtime_info", "show_runtime", "set_num_threads", "get_num_threads", "reference",
    "runtime", "use_isa", "get_isa", "use_gemm", "get_gemm", "use_conv_algorithm", "get_conv_algorithm",
    "use_backend", "get_backend", "release_scratch", "ufuncs", "layers", "gradcheck", "nn", "optim",
]

_LAZY = ("ufuncs", "layers", "nn", "optim", "__version__")


def __getattr__(name: str) -> object:
    # PEP 562: ``relucore.ufuncs``, ``layers``, ``nn``, ``optim`` and ``__version__`` are loaded on
    # first use, so plain ``import relucore`` pays for none of them.
    if name in ("ufuncs", "layers", "nn", "optim"):
        import importlib

        return importlib.import_module("." + name, __name__)  # also binds relucore.<name>
    if name == "__version__":
        global __version__
        __version__ = _installed_version()
        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _installed_version() -> str:
    """The version pip recorded (pyproject.toml's), or "0+unknown" for a source tree that was never
    installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("relucore")
    except PackageNotFoundError:
        return "0+unknown"
