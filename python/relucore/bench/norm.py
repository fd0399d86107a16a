"""Batch norm cases: BN+ReLU training forward+backward and eval forward on fixed NCHW shapes.

``sizes`` is not used. The NumPy baseline is BN then ReLU as one would write it by hand; PyTorch's
is ``torch.relu(F.batch_norm(...))`` and its autograd backward. ``bytes`` is the minimum traffic:
training forward+backward reads x and writes y, then reads dy and x and writes dx (5 tensors);
eval reads x and writes y (2 tensors). relucore's passes: the statistics read x once more and the
backward's sums read dy and x once more (8 tensors), from the last-level cache when the tensors fit.
The floor target is judged at the run's DRAM copy rate; the stricter floor at the rate of a copy of
the same size is printed beside it.
"""

from __future__ import annotations

import functools
from typing import List, Sequence

import numpy as np

import relucore as rc

from .cases import Case, size_label
from .limits import REFERENCE_COPY_ELEMENTS

#: (name, N, C, H, W): the issue's shapes.
SHAPES = (("56x56", 32, 64, 56, 56), ("14x14", 64, 256, 14, 14), ("8x8", 8, 32, 8, 8))
EPS = 1e-5
#: BN+ReLU training forward+backward (float32) against PyTorch, per shape
TARGETS_VS_TORCH = {"56x56": 3.0, "14x14": 2.0, "8x8": 1.5}
#: ... and its time against the bandwidth floor: the minimum traffic at the run's DRAM copy rate (the
#: 16M float32 copy of the limits), judged; the same-size copy's rate, stricter, is printed beside it
TARGET_FLOOR = 1.5
REF_LABEL = size_label(REFERENCE_COPY_ELEMENTS)
#: tensors up to this size with N >= 4 run one channel at a time (cpp/ops/norm.cpp kChannelBytes)
CHANNEL_BYTES = 256 << 10


class Inputs:
    """x, dy, weight, bias and running buffers for one shape, generated once."""

    def __init__(self, shape: tuple, dtype: np.dtype):
        self.shape, self.dtype = shape, np.dtype(dtype)

    @functools.cached_property
    def arrays(self) -> tuple:
        rng = np.random.default_rng(list(self.shape))
        c = self.shape[1]
        x = rng.standard_normal(self.shape, dtype=np.float64).astype(self.dtype)
        dy = rng.standard_normal(self.shape, dtype=np.float64).astype(self.dtype)
        w = rng.uniform(0.5, 1.5, c).astype(self.dtype)
        b = rng.standard_normal(c).astype(self.dtype)
        return x, dy, w, b, np.zeros(c, self.dtype), np.ones(c, self.dtype)


def _bc(v):
    return v.reshape(1, -1, 1, 1)


# ---- NumPy baselines ---------------------------------------------------------------------------


def np_bn_relu_fwdbwd(x, dy, w, b, rm, rv):
    n = x.size // x.shape[1]
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    rm *= 0.9
    rm += 0.1 * mean
    rv *= 0.9
    rv += 0.1 * var * (n / (n - 1))
    invstd = 1 / np.sqrt(var + EPS)
    xhat = (x - _bc(mean)) * _bc(invstd)
    y = np.maximum(xhat * _bc(w) + _bc(b), 0)
    g = np.where(y > 0, dy, 0)
    db = g.sum(axis=(0, 2, 3))
    dw = (g * xhat).sum(axis=(0, 2, 3))
    dx = _bc(w * invstd) * (g - _bc(db / n) - xhat * _bc(dw / n))
    return y, dx, dw, db


def np_bn_relu_eval(x, w, b, rm, rv):
    scale = w / np.sqrt(rv + EPS)
    return np.maximum(x * _bc(scale) + _bc(b - rm * scale), 0)


# ---- relucore ----------------------------------------------------------------------------------


def rc_bn_relu_fwdbwd(x, dy, w, b, rm, rv):
    y, mean, invstd = rc.batch_norm(x, rm, rv, w, b, True, activation="relu")
    dx, dw, db = rc.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation="relu")
    return y, dx, dw, db


def ref_bn_relu_fwdbwd(x, dy, w, b, rm, rv):
    from relucore import reference as R

    y, mean, invstd = R.batch_norm(x, rm.copy(), rv.copy(), w, b, True, activation="relu")
    return (y,) + R.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation="relu")


def rc_bn_relu_eval(x, w, b, rm, rv):
    return rc.batch_norm(x, rm, rv, w, b, activation="relu")[0]


def ref_bn_relu_eval(x, w, b, rm, rv):
    from relucore import reference as R

    return R.batch_norm(x, rm, rv, w, b, activation="relu")[0]


