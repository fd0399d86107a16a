"""Plain-NumPy reference implementations of the relucore API.

The correctness oracle for the native kernels and the ``"numpy"`` backend:
every function has the signature, return convention and argument errors of its
native twin (docs/api.md), written for reading rather than speed. Nothing here
imports the compiled extension.
"""

from .activations import (
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
from .conv import (
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

__all__ = [
    "relu",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "elu",
    "elu_backward",
    "prelu",
    "prelu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "im2col",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "linear",
    "linear_backward",
]
