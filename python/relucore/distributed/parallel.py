"""Parameters made equal on every rank (:func:`broadcast_parameters`) and gradients averaged across
ranks (:class:`DataParallel`)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Dict, List, Tuple

import numpy as np

from ..nn.module import Module, Parameter, check_int
from .world import get_world, mpi

__all__ = ["broadcast_parameters", "DataParallel", "DEFAULT_BUCKET_BYTES"]

#: Gradients are averaged in buckets of this many bytes (4 MiB: 1 Mi float32 values). An allreduce
#: costs a fixed latency (microseconds in shared memory, tens of microseconds over a network) plus
#: its bytes over the bandwidth; at 4 MiB the bytes take about a millisecond even at several GB/s,
#: so the latency is a few percent at most, while the staging buffer stays small next to a model
#: whose gradients it carries (a model below 4 MiB, like the example CNN, needs a single call).
DEFAULT_BUCKET_BYTES = 4 << 20


def _state(model: Module) -> "OrderedDict[str, Tuple[str, np.ndarray]]":
    """Name -> (kind, live array) of every parameter and buffer, in registration order."""
    if not isinstance(model, Module):
        raise TypeError(f"expected a relucore.nn.Module, got {type(model).__name__}")
    out = OrderedDict((n, ("parameter", p.data)) for n, p in model.named_parameters())
    out.update((n, ("buffer", b)) for n, b in model.named_buffers())
    return out


def _describe(kind: str, a: np.ndarray) -> Tuple[str, Tuple[int, ...], str]:
    return kind, tuple(a.shape), a.dtype.str


def _mismatch(metas: List[Dict[str, tuple]], root: int, what: str) -> str:
    """The first difference between each rank's (name -> (kind, shape, dtype)) and root's, or ''."""
    ref = metas[root]
    for r, meta in enumerate(metas):
        if r == root or meta == ref:
            continue
        for name, (kind, shape, dtype) in ref.items():
            if name not in meta:
                return f"{what}: {kind} {name!r} exists on rank {root} but not on rank {r}"
            k2, s2, d2 = meta[name]
            if k2 != kind:
                return f"{what}: {name!r} is a {kind} on rank {root} but a {k2} on rank {r}"
            if s2 != shape:
                return f"{what}: {kind} {name!r} has shape {shape} on rank {root} but {s2} on rank {r}"
            if d2 != dtype:
                return (f"{what}: {kind} {name!r} has dtype {np.dtype(dtype)} on rank {root} but "
                        f"{np.dtype(d2)} on rank {r}")
        extra = [n for n in meta if n not in ref]
        if extra:
            return f"{what}: {meta[extra[0]][0]} {extra[0]!r} exists on rank {r} but not on rank {root}"
        if list(meta) != list(ref):
            return f"{what}: parameters and buffers are registered in a different order on rank {r} than on rank {root}"
    return ""


def _bcast_arrays(comm, arrays: List[np.ndarray], root: int) -> None:
    """Broadcast ``arrays`` from ``root`` in place, packed into one message per dtype."""
    by_dtype: "OrderedDict[np.dtype, List[np.ndarray]]" = OrderedDict()
    for a in arrays:
        by_dtype.setdefault(a.dtype, []).append(a)
    for dtype, group in by_dtype.items():
        flat = np.empty(sum(a.size for a in group), dtype)
        if comm.Get_rank() == root:
            offset = 0
            for a in group:
                flat[offset:offset + a.size] = a.reshape(-1)
                offset += a.size
        comm.Bcast(flat, root=root)
        offset = 0
        for a in group:
            np.copyto(a, flat[offset:offset + a.size].reshape(a.shape))
            offset += a.size


def _check_root(root, size: int) -> int:
    root = check_int("root", root, 0)
    if root >= size:
        raise ValueError(f"root must be a rank < size ({size}), got {root}")
    return root


def broadcast_parameters(model: Module, root: int = 0, comm=None) -> None:
    r"""Copy every parameter and buffer (e.g. batch norm's running statistics) of ``model`` from rank
    ``root`` to every other rank, in place. Every rank must call it.

    First every rank's parameter and buffer names, shapes and dtypes are compared with root's; a
    difference is a ValueError on every rank (so none waits for the others) naming the parameter
    and the two ranks. The arrays then travel as one message per dtype.

    Args:
        model: the :class:`relucore.nn.Module`, built the same way on every rank.
        root: the rank whose values are kept. Default: ``0``.
        comm: the communicator (an mpi4py communicator or a :class:`World`). Default: the one of
            :func:`init`.

    Raises:
        ValueError: the models differ, e.g. ``broadcast_parameters: parameter '0.weight' has shape
            (16, 4) on rank 0 but (16, 5) on rank 1``.

    Example::

        >>> model = nn.Linear(4, 2)   # initialised differently on each rank
        >>> distributed.broadcast_parameters(model)   # now rank 0's everywhere
    """
    world = get_world(comm)
    root = _check_root(root, world.size)
    state = _state(model)
    meta = {n: _describe(kind, a) for n, (kind, a) in state.items()}
    error = _mismatch(world.comm.allgather(meta), root, "broadcast_parameters")
    if error:
        raise ValueError(error)
    if world.size > 1:
        _bcast_arrays(world.comm, [a for _, a in state.values()], root)


class _Bucketing:
    """The parameters' gradients cut into buckets of at most ``cap_bytes``: per dtype, the gradients
    in registration order are one virtual flat vector, cut every ``cap`` elements (a large gradient
    spans several buckets). Every rank builds the same layout from the same model."""

    def __init__(self, params: List[Parameter], cap_bytes: int) -> None:
        self.groups: "OrderedDict[np.dtype, List[Parameter]]" = OrderedDict()
        for p in params:
            self.groups.setdefault(p.dtype, []).append(p)
        self.cap_bytes = cap_bytes
        self.buffers = {dt: np.empty(max(1, min(sum(p.size for p in ps), cap_bytes // dt.itemsize)), dt)
                        for dt, ps in self.groups.items()}

    def calls(self) -> int:
        """Allreduce calls per step."""
        return sum(-(-sum(p.size for p in ps) // len(self.buffers[dt])) for dt, ps in self.groups.items())

    def allreduce_mean(self, comm, size: int) -> None:
        MPI = mpi()
        for dtype, ps in self.groups.items():
            buf = self.buffers[dtype]
            grads = []
            for p in ps:
                if p.grad is None:  # unused in this step's graph: contributes zeros
                    p.grad = np.zeros_like(p.data)
                elif p.grad.shape != p.data.shape:  # packing it would shift every later gradient
                    raise ValueError(f"DataParallel: a gradient of shape {p.grad.shape} for a parameter of "
                                     f"shape {p.data.shape}")
                elif not (p.grad.flags.c_contiguous and p.grad.flags.writeable) or p.grad.dtype != dtype:
                    p.grad = np.array(p.grad, dtype=dtype, order="C")
                grads.append(p.grad.reshape(-1))
            for pieces, n in self._buckets(grads, len(buf)):
                at = 0
                for g, lo, hi in pieces:
                    buf[at:at + hi - lo] = g[lo:hi]
                    at += hi - lo
                comm.Allreduce(MPI.IN_PLACE, buf[:n], op=MPI.SUM)
                buf[:n] /= size
                at = 0
                for g, lo, hi in pieces:
                    g[lo:hi] = buf[at:at + hi - lo]
                    at += hi - lo

    @staticmethod
    def _buckets(grads: List[np.ndarray], cap: int):
        """Yield ([(flat grad, lo, hi), ...], element count) for each bucket, in order."""
        pieces, n = [], 0
        for g in grads:
            lo = 0
            while lo < g.size:
                hi = min(g.size, lo + cap - n)
                pieces.append((g, lo, hi))
                n += hi - lo
                lo = hi
                if n == cap:
                    yield pieces, n
                    pieces, n = [], 0
        if n:
            yield pieces, n


class DataParallel(Module):
    r"""Data-parallel training over MPI, in the style of ``torch.nn.parallel.DistributedDataParallel``:
    each rank runs ``module`` on its own part of the batch, and :meth:`backward` then replaces every
    parameter's gradient by its average over the ranks, so that every rank's optimizer takes the
    same step and the parameters stay identical (bitwise, as every rank unpacks the same reduced bytes
from MPICH's allreduce; checked after every step in the tests).

    At construction the parameters and buffers are broadcast from rank 0 (after checking that every
    rank's model has the same names, shapes and dtypes). The gradients are averaged with a few large
    ``Allreduce`` calls: per dtype, in the fixed order of ``module.named_parameters()``, they are
    packed into buckets of ``bucket_bytes`` (default 4 MiB, see :data:`DEFAULT_BUCKET_BYTES`).
    A parameter without a gradient on a rank counts as zeros there.

    With a loss that is a mean over each rank's batch of ``B`` samples, the averaged gradient is the
    gradient of the mean over all ``size * B`` samples: the step of one process on the whole global
    batch, except for batch norm, whose statistics stay per rank unless it is a
    :class:`SyncBatchNorm`. With ``broadcast_buffers`` (as in PyTorch) rank 0's buffers, such as
    running statistics, are copied to the other ranks before each training forward.

    Every rank must call :meth:`forward` and :meth:`backward` the same number of times.

    Args:
        module: the model, built the same way on every rank.
        comm: an mpi4py communicator or a :class:`World`. Default: the one of :func:`init`.
        bucket_bytes: the size of an allreduce bucket. Default: ``4 << 20``.
        broadcast_buffers: copy rank 0's buffers to every rank before each training forward.
            Default: ``True``.

    Attributes:
        module: the wrapped model (parameter names in :meth:`state_dict` get a ``module.`` prefix,
            as in PyTorch; save ``dp.module`` to keep the plain names).
        allreduce_seconds: the wall time spent averaging gradients so far.

    Example::

        >>> world = distributed.init()
        >>> model = distributed.DataParallel(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        >>> opt = optim.SGD(model.parameters(), lr=0.1)
        >>> idx = distributed.shard(len(x), world.rank, world.size, seed=0, epoch=0)
        >>> loss = loss_fn(model(x[idx]), y[idx])
        >>> model.zero_grad()
        >>> model.backward(loss_fn.backward())   # gradients averaged over the ranks
        >>> opt.step()
    """

    def __init__(self, module: Module, comm=None, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                 broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel wraps a relucore.nn.Module, got {type(module).__name__}")
        bucket_bytes = check_int("bucket_bytes", bucket_bytes, 8)
        self.module = module
        self.world = get_world(comm)
        self.broadcast_buffers = bool(broadcast_buffers)
        self.allreduce_seconds = 0.0
        self.bucket_bytes = bucket_bytes
        broadcast_parameters(module, 0, self.world)
        self._bucketing = None
        self._layout = None

    def _buckets(self) -> _Bucketing:
        """The bucket layout of the current parameters (rebuilt after e.g. ``.to(np.float64)``)."""
        params = list(self.module.parameters())
        layout = [(id(p), p.dtype, p.size) for p in params]
        if layout != self._layout:
            self._bucketing, self._layout = _Bucketing(params, self.bucket_bytes), layout
        return self._bucketing

    @property
    def allreduce_calls(self) -> int:
        """Allreduce calls per :meth:`backward`."""
        return self._buckets().calls() if self.world.size > 1 else 0

    def forward(self, *args, **kwargs):
        if self.training and self.broadcast_buffers and self.world.size > 1:
            buffers = list(self.module.buffers())
            if buffers:
                _bcast_arrays(self.world.comm, buffers, 0)
        return self.module(*args, **kwargs)

    def backward(self, dy, **kwargs):
        """Run ``module.backward(dy, **kwargs)`` (e.g. ``input_grad=False`` for a
        :class:`~relucore.nn.Sequential`), then average the gradients over the ranks (in place in each
        ``p.grad``); returns what ``module.backward`` returns."""
        dx = self.module.backward(dy, **kwargs)
        self.average_gradients()
        return dx

    def average_gradients(self) -> None:
        """Replace every parameter's gradient by its mean over the ranks (for a backward run without
        :meth:`backward`, e.g. several accumulated ones)."""
        if self.world.size == 1:
            return
        t = time.perf_counter()
        self._buckets().allreduce_mean(self.world.comm, self.world.size)
        self.allreduce_seconds += time.perf_counter() - t

    def extra_repr(self) -> str:
        return f"rank={self.world.rank}, size={self.world.size}"