# ---- PyTorch -----------------------------------------------------------------------------------


def _t_bn_relu_fwdbwd(t):
    F = t.nn.functional

    def fwdbwd(x, dy, w, b, rm, rv):
        x = x.detach().requires_grad_()
        w = w.detach().requires_grad_()
        b = b.detach().requires_grad_()
        y = t.relu(F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=EPS))
        y.backward(dy)
        return y.detach(), x.grad, w.grad, b.grad

    return fwdbwd


def _t_bn_relu_eval(t):
    F = t.nn.functional

    def fwd(x, w, b, rm, rv):
        with t.no_grad():
            return t.relu(F.batch_norm(x, rm, rv, w, b, training=False, eps=EPS))

    return fwd


def cases(sizes: Sequence[int], dtype, shapes=SHAPES) -> List[Case]:
    """BN+ReLU training forward+backward and eval forward per shape (``sizes`` is not used)."""
    dtype = np.dtype(dtype)
    tol = 2e-3 if dtype == np.float32 else 1e-9
    out: List[Case] = []
    for name, n, c, h, w in shapes:
        shape = (n, c, h, w)
        d = Inputs(shape, dtype)
        nb = n * c * h * w * dtype.itemsize
        common = dict(n=n * c * h * w, dtype=dtype.name, shape=shape, suite=__name__, rtol=tol, atol=tol)
        out += [
            Case(f"bn_relu_fwdbwd_{name}", f"bn+relu fwd+bwd {name}", make_inputs=lambda d=d: d.arrays,
                 relucore=rc_bn_relu_fwdbwd, numpy=np_bn_relu_fwdbwd, torch=_t_bn_relu_fwdbwd,
                 reference=ref_bn_relu_fwdbwd, bytes=5 * nb, **common),
            Case(f"bn_relu_eval_{name}", f"bn+relu eval {name}",
                 make_inputs=lambda d=d: tuple(d.arrays[i] for i in (0, 2, 3, 4, 5)),
                 relucore=rc_bn_relu_eval, numpy=np_bn_relu_eval, torch=_t_bn_relu_eval,
                 reference=ref_bn_relu_eval, bytes=2 * nb, **common),
        ]
    return out


def targets(rows: List[dict]) -> List[dict]:
    """The batch-norm targets, judged on this run's float32 forward+backward rows."""
    out = []
    for r in rows:
        if not r["op"].startswith("bn_relu_fwdbwd_") or r["dtype"] != "float32":
            continue
        name = r["op"][len("bn_relu_fwdbwd_"):]
        noisy = r.get("noisy", False)
        want = TARGETS_VS_TORCH.get(name)
        if want is not None:
            text = f"bn+relu fwd+bwd {name} >= {want:g}x PyTorch"
            v = r.get("speedup_vs_torch")
            out.append({"target": text, "met": None, "detail": "not measured (no torch)"} if v is None else
                       {"target": text, "met": v >= want, "detail": f"{v:.2f}x", "noisy": noisy})
        dram, same = r.get(f"pct_of_copy_{REF_LABEL}"), r.get("pct_of_copy_same_size")
        if dram:
            detail = f"{100 / dram:.2f}x the floor at the {REF_LABEL} (DRAM) copy rate"
            if same:
                detail += f"; {100 / same:.2f}x at the same-size copy rate"
            out.append({"target": f"bn+relu fwd+bwd {name} within {TARGET_FLOOR:g}x of the bandwidth floor",
                        "met": 100 / dram <= TARGET_FLOOR, "detail": detail, "noisy": noisy})
    return out


def notes(rows: List[dict], threads: int) -> List[str]:
    """Bytes moved against the minimum, per shape (printed after the table)."""
    lines = ["batch norm: GB/s and %copy count the minimum traffic (fwd+bwd: x, y, dy, x, dx = 5 tensors;"
             " eval: x, y = 2)."]
    for r in rows:
        if not r["op"].startswith("bn_relu_fwdbwd"):
            continue
        item = np.dtype(r["dtype"]).itemsize
        tensor = r["n"] * item
        second = ("from L1/L2, one channel at a time" if tensor <= CHANNEL_BYTES and r["shape"][0] >= 4 else
                  "from the last-level cache when the tensors fit")
        lines.append(
            f"  {r['label']}: relucore reads x twice in the forward (statistics, then the normalize pass) and dy, x "
            f"twice in the backward: 8 tensors of {tensor / 1e6:.2f} MB ({8 / 5:.1f}x the minimum), the second "
            f"reads {second}")
    lines.append("  (shared 2-core machine: the figures are ratios measured in one process, and noisy)")
    return lines
