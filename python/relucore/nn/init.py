"""Parameter initialisation (PyTorch's ``torch.nn.init`` rules) and the seedable default generator.

Every function fills its array in place and takes ``rng=``, a :class:`numpy.random.Generator`;
without one it draws from the default generator, which :func:`manual_seed` reseeds. Values are drawn
in float64 and rounded to the array's dtype once, so float32 and float64 layers built after the same
seed start from the same numbers. The distributions are PyTorch's; the random streams are NumPy's.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from .._checks import MAX_BYTES
from .module import Parameter

__all__ = [
    "manual_seed", "default_generator", "calculate_gain", "uniform_", "normal_", "constant_", "zeros_",
    "ones_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
]

_default = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator (used by initialisation and by dropout without ``rng=``), so a
    run is reproducible; returns it."""
    global _default
    _default = np.random.default_rng(seed)
    return _default


def default_generator() -> np.random.Generator:
    """The generator layers draw from when they were given no ``rng=``."""
    return _default


def generator(rng: Optional[np.random.Generator]) -> np.random.Generator:
    """``rng``, or the default generator for ``None``."""
    if rng is None:
        return _default
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


def _array(t) -> np.ndarray:
    return t.data if hasattr(t, "grad") else t  # a Parameter, or a plain array


def _fill(tensor, values):
    _array(tensor)[...] = values
    return tensor


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """PyTorch's recommended gain for ``nonlinearity`` ("linear", "conv2d", "sigmoid", "tanh",
    "relu", "leaky_relu" with slope ``param`` (default 0.01), "selu")."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nonlinearity: unsupported {nonlinearity!r}")


def fans(shape: Tuple[int, ...]) -> Tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``: (in, out) times the receptive field size."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight of at least 2 dimensions, got shape {shape}")
    field = math.prod(shape[2:])
    return shape[1] * field, shape[0] * field


def uniform_(tensor, a: float = 0.0, b: float = 1.0, rng=None):
    """Fill with :math:`\\mathcal{U}(a, b)`."""
    return _fill(tensor, generator(rng).uniform(a, b, _array(tensor).shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, rng=None):
    """Fill with :math:`\\mathcal{N}(mean, std^2)`."""
    return _fill(tensor, generator(rng).normal(mean, std, _array(tensor).shape))


def constant_(tensor, value: float):
    return _fill(tensor, value)


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def _kaiming_std(tensor, a: float, mode: str, nonlinearity: str) -> float:
    fan_in, fan_out = fans(_array(tensor).shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"cannot initialise a weight of shape {_array(tensor).shape}: its {mode} is 0")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", rng=None):
    r"""He initialisation: :math:`\mathcal{U}(-b, b)` with
    :math:`b = \text{gain} \sqrt{3 / \text{fan}}`. Layers' default is ``a=sqrt(5)``
    (:math:`b = 1/\sqrt{\text{fan\_in}}`), as in PyTorch."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, rng)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", rng=None):
    r"""He initialisation: :math:`\mathcal{N}(0, \text{std}^2)`, :math:`\text{std} = \text{gain} / \sqrt{\text{fan}}`."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), rng)


def xavier_uniform_(tensor, gain: float = 1.0, rng=None):
    r"""Glorot initialisation: :math:`\mathcal{U}(-b, b)`, :math:`b = \text{gain}\sqrt{6/(\text{fan\_in} + \text{fan\_out})}`."""
    fan_in, fan_out = fans(_array(tensor).shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, rng)


def xavier_normal_(tensor, gain: float = 1.0, rng=None):
    r"""Glorot initialisation: :math:`\mathcal{N}(0, \text{std}^2)`, :math:`\text{std} = \text{gain}\sqrt{2/(\text{fan\_in} + \text{fan\_out})}`."""
    fan_in, fan_out = fans(_array(tensor).shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def layer_parameters(weight_shape: Tuple[int, ...], bias: bool, dtype, rng, owner: str = "layer"):
    r"""A new ``(weight, bias)`` pair of Parameters (bias ``None`` when not wanted) with PyTorch's
    default for convolution and linear layers: kaiming_uniform(a=sqrt(5)) for the weight
    (:math:`\mathcal{U}(-1/\sqrt{fan\_in}, 1/\sqrt{fan\_in})`) and the same bound for the bias.
    A weight past :data:`relucore._checks.MAX_BYTES` is a ValueError naming ``owner``."""
    nbytes = math.prod(weight_shape) * np.dtype(dtype).itemsize
    if nbytes > MAX_BYTES:
        raise ValueError(f"{owner}: a weight of shape {tuple(weight_shape)} would take {nbytes} bytes "
                         f"(at most {MAX_BYTES})")
    rng = generator(rng)
    w = Parameter(np.zeros(weight_shape), dtype)
    b = Parameter(np.zeros(weight_shape[:1]), dtype) if bias else None
    fan_in = fans(weight_shape)[0]
    if w.size:  # PyTorch leaves an empty weight alone
        kaiming_uniform_(w, math.sqrt(5), rng=rng)
    if b is not None and fan_in > 0:
        bound = 1 / math.sqrt(fan_in)
        uniform_(b, -bound, bound, rng)
    return w, b
