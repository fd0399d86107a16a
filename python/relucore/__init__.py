"""relucore: SIMD C++ kernels for NumPy neural networks.

``import relucore as rc`` then call ``rc.relu(x)`` and friends on float32/float64 NumPy arrays.
``relucore.reference`` holds the same functions in plain NumPy (the oracle and the "numpy" backend).
"""

__version__ = "0.1.0"

from . import _core
from .runtime import _apply_env_override, get_num_threads, runtime_info, set_num_threads, show_runtime

_apply_env_override()

from . import reference  # noqa: E402
from .convolution import (  # noqa: E402
    avg_pool2d,
    avg_pool2d_backward,
    col2im,
    conv2d,
    conv2d_backward,
    im2col,
    linear,
    linear_backward,
    max_pool2d,
    max_pool2d_backward,
)
from .functional import (  # noqa: E402
    elu,
    elu_backward,
    leaky_relu,
    leaky_relu_backward,
    prelu,
    prelu_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    tanh,
    tanh_backward,
)

__all__ = [
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
    "prelu", "prelu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "im2col", "col2im", "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward", "linear", "linear_backward",
    "runtime_info", "show_runtime", "set_num_threads", "get_num_threads", "reference",
]
