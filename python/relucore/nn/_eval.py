"""The evaluation-mode fast path of :class:`~relucore.nn.Sequential`.

A forward in evaluation on the native backend first runs layer by layer (every check, every error);
after it succeeds, the sequence is planned for that input shape and dtype: one step per layer (or
per fused pair) that calls the compiled kernel with the arguments the first run validated. Later
calls with an input of the same shape, dtype and layout run the plan. What the plan relies on is
re-checked cheaply at each call: no module anywhere changed an attribute, parameter, buffer or mode
since (:func:`relucore.nn.module.generation`), every parameter and buffer is the same array, and the
backend is the native one. Parameter values changed in place (optimizers, ``load_state_dict``) need
no re-plan: the steps read the same arrays. Each step keeps what the layer's own forward keeps, so
backward after a planned forward is the layer-by-layer one. Outputs are the same bits as the
layer-by-layer path's: the same kernels with the same arguments.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

import numpy as np

from .. import _core
from .conv import Conv2d
from .linear import Linear
from .module import Module
from .norm import BatchNorm1d, BatchNorm2d
from .pooling import MaxPool2d

_ACT = _core.NORM_ACTIVATIONS
_BLAS_MAX = 2**31 - 1
#: input shapes (and dtypes) planned per Sequential; more distinct shapes re-plan the oldest
MAX_PLANS = 8

Step = Callable[[np.ndarray], np.ndarray]


def _plain(a) -> bool:
    """``a`` is what the kernels take without a copy: a C-contiguous aligned native ndarray (or None)."""
    return a is None or (type(a) is np.ndarray and a.flags.c_contiguous and a.flags.aligned
                         and a.dtype.isnative)


def _act_code(activation) -> Optional[Tuple[int, float]]:
    """The kernels' (code, parameter) for an activation the layer-by-layer run passed, if plain."""
    if activation is None:
        return _ACT["none"], 0.0
    if activation == "relu":
        return _ACT["relu"], 0.0
    if type(activation) is tuple and activation[0] == "leaky_relu" and type(activation[1]) is float:
        return _ACT["leaky_relu"], activation[1]
    return None


def _keep(m: Module):
    d = m.__dict__
    return lambda *saved: d.__setitem__("_cache", saved)


