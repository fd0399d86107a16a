"""Training diagnostics for ReLU networks, cheap enough to leave on: dead units, negative weights,
gradient norms, gradient-sign coherence and exact-zero pre-activations.

The dead-unit figures come from the per-channel counts of positive outputs that the activation
kernels compute in the same pass as the activation (``relu(..., return_counts=True)``,
``batch_norm(..., activation=..., return_counts=True)``), so watching them reads no activation
memory again. The other figures read the parameters and their gradients once per step.

Example::

    >>> import relucore.nn as nn, relucore.optim as optim
    >>> from relucore.diagnostics import Monitor
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> monitor = Monitor(model)
    >>> loss_fn, opt = nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1)
    >>> for step in range(10):
    ...     loss = loss_fn(model(np.ones((8, 4), np.float32)), np.zeros(8, np.int64))
    ...     model.zero_grad(); model.backward(loss_fn.backward()); opt.step()
    ...     monitor.step()
    >>> monitor.epoch()            # closes the window over which dead units are judged
    >>> print(monitor.table())
"""

from __future__ import annotations

import csv
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

__all__ = ["Monitor", "dead_share", "negative_share", "grad_norm", "sign_coherence", "exact_zeros",
           "format_table"]


def dead_share(counts) -> float:
    """Share of channels whose count of positive outputs is 0 (``counts`` summed over a window)."""
    c = np.atleast_1d(np.asarray(counts))
    if c.size == 0:
        raise ValueError("counts must have at least one channel")
    return float(np.count_nonzero(c == 0) / c.size)


def negative_share(weight) -> float:
    """Share of the entries of ``weight`` that are negative (``-0.0`` is not)."""
    w = np.asarray(weight)
    return float(np.count_nonzero(w < 0) / w.size) if w.size else float("nan")


def grad_norm(grad) -> float:
    """The Euclidean norm of ``grad`` (all entries)."""
    g = np.asarray(grad).ravel()
    sq = float(np.vdot(g, g))  # BLAS, in the gradient's dtype: fast and, for a sum of squares, accurate
    if not np.isfinite(sq):  # float32 squares can overflow where float64 ones do not
        sq = float(np.einsum("i,i->", g, g, dtype=np.float64))
    return float(np.sqrt(sq))


def sign_coherence(grad) -> float:
    r"""Gradient-sign coherence of a weight gradient: for each row (output unit: axis 0, the rest
    flattened; a 1-D gradient is one row), the share of its non-zero entries that have the row's
    majority sign, averaged over the rows with any non-zero entry.

    1.0 means every weight of a unit moves the same way in this step (what all-positive inputs
    force for one example); about 0.5 means the signs are balanced. NaN if no entry is non-zero.

    Example::

        >>> sign_coherence(np.array([[1.0, 2.0, -1.0, 0.0], [-1.0, -3.0, 0.0, 0.0]]))
        0.8333333333333333
    """
    g = np.asarray(grad)
    g = g.reshape(g.shape[0] if g.ndim >= 2 else 1, -1)
    count = np.int32 if g.shape[1] < 2**31 else np.int64  # int32 sums run twice as fast
    pos = np.sum(g > 0, axis=1, dtype=count)
    neg = np.sum(g < 0, axis=1, dtype=count)
    nz = pos + neg
    rows = nz > 0
    if not rows.any():
        return float("nan")
    return float(np.mean(np.maximum(pos, neg)[rows] / nz[rows]))


def exact_zeros(x) -> int:
    """How many entries of ``x`` are exactly zero (``-0.0`` included): the pre-activations where
    ReLU's derivative at 0 is used at all."""
    return int(np.count_nonzero(np.asarray(x) == 0))


