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
]