def _conv_step(m: Conv2d, activation, x_shape) -> Optional[Step]:
    act = _act_code(activation)
    w, b = m.weight.data, None if m.bias is None else m.bias.data
    if act is None or not (_plain(w) and _plain(b)):
        return None
    (sh, sw), (ph, pw), (dh, dw), g = m.stride, m.padding, m.dilation, m.groups
    kh, kw = m.kernel_size
    oh = (x_shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (x_shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cg = x_shape[1] // g
    if (min(x_shape[0], m.out_channels, oh, ow) <= 0
            or max(cg * kh * kw, oh * ow, m.out_channels // g) > _BLAS_MAX):
        return None  # empty outputs and the BLAS size limit stay with rc.conv2d
    code, param = act
    keep, conv = _keep(m), _core.conv2d
    fused = activation is not None

    def step(x):
        y = conv(x, w, b, sh, sw, ph, pw, dh, dw, g, code, param)
        keep(x, y.shape, activation, y if fused else None)
        return y

    return step


def _bn_step(m, activation, keep_output: bool) -> Optional[Step]:
    act = _act_code(activation)
    rm, rv = m.running_mean, m.running_var
    w, b = (None if p is None else p.data for p in (m.weight, m.bias))
    momentum, eps = m.momentum, m.eps
    if (act is None or keep_output or m.training or rm is None or type(momentum) not in (float, int)
            or type(eps) not in (float, int) or not all(_plain(a) for a in (rm, rv, w, b))):
        return None
    code, param = act
    keep, bn = _keep(m), _core.batch_norm

    def step(x):
        r = bn(x, rm, rv, w, b, False, momentum, eps, code, param, None, False)
        if r is None:  # the kernel declined: the layer's own forward says why
            return m.forward_activation(x, activation)
        y, mean, invstd = r
        keep(x, None, mean, invstd, activation, False)
        return y

    return step


def _max_pool_step(m: MaxPool2d) -> Step:
    (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
    keep, pool = _keep(m), _core.max_pool2d

    def step(x):
        y, indices = pool(x, kh, kw, sh, sw, ph, pw)
        keep(indices, x.shape)
        return y

    return step


def _flatten_step(m, x_shape) -> Step:
    nd = max(len(x_shape), 1)
    s, e = m.start_dim % nd, m.end_dim % nd
    shape = x_shape[:s] + (math.prod(x_shape[s:e + 1]),) + x_shape[e + 1:]
    keep = _keep(m)

    def step(x):
        keep(x_shape, shape)
        return x.reshape(shape)

    return step


def _linear_step(m: Linear, x_shape) -> Optional[Step]:
    w, b = m.weight.data, None if m.bias is None else m.bias.data
    lead = x_shape[:-1]
    rows, n_in, n_out = math.prod(lead), x_shape[-1], m.out_features
    if not (_plain(w) and _plain(b)) or rows * n_out == 0 or max(rows, n_in, n_out) > _BLAS_MAX:
        return None
    out_shape = lead + (n_out,)
    keep, linear = _keep(m), _core.linear

    def step(x):
        y = linear(x.reshape(rows, n_in), False, w, False, b)
        keep(x)
        return y.reshape(out_shape)

    return step


def _plain_step(m: Module, pair) -> Step:
    """A layer the plan does not take apart: its own (checked) forward."""
    return m if pair is None else (lambda x: m.forward_activation(x, *pair))


def _step(m: Module, pair, x_shape, flatten_type: type) -> Step:
    """The fastest correct step for module ``m`` (run with ``pair``'s fused activation, if any) on
    an input of ``x_shape``, which the layer-by-layer run has just accepted."""
    t = type(m)
    step = None
    if t is Conv2d:
        step = _conv_step(m, pair[0] if pair else None, x_shape)
    elif t in (BatchNorm1d, BatchNorm2d):
        step = _bn_step(m, *(pair or (None, False)))
    elif t is MaxPool2d and len(x_shape) == 4 and math.prod(x_shape) > 0:
        step = _max_pool_step(m)
    elif t is Linear:
        step = _linear_step(m, x_shape)
    elif t is flatten_type:
        step = _flatten_step(m, x_shape)
    return step if step is not None else _plain_step(m, pair)


class Plan:
    """The steps for one input shape and dtype, and the parameter arrays they were built on."""

    __slots__ = ("steps", "ran", "arrays")

    def __init__(self, steps: List[Step], ran: list, arrays: list) -> None:
        self.steps, self.ran, self.arrays = steps, ran, arrays

    def run(self, x: np.ndarray):
        """The output, or None (nothing run) when a parameter's array was replaced since."""
        for p, a in self.arrays:
            if p.data is not a:
                return None
        for step in self.steps:
            x = step(x)
        return x


def build(schedule, shapes, flatten_type: type) -> Plan:
    """The plan for ``schedule`` (``(module, fused activation or None)`` pairs) whose layer-by-layer
    run has just accepted inputs of ``shapes``, one per pair."""
    steps = [_step(m, pair, shape, flatten_type) for (m, pair), shape in zip(schedule, shapes)]
    arrays = [(p, p.data) for m, _ in schedule for p in m.parameters()]
    return Plan(steps, [m for m, _ in schedule], arrays)


class Plans:
    """A Sequential's plans by input shape and dtype, valid while :func:`~relucore.nn.module.generation`
    has not moved."""

    __slots__ = ("stamp", "by_key")

    def __init__(self, stamp: int) -> None:
        self.stamp, self.by_key = stamp, {}

    def add(self, key, plan: Plan) -> None:
        if len(self.by_key) >= MAX_PLANS:
            self.by_key.pop(next(iter(self.by_key)))
        self.by_key[key] = plan


def key_of(x) -> Optional[tuple]:
    """The plan key of input ``x``, or None when no plan takes it (not an array the kernels take as
    it is: those run layer by layer, which copies them)."""
    if type(x) is np.ndarray and x.flags.c_contiguous and x.flags.aligned and x.dtype.isnative:
        return x.shape, x.dtype
    return None
