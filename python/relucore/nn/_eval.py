"""The evaluation-mode fast path of :class:`~relucore.nn.Sequential`.

A forward in evaluation on the native backend first runs layer by layer (every check, every error);
after it succeeds, the sequence is planned for that input shape and dtype: one step per layer (or
per fused pair) that calls the compiled kernel with the arguments the first run validated. Later
calls with an input of the same shape, dtype and layout run the plan. What the plan relies on is
re-checked cheaply at each call: no module anywhere changed an attribute, parameter, buffer, child
or mode since (:func:`relucore.nn.module.generation`), every parameter still holds the same array
(``Parameter.data`` can be replaced without the module knowing), and the backend is the native
one. Parameter values changed in place (optimizers, ``load_state_dict``) need no re-plan: the steps
read the same arrays. A layer the plan does not take apart runs its own forward, and the step after
it checks its input. Each step keeps what the layer's own forward keeps, so backward after a
planned forward is the layer-by-layer one. Outputs are the same bits as the layer-by-layer path's:
the same kernels with the same arguments.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

import numpy as np

from .. import _core
from ..conv import _BLAS_MAX
from .conv import Conv2d
from .linear import Linear
from .module import Module, plain
from .norm import BatchNorm1d, BatchNorm2d
from .pooling import MAX_POSITIONS, MaxPool2d

_ACT = _core.NORM_ACTIVATIONS
#: input shapes (and dtypes) planned per Sequential; more distinct shapes re-plan the oldest
MAX_PLANS = 8

Step = Callable[[np.ndarray], np.ndarray]


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
    if act is None or not (plain(w) and plain(b)):
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
            or type(eps) not in (float, int) or not all(plain(a) for a in (rm, rv, w, b))):
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
    keep = _keep(m)
    pool = _core.max_pool2d_positions if kh * kw <= MAX_POSITIONS else _core.max_pool2d

    def step(x):
        y, kept = pool(x, kh, kw, sh, sw, ph, pw)
        keep(kept, x.shape, x.dtype)
        return y

    return step


def _flatten_step(m, x_shape) -> Step:
    nd = max(len(x_shape), 1)
    s, e = m.start_dim % nd, m.end_dim % nd
    shape = x_shape[:s] + (math.prod(x_shape[s:e + 1]),) + x_shape[e + 1:]
    keep = _keep(m)

    def step(x):
        keep(x_shape, shape, x.dtype)
        return x.reshape(shape)

    return step


def _linear_step(m: Linear, x_shape) -> Optional[Step]:
    w, b = m.weight.data, None if m.bias is None else m.bias.data
    lead = x_shape[:-1]
    rows, n_in, n_out = math.prod(lead), x_shape[-1], m.out_features
    if not (plain(w) and plain(b)) or rows * n_out == 0 or max(rows, n_in, n_out) > _BLAS_MAX:
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


def _step(m: Module, pair, x_shape, flatten_type: type) -> Tuple[Step, Optional[bool]]:
    """The fastest correct step for module ``m`` (run with ``pair``'s fused activation, if any) on
    an input of ``x_shape``, which the layer-by-layer run has just accepted, and what its output
    is: True a fresh array from a kernel, None the input reshaped, False anything (the layer's own
    forward)."""
    t = type(m)
    step, out = None, True
    if any(_hooks(m)):  # a wrapped forward (diagnostics): run it
        t = None
    if t is Conv2d:
        step = _conv_step(m, pair[0] if pair else None, x_shape)
    elif t in (BatchNorm1d, BatchNorm2d):
        step = _bn_step(m, *(pair or (None, False)))
    elif t is MaxPool2d and len(x_shape) == 4 and math.prod(x_shape) > 0:
        step = _max_pool_step(m)
    elif t is Linear:
        step = _linear_step(m, x_shape)
    elif t is flatten_type:
        step, out = _flatten_step(m, x_shape), None
    return (step, out) if step is not None else (_plain_step(m, pair), False)


def _guarded(step: Step, plain: Step, key: tuple) -> Step:
    """``step`` for inputs of the planned shape and dtype that the kernels take as they are, else
    ``plain``: for an input made by a layer the plan does not take apart."""
    def run(x):
        return step(x) if key_of(x) == key else plain(x)

    return run


#: a module's own methods that a wrapper (relucore.diagnostics.Monitor) may replace on the instance
_HOOKS = ("forward", "forward_activation")


def _hooks(m: Module) -> tuple:
    d = m.__dict__
    return tuple(d.get(name) for name in _HOOKS)


class Plan:
    """The steps for one input shape and dtype, the parameter arrays they were built on, and the
    methods replaced on module instances then."""

    __slots__ = ("steps", "ran", "arrays", "shapes", "hooks")

    def __init__(self, steps: List[Step], ran: list, arrays: list) -> None:
        self.steps, self.ran, self.arrays = steps, ran, arrays
        self.shapes = [a.shape for _, a in arrays]
        self.hooks = [(m.__dict__, _hooks(m)) for m in ran]

    def run(self, x: np.ndarray):
        """The output, or None (nothing run) when a parameter's array was replaced or reshaped in
        place since, or a module's forward was wrapped or unwrapped on the instance."""
        for (p, a), shape in zip(self.arrays, self.shapes):
            if p.data is not a or a.shape != shape:
                return None
        for d, (forward, forward_activation) in self.hooks:
            if d.get("forward") is not forward or d.get("forward_activation") is not forward_activation:
                return None
        for step in self.steps:
            x = step(x)
        return x


def build(schedule, keys, flatten_type: type) -> Plan:
    """The plan for ``schedule`` (``(module, fused activation or None)`` pairs) whose layer-by-layer
    run has just accepted inputs of ``keys`` (:func:`key_of` each), one per pair."""
    steps = []
    trusted = True  # the input is the planned one: the forward's (its key checked) or a kernel's output
    for (m, pair), key in zip(schedule, keys):
        if key is None:  # the first run's input here was not one the kernels take as it is
            steps.append(_plain_step(m, pair))
            trusted = False
            continue
        step, out = _step(m, pair, key[0], flatten_type)
        if out is not False and not trusted:
            step = _guarded(step, _plain_step(m, pair), key)
        steps.append(step)
        trusted = trusted if out is None else bool(out)
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
