"""Containers: :class:`Sequential` (with batch norm + activation fusion) and :class:`Flatten`."""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from typing import Iterator, Optional, Tuple, Union

from . import _eval
from . import _functions as F
from .activation import ELU, LeakyReLU, ReLU
from .conv import Conv2d
from .module import Module, check_int, generation
from .norm import BatchNorm1d, BatchNorm2d
from .pooling import poolable
from ..distributed.sync_batchnorm import SyncBatchNorm  # needs mpi4py only in its collective calls

__all__ = ["Sequential", "Flatten"]

#: Sequential -> its evaluation plans (outside the instance: copies and pickles never share them)
_PLANS: "weakref.WeakKeyDictionary[Sequential, _eval.Plans]" = weakref.WeakKeyDictionary()

#: schedule mark of a Conv2d whose output's per-plane sums go to the batch norm + pool sweep after it
_MOMENTS = ("moments",)


def fusable_activation(m: Module) -> Optional[Tuple[object, bool]]:
    """``(activation, invertible)`` for ``rc.batch_norm`` if ``m`` can run fused into the batch norm
    before it, else None. Exact types only (here and for the batch norm): a subclass may compute
    something else."""
    if type(m) is ReLU and m.grad_at_zero == 0:  # the fused backward uses ReLU'(0) = 0
        return "relu", False
    if type(m) is LeakyReLU:
        return ("leaky_relu", m.negative_slope), m.negative_slope > 0
    if type(m) is ELU:
        return ("elu", m.alpha), m.alpha > 0
    return None


def conv_activation(m: Module):
    """The ``activation`` for ``rc.conv2d`` if ``m`` can run fused into the convolution before it
    (its derivative then follows from the output's sign), else None."""
    if type(m) is ReLU and m.grad_at_zero == 0:
        return "relu"
    if type(m) is LeakyReLU and m.negative_slope >= 0:
        return "leaky_relu", m.negative_slope
    return None


