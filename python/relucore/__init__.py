"""relucore: SIMD C++ kernels for NumPy neural networks.

``import relucore as rc`` then call ``rc.relu(x)`` and friends on float32/float64 NumPy arrays.
``relucore.reference`` holds the same functions in plain NumPy (the oracle and the "numpy" backend).
"""

__version__ = "0.1.0"

from . import _core
from .runtime import _apply_env_override, get_num_threads, runtime_info, set_num_threads, show_runtime

_apply_env_override()

from . import reference  # noqa: E402
from .convolution import *  # noqa: E402,F401,F403  (relucore.convolution.__all__)
from .activations import *  # noqa: E402,F401,F403  (relucore.activations.__all__)
from .norm import *  # noqa: E402,F401,F403  (relucore.norm.__all__)
from . import activations as _activations, convolution as _convolution, norm as _norm  # noqa: E402

__all__ = _activations.__all__ + _convolution.__all__ + _norm.__all__ + [
    "runtime_info", "show_runtime", "set_num_threads", "get_num_threads", "reference",
]