def _figure_class():
    """matplotlib's ``Figure`` (drawn without pyplot, so the caller's backend stays as it is), or
    None when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401  (first, so that a blocked package is seen as missing)
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def format_table(headers: Sequence[str], rows: Sequence[Sequence], floatfmt: str = "{:.3g}") -> str:
    """A plain-text table: columns padded to their widest cell, floats with ``floatfmt``."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "-" if np.isnan(v) else floatfmt.format(v)
        return "-" if v is None else str(v)

    cells = [list(map(str, headers))] + [[cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class _Units:
    """What one activation (or fused batch norm + activation) layer reported since the window opened."""

    def __init__(self) -> None:
        self._window: Optional[np.ndarray] = None  # positive outputs per channel, summed
        self._step: Optional[np.ndarray] = None
        self._pending: List[np.ndarray] = []        # counts reported and not yet summed
        self.step_size = 0                          # elements seen in this step
        self.zeros: Optional[int] = None            # exact-zero pre-activations in this step

    def add(self, counts, size: int, zeros: Optional[int]) -> None:
        self._pending.append(counts)  # summed when read: a forward call only appends
        self.step_size += size
        if zeros is not None:
            self.zeros = (self.zeros or 0) + zeros

    def _flush(self) -> None:
        for counts in self._pending:
            c = np.atleast_1d(np.asarray(counts, dtype=np.int64))
            self._window = c.copy() if self._window is None or self._window.shape != c.shape else self._window + c
            self._step = c if self._step is None or self._step.shape != c.shape else self._step + c
        self._pending.clear()

    @property
    def window(self) -> Optional[np.ndarray]:
        self._flush()
        return self._window

    @window.setter
    def window(self, value: Optional[np.ndarray]) -> None:
        self._flush()
        self._window = value

    @property
    def step_counts(self) -> Optional[np.ndarray]:
        self._flush()
        return self._step

    def end_step(self) -> None:
        self._flush()
        self._step, self.step_size, self.zeros = None, 0, None


class _CountingBackend:
    """A kernel backend for :mod:`relucore.nn._functions` that passes every call to ``base`` but asks
    the activation kernels for their positive counts and hands them to ``units``."""

    def __init__(self, base, units: _Units, count_zeros: bool) -> None:
        self._base, self._units, self._count_zeros = base, units, count_zeros

    def __getattr__(self, name):
        return getattr(self._base, name)

    def _activation(self, name, x, *args, return_counts=False, **kwargs):
        f = getattr(self._base, name)
        x = np.asarray(x)
        zeros = exact_zeros(x) if self._count_zeros else None  # before an in-place call changes x
        r = f(x, *args, return_counts=True, **kwargs)
        self._units.add(r[-1], x.size, zeros)
        if return_counts:
            return r
        return r[0] if len(r) == 2 else r[:-1]

    def relu(self, x, *args, **kwargs):
        return self._activation("relu", x, *args, **kwargs)

    def relu6(self, x, *args, **kwargs):
        return self._activation("relu6", x, *args, **kwargs)

    def leaky_relu(self, x, *args, **kwargs):
        return self._activation("leaky_relu", x, *args, **kwargs)

    def elu(self, x, *args, **kwargs):
        return self._activation("elu", x, *args, **kwargs)

    def batch_norm(self, x, *args, activation=None, return_counts=False, **kwargs):
        if activation is None:  # a plain batch norm: the activation layer after it reports
            return self._base.batch_norm(x, *args, activation=activation, return_counts=return_counts, **kwargs)
        r = self._base.batch_norm(x, *args, activation=activation, return_counts=True, **kwargs)
        self._units.add(r[3], np.asarray(x).size, None)  # the fused pre-activation is never stored
        return r if return_counts else r[:3]


def _nan_last(xs: List[float]) -> float:
    return xs[-1] if xs else float("nan")


class Monitor:
    r"""Watches a :class:`relucore.nn.Module` during training; call :meth:`step` once per step
    (after ``backward``) and :meth:`epoch` at the end of each epoch.

    Per ReLU-family layer (ReLU, ReLU6, LeakyReLU, ELU, and a batch norm running fused with one of
    them): the share of units (channels, axis 1) positive in the step, and over each epoch the share
    of *dead* units, never positive for any input of the epoch. Per layer with a weight of two or
    more dimensions: the share of negative weights, the gradient norm and the gradient-sign
    coherence (:func:`sign_coherence`).

    The counts come from the activation kernels themselves: while a watched layer runs forward, the
    layers' kernel backend (:mod:`relucore.nn._functions`) is a thin wrapper that adds
    ``return_counts=True`` to the activation call and strips the counts from the result. The
    layers' results are the same bits, except where a batch norm + activation + max pool would run
    as one sweep in training: under a Monitor the pool runs as its own layer (within rounding).

    Args:
        model: the module to watch. Its activation layers get a wrapped ``forward`` until
            :meth:`close` (also on leaving a ``with`` block).
        count_zeros: also count pre-activations that are exactly 0 (where ReLU'(0) is used). This
            reads each activation input once more, so it is off by default; a batch norm fused with
            its activation never stores the pre-activation and reports no zeros. Default: ``False``.
        weight_every: record the weight and gradient figures at every ``weight_every``-th step
            (the first included), or never for 0. They read every weight and gradient once:
            negligible next to a convolution's step, but about a quarter of the step of an MLP with
            400 000 weights at batch 128 (docs/experiments.md). Default: ``1``.

    Attributes:
        history: ``history[metric][layer]`` is a list with one value per :meth:`step` (per
            :meth:`epoch` for ``"dead"``, per recorded step for the weight figures). Metrics:
            ``"active"``, ``"zeros"``, ``"dead"``, ``"negative_weights"``, ``"grad_norm"``,
            ``"sign_coherence"``.
        steps: the number of :meth:`step` calls so far.
    """

    _METRICS = ("active", "zeros", "dead", "negative_weights", "grad_norm", "sign_coherence")

    def __init__(self, model, count_zeros: bool = False, weight_every: int = 1) -> None:
        from .nn import ELU, BatchNorm1d, BatchNorm2d, LeakyReLU, Module, ReLU, ReLU6
        from .nn import _functions

        if not isinstance(model, Module):
            raise TypeError(f"model must be a relucore.nn.Module, got {type(model).__name__}")
        self._F = _functions
        self.count_zeros = bool(count_zeros)
        if isinstance(weight_every, bool) or not isinstance(weight_every, (int, np.integer)) or weight_every < 0:
            raise ValueError(f"weight_every must be an int >= 0, got {weight_every!r}")
        self.weight_every = int(weight_every)
        self.history: Dict[str, Dict[str, List[float]]] = {m: {} for m in self._METRICS}
        self.steps = 0
        self._units: Dict[str, _Units] = {}
        self._kinds: Dict[str, str] = {}  # every watched layer, in model order
        self._wrapped = []
        self._weights = []
        for name, m in model.named_modules():
            name = name or type(m).__name__
            if isinstance(m, (ReLU, ReLU6, LeakyReLU, ELU)):
                self._watch(name, m, "forward", type(m).__name__)
            elif isinstance(m, (BatchNorm1d, BatchNorm2d)):
                self._watch(name, m, "forward_activation", type(m).__name__ + "+act")
            w = m._parameters.get("weight")
            if w is not None and w.ndim >= 2:
                self._weights.append((name, w))
                self._kinds[name] = type(m).__name__

    def _watch(self, name: str, module, attr: str, kind: str) -> None:
        if attr in module.__dict__:
            self.close()
            raise ValueError(f"layer {name!r} is already watched by another Monitor (close that one first)")
        units = self._units[name] = _Units()
        self._kinds[name] = kind
        original = getattr(module, attr)
        F, count_zeros = self._F, self.count_zeros

        def watched(*args, **kwargs):
            with F.override(_CountingBackend(F.current(), units, count_zeros)):  # this thread, this call
                return original(*args, **kwargs)

        module.__dict__[attr] = watched
        self._wrapped.append((module, attr))

    def close(self) -> None:
        """Give the watched layers their own ``forward`` back; the history stays."""
        for module, attr in self._wrapped:
            module.__dict__.pop(attr, None)
        self._wrapped = []

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _append(self, metric: str, layer: str, value: float) -> None:
        self.history[metric].setdefault(layer, []).append(value)

    def step(self) -> None:
        """Record this step: the activation counts since the last call, and the weights and their
        gradients as they are now (call it after ``backward``; before or after the optimizer step)."""
        for name, u in self._units.items():
            if u.step_counts is None:
                continue
            channels = u.step_counts.size
            self._append("active", name, float(u.step_counts.sum() / max(u.step_size, 1)) if channels else 0.0)
            if u.zeros is not None:
                self._append("zeros", name, float(u.zeros))
            u.end_step()
        weights = self._weights if self.weight_every and self.steps % self.weight_every == 0 else ()
        for name, w in weights:
            self._append("negative_weights", name, negative_share(w.data))
            if w.grad is not None:
                self._append("grad_norm", name, grad_norm(w.grad))
                self._append("sign_coherence", name, sign_coherence(w.grad))
        self.steps += 1

    def dead_units(self) -> Dict[str, float]:
        """Per watched layer, the share of units not positive once since the epoch began."""
        return {n: dead_share(u.window) for n, u in self._units.items() if u.window is not None}

    def epoch(self) -> Dict[str, float]:
        """Close the epoch: record and return :meth:`dead_units`, and start a new window."""
        dead = self.dead_units()
        for name, share in dead.items():
            self._append("dead", name, share)
            self._units[name].window = None
        return dead

    def layers(self) -> List[str]:
        """The layers with any record, in model order."""
        return [n for n in self._kinds if any(n in h for h in self.history.values())
                or (n in self._units and self._units[n].window is not None)]

    def summary(self) -> List[dict]:
        """One dict per layer with the latest value of each metric (the dead share of the last
        closed epoch, or of the open one if none closed yet)."""
        open_dead = self.dead_units()
        rows = []
        for n in self.layers():
            row = {"layer": n, "kind": self._kinds[n]}
            for metric in self._METRICS:
                row[metric] = _nan_last(self.history[metric].get(n, []))
            if np.isnan(row["dead"]) and n in open_dead:
                row["dead"] = open_dead[n]
            rows.append(row)
        return rows

    def table(self) -> str:
        """The latest figures per layer as a text table."""
        headers = ["layer", "kind", "dead", "active", "zeros", "neg. weights", "grad norm", "sign coh."]
        rows = [[r["layer"], r["kind"], r["dead"], r["active"], r["zeros"], r["negative_weights"], r["grad_norm"],
                 r["sign_coherence"]] for r in self.summary()]
        return f"step {self.steps}\n" + format_table(headers, rows)

    def to_csv(self, path: Union[str, os.PathLike]) -> None:
        """Write the whole history as ``metric, layer, index, value`` rows."""
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["metric", "layer", "index", "value"])
            for metric, layers in self.history.items():
                for layer, values in layers.items():
                    out.writerows([metric, layer, i, v] for i, v in enumerate(values))

    def plot(self, path: Union[str, os.PathLike]) -> None:
        """Draw the history (one panel per metric) to an image file; needs matplotlib."""
        Figure = _figure_class()
        if Figure is None:
            raise ImportError("Monitor.plot needs matplotlib (pip install 'relucore[examples]'); "
                              "Monitor.to_csv writes the same numbers")
        metrics = [m for m in self._METRICS if self.history[m]]
        fig = Figure(figsize=(3.2 * max(len(metrics), 1), 2.8))
        axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            every = self.weight_every if metric in ("negative_weights", "grad_norm", "sign_coherence") else 1
            for layer, values in self.history[metric].items():
                ax.plot(np.arange(len(values)) * every, values, label=layer, lw=1)
            ax.set_title(metric, fontsize=9)
            ax.set_xlabel("epoch" if metric == "dead" else "step", fontsize=8)
            ax.tick_params(labelsize=7)
        if metrics:
            axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