class Sequential(Module):
    r"""Modules run one after the other; backward runs their backward in reverse order.

    A batch norm followed directly by a ReLU, LeakyReLU or ELU runs as one fused
    ``batch_norm(..., activation=...)`` pass (one read and one write of the data instead of two of
    each). For invertible activations (LeakyReLU with a positive slope, ELU) only the output is kept
    for backward, not the input. In training, a ``BatchNorm2d`` -> activation -> ``MaxPool2d`` triple
    runs as one sweep over the planes on the native backend: each plane is pooled as it is
    normalized (2x2 stride-2 windows in registers, others from a small scratch plane), so the
    full-size activation is neither stored nor read back, and the backward unpools per plane the
    same way (the results of the fused batch norm + activation followed by
    the pool, bitwise where that batch norm sums per plane, except that with 2x2 windows the
    backward's sums add the windows' winners only: within rounding; the pool's kept window
    positions count at the batch norm); after a ``Conv2d`` it also sums its input
    gradient per channel in the same pass, which is that convolution's bias gradient (the same bits
    as the convolution's own sum), and where that convolution runs its few-tap direct forward on
    whole images (a network's first layer) it sums each output plane for the batch statistics
    while the plane is in cache, so the sweep skips its statistics pass (the same bits). When such
    a triple follows the network's first ``Conv2d`` and ``backward(dy, input_grad=False)`` is
    called, the batch norm's input gradient goes plane by plane into that convolution's weight and
    bias gradients (where the convolution sums its weight gradient by dot products: one group, at
    most 16 ``C * kh * kw`` taps, relucore's GEMM) and is never stored (the same bits as the two
    layers' own backwards). In evaluation mode a convolution followed by a ReLU or a LeakyReLU
    (slope >= 0) runs as one ``conv2d(..., activation=...)`` call.
    ``fuse=False`` runs every module on its own; the results are the same up to rounding.

    In evaluation mode on the native backend the first forward for an input shape and dtype runs
    layer by layer (with every check); the sequence is then planned for that shape, and later inputs
    like it run the plan: the same kernels called with the arguments already validated, without the
    per-layer checks (the same output bits, the same state kept for backward). Any change of a
    module's attributes, parameters, buffers, children or mode drops the plans; values changed in
    place (an optimizer step, ``load_state_dict``) are read by the plan as they are.

    Args:
        *modules: the modules, or one ``OrderedDict`` of name -> module.
        fuse: fuse batch norm + activation pairs (and convolution + activation pairs in
            evaluation). Default: ``True``.

    Example::

        >>> model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        ...                       nn.Flatten(), nn.Linear(8 * 28 * 28, 10))
        >>> len(model), model[0]
        (5, Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)))
    """

    def __init__(self, *modules, fuse: bool = True) -> None:
        super().__init__()
        self.fuse = bool(fuse)
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: {name!r} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def _key(self, i: int) -> str:
        n = len(self)
        if isinstance(i, bool) or not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a Sequential of {n} modules")
        return list(self._modules)[i % n]

    def __getitem__(self, i: Union[int, slice]) -> Module:
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]), fuse=self.fuse)
        return self._modules[self._key(i)]

    def __setitem__(self, i: int, m: Module) -> None:
        if not isinstance(m, Module):
            raise TypeError(f"Sequential: cannot set a {type(m).__name__}, only a Module")
        setattr(self, self._key(i), m)

    def append(self, m: Module) -> "Sequential":
        """Add ``m`` at the end; returns ``self``."""
        if not isinstance(m, Module):
            raise TypeError(f"Sequential: cannot append a {type(m).__name__}, only a Module")
        setattr(self, str(len(self)), m)
        return self

    def _schedule(self) -> list:
        """``(module, fused)`` per call of the forward: ``fused`` is None (the module alone), or the
        arguments of its ``forward_activation`` that take the next module (an activation), and in
        training a max pooling after that, with it. Kept until a module changes (:func:`generation`)."""
        kept = self.__dict__.get("_kept_schedule")
        if kept is not None and kept[0] == generation():
            return kept[1]
        stamp = generation()
        out = self._plan_schedule()
        self.__dict__["_kept_schedule"] = (stamp, out)
        return out

    def _plan_schedule(self) -> list:
        mods = [m for m in self._modules.values() if m is not None]
        if len({id(m) for m in mods}) != len(mods):
            raise ValueError("Sequential: a module appears twice; each instance keeps one forward's state "
                             "for its backward, so use a separate instance at each place")
        out = []
        i = 0
        while i < len(mods):
            m = mods[i]
            nxt = mods[i + 1] if self.fuse and i + 1 < len(mods) else None
            fused = None
            if nxt is not None and type(m) in (BatchNorm1d, BatchNorm2d, SyncBatchNorm):
                fused = fusable_activation(nxt)
                pool = mods[i + 2] if i + 2 < len(mods) else None
                if fused is not None and type(m) is BatchNorm2d and self.training and poolable(pool):
                    fused = (*fused, pool)
            elif nxt is not None and type(m) is Conv2d and not self.training:
                act = conv_activation(nxt)
                fused = None if act is None else (act,)
            elif (nxt is not None and self.training and type(m) is Conv2d and "forward" not in m.__dict__
                  and type(nxt) is BatchNorm2d and i + 3 < len(mods) and fusable_activation(mods[i + 2]) is not None
                  and poolable(mods[i + 3])):
                out.append((m, _MOMENTS))  # training: the sweep takes its statistics from these sums
                i += 1
                continue
            out.append((m, fused))
            i += 1 if fused is None else 3 if len(fused) == 3 else 2  # with the activation[, the pool]
        return out

    def forward(self, x):
        if self.training or F.current() is not F.native():
            return self._forward(self._schedule(), x)
        key = _eval.key_of(x)
        plans = _PLANS.get(self)
        if plans is not None and plans.stamp == generation():
            plan = plans.by_key.get(key)
            if plan is not None:
                y = plan.run(x)
                if y is not None:
                    self._keep(plan.ran)
                    return y
        # layer by layer (every check), then planned for the next input like this one
        stamp = generation()
        schedule = self._schedule()
        keys = []
        y = self._forward(schedule, x, keys)
        if key is not None and generation() == stamp:
            if plans is None or plans.stamp != stamp:
                plans = _PLANS[self] = _eval.Plans(stamp)
            plans.add(key, _eval.build(schedule, keys, Flatten))
        return y

    def _forward(self, schedule, x, keys=None):
        """The layer-by-layer forward; ``keys`` (a list) collects each call's input's plan key."""
        sums = None  # a Conv2d's output sums for the batch norm sweep next
        for m, fused in schedule:
            if keys is not None:
                keys.append(_eval.key_of(x))
            if fused is _MOMENTS:
                x, sums = m._forward_moments(x)
            elif sums is not None:
                x, sums = m.forward_activation(x, *fused, run_sums=sums), None
            else:
                x = m(x) if fused is None else m.forward_activation(x, *fused)
        self._keep([m for m, _ in schedule])
        return x

    def backward(self, dy, input_grad: bool = True):
        """Each module's backward in reverse order; returns the input's gradient, or None with
        ``input_grad=False`` (then a first Conv2d, or a Sequential, does not compute it). A ``dy``
        the last module refuses (shape, dtype) leaves the forward's state for a corrected call,
        where that module kept its own (relucore's layers do)."""
        saved = self._take()
        ran = saved[0]
        try:
            return self._backward(ran, dy, input_grad)
        except (TypeError, ValueError):
            # the last module refused dy and kept its forward's state: nothing else ran
            if ran and ran[-1].__dict__.get("_cache") is not None:
                self._keep(*saved)
            raise

    def _backward(self, ran, dy, input_grad: bool):
        def plain_layer(m, kind) -> bool:  # of that type exactly, its backward not replaced on the instance
            return type(m) is kind and "backward" not in m.__dict__

        bias_grad = None  # a Conv2d's bias gradient, summed by the batch norm after it
        for i in reversed(range(len(ran))):
            m = ran[i]
            if plain_layer(m, Conv2d):
                dy = m._backward(dy, input_grad or i > 0, bias_grad)
                bias_grad = None
                continue
            if i == 0 and not input_grad and type(m) in (Conv2d, Sequential):
                return m.backward(dy, input_grad=False)
            if plain_layer(m, BatchNorm2d) and i > 0 and plain_layer(ran[i - 1], Conv2d):
                # a first Conv2d's gradients straight from a batch norm + pool backward after it
                if i == 1 and not input_grad and m._backward_into(dy, ran[0]):
                    return None
                dy, bias_grad = m._backward(dy, ran[i - 1].bias is not None)
                continue
            dy = m.backward(dy)
        return dy if input_grad else None

    def _label(self) -> str:
        return f"Sequential of {len(self)} modules"


