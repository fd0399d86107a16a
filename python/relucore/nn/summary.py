"""``summary(model, input_shape)``: per-layer output shapes, parameters and the bytes kept for backward."""

from __future__ import annotations

import copy
import math
import operator
from typing import List, NamedTuple, Tuple

import numpy as np

from .._checks import MAX_BYTES
from .activation import ELU, LeakyReLU, PReLU, ReLU, ReLU6, Sigmoid, Tanh
from .container import Sequential
from .conv import Conv2d
from .dropout import Dropout
from .linear import Linear
from .module import Module, float_dtype
from .norm import BatchNorm1d, BatchNorm2d
from .pooling import MaxPool2d

__all__ = ["summary", "Summary", "LayerSummary"]


class LayerSummary(NamedTuple):
    name: str
    layer: str
    output_shape: Tuple[int, ...]
    params: int
    kept_bytes: int
    plain_bytes: int


def _kept_bytes(obj, seen: set) -> int:
    """Bytes of the NumPy arrays in ``obj`` (nested tuples and lists), each array once."""
    if isinstance(obj, np.ndarray):
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        return obj.nbytes
    if isinstance(obj, (tuple, list)):
        return sum(_kept_bytes(o, seen) for o in obj)
    return 0


def _plain_bytes(m: Module, x_shape: Tuple[int, ...], y_shape: Tuple[int, ...], itemsize: int) -> int:
    """What a plain NumPy layer keeps for its backward (the CS231n-style layers)."""
    nx, ny = math.prod(x_shape), math.prod(y_shape)
    t = type(m)
    if t is Conv2d:  # x and its im2col columns
        kh, kw = m.kernel_size
        cols = ny // m.out_channels * (m.in_channels // m.groups) * kh * kw
        return (nx + cols) * itemsize
    if t in (BatchNorm1d, BatchNorm2d):  # x and x-hat
        return 2 * nx * itemsize
    if t in (ReLU, ReLU6, LeakyReLU, ELU, PReLU, Linear):  # x
        return nx * itemsize
    if t in (Sigmoid, Tanh):  # y
        return ny * itemsize
    if t is MaxPool2d:  # x and an int64 argmax per output
        return nx * itemsize + ny * 8
    if t is Dropout:  # the scaled mask, as x
        return nx * itemsize if m.training and m.p > 0 else 0
    return 0  # shape-only layers (Flatten, AvgPool2d) and losses keep no arrays


class Summary:
    """The table :func:`summary` returns: ``rows`` (:class:`LayerSummary`), the totals, and ``str()``."""

    def __init__(self, rows: List[LayerSummary], input_shape: Tuple[int, ...], dtype: np.dtype) -> None:
        self.rows, self.input_shape, self.dtype = rows, input_shape, dtype
        self.total_params = sum(r.params for r in rows)
        self.total_kept_bytes = sum(r.kept_bytes for r in rows)
        self.total_plain_bytes = sum(r.plain_bytes for r in rows)

    @property
    def kept_ratio(self) -> float:
        """Bytes kept over the plain-NumPy figure (``nan`` if that is 0)."""
        return self.total_kept_bytes / self.total_plain_bytes if self.total_plain_bytes else float("nan")

    def __str__(self) -> str:
        head = ("Layer", "Output shape", "Params", "Kept (bytes)", "Plain NumPy (bytes)")
        body = [(f"{r.name} {r.layer}", str(r.output_shape), f"{r.params:,}", f"{r.kept_bytes:,}",
                 f"{r.plain_bytes:,}") for r in self.rows]
        total = ("Total", "", f"{self.total_params:,}", f"{self.total_kept_bytes:,}", f"{self.total_plain_bytes:,}")
        widths = [max(len(row[i]) for row in [head, *body, total]) for i in range(5)]

        def line(row):
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

        rule = "-" * len(line(head))
        return "\n".join([f"input {self.input_shape} {self.dtype}, training mode", line(head), rule,
                          *map(line, body), rule, line(total),
                          f"kept for backward / plain NumPy layers: {self.kept_ratio:.2f}"])

    __repr__ = __str__


def summary(model: Sequential, input_shape, dtype=np.float32) -> Summary:
    r"""Per layer of ``model``: output shape, parameter count, and the bytes kept for backward.

    The bytes kept are measured: a copy of ``model`` runs a forward in training mode on a zero batch
    of ``input_shape``, and the NumPy arrays each layer then holds for its backward are added up
    (a ReLU's 1-bit mask, a convolution's input, a max pooling's byte per output naming the window
    position that won; nothing for a ReLU that ran fused into the batch norm before it, or for a
    max pooling that ran in the batch norm's sweep, whose kept arrays count at the batch norm). The
    "plain NumPy" column is what the same layers keep when written as plain NumPy layers
    (CS231n-style): ReLU, LeakyReLU, ELU, PReLU and Linear keep ``x``; Sigmoid and Tanh ``y``; a
    batch norm ``x`` and :math:`\hat x`; a convolution ``x`` and its im2col columns; max pooling
    ``x`` and an int64 argmax per output; dropout a mask of ``x``'s size; Flatten and average
    pooling nothing. Both leave out the parameters, their gradients and the running statistics.
    ``model`` itself is not changed.

    Args:
        model: a :class:`Sequential` (its direct children are the rows; a nested Sequential's row
            counts all its modules).
        input_shape: the batch's shape, e.g. ``(64, 1, 8, 8)``.
        dtype: float32 or float64. Default: ``np.float32``.

    Returns:
        a :class:`Summary`: ``print`` it for the table; ``rows``, ``total_params``,
        ``total_kept_bytes``, ``total_plain_bytes`` and ``kept_ratio`` hold the figures.

    Example::

        >>> s = summary(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), (2, 4))
        >>> [(r.params, r.kept_bytes, r.plain_bytes) for r in s.rows]
        [(15, 32, 32), (0, 1, 24)]
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"summary: model must be a Sequential, got {type(model).__name__}")
    dtype = float_dtype(dtype)
    try:
        shape = tuple(operator.index(s) for s in input_shape)
    except TypeError:
        raise ValueError(f"summary: input_shape must be a tuple of ints, got {input_shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"summary: input_shape must not have negative sizes, got {input_shape!r}")
    if math.prod(shape) * dtype.itemsize > MAX_BYTES:
        raise ValueError(f"summary: an input of shape {shape} would take more than {MAX_BYTES} bytes")
    model = copy.deepcopy(model).train().to(dtype)
    children = list(model.named_children())
    for m in model.modules():
        m.__dict__["_cache"] = None
    model(np.zeros(shape, dtype))
    seen: set = set()
    # a nested Sequential's row: what its modules keep
    kept = [sum(_kept_bytes(d.__dict__["_cache"], seen) for d in m.modules()) for _, m in children]
    rows = []
    x = np.zeros(shape, dtype)
    for (name, m), k in zip(children, kept):
        plain, y = _plain_run(m, x, dtype.itemsize)
        params = sum(p.size for p in m.parameters())
        rows.append(LayerSummary(name, type(m).__name__, y.shape, params, k, plain))
        x = y
    return Summary(rows, shape, dtype)


def _plain_run(m: Module, x: np.ndarray, itemsize: int) -> Tuple[int, np.ndarray]:
    """(what plain NumPy layers keep for ``m``, m's output), through a nested Sequential's modules."""
    if type(m) is Sequential:
        total = 0
        for _, c in m.named_children():
            b, x = _plain_run(c, x, itemsize)
            total += b
        return total, x
    y = m(x)
    return _plain_bytes(m, x.shape, y.shape, itemsize), y