class Flatten(Module):
    r"""Flattens the axes ``start_dim`` to ``end_dim`` into one.

    Args:
        start_dim: first axis to flatten. Default: ``1``.
        end_dim: last axis to flatten. Default: ``-1``.

    Shape:
        - Input: :math:`(*, S_{start}, ..., S_{end}, *)`; Output: :math:`(*, \prod S, *)`.

    Example::

        >>> nn.Flatten()(np.zeros((32, 1, 5, 5))).shape
        (32, 25)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = check_int("start_dim", start_dim, -(2**63))
        self.end_dim = check_int("end_dim", end_dim, -(2**63))

    def forward(self, x):
        x = self._input(x, "(*)")
        nd = max(x.ndim, 1)
        s, e = self.start_dim, self.end_dim
        if not (-nd <= s < nd and -nd <= e < nd) or s % nd > e % nd:
            raise ValueError(f"{self._label()}: cannot flatten axes {s}..{e} of an input of shape {x.shape}")
        s, e = s % nd, e % nd
        shape = x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:]
        self._keep(x.shape, shape, x.dtype)
        return x.reshape(shape)

    def backward(self, dy):
        saved = x_shape, y_shape, dtype = self._take()
        return self._dy(dy, y_shape, saved, dtype).reshape(x_shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
