"""Softmax cross-entropy cases: the fused loss + gradient on classifier shapes, and softmax alone.

``sizes`` is not used. The NumPy baseline is the log-softmax cross-entropy and its gradient as one
writes them by hand; PyTorch's is ``F.cross_entropy`` and its autograd backward. ``bytes`` is the
minimum traffic: read the logits, write the gradient (softmax: read x, write y).
"""

from __future__ import annotations

import functools
from typing import List, Sequence

import numpy as np

import relucore as rc

from .cases import Case

#: (name, N, C): ImageNet-size classes (the issue's shape), a batch of CIFAR/MNIST-size logits.
SHAPES = (("256x1000", 256, 1000), ("64x10", 64, 10))
#: fused cross-entropy forward+backward against PyTorch on the 256x1000 logits
TARGET_VS_TORCH = 2.0


class Inputs:
    """Logits and class targets for one shape, generated once."""

    def __init__(self, n: int, c: int, dtype: np.dtype):
        self.n, self.c, self.dtype = n, c, np.dtype(dtype)

    @functools.cached_property
    def arrays(self) -> tuple:
        rng = np.random.default_rng([self.n, self.c])
        x = (rng.standard_normal((self.n, self.c), dtype=np.float64) * 2).astype(self.dtype)
        return x, rng.integers(0, self.c, self.n)


def np_cross_entropy(x, t):
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    n = x.shape[0]
    rows = np.arange(n)
    loss = (np.log(s[:, 0]) + m[:, 0] - x[rows, t]).mean()
    g = e / s
    g[rows, t] -= 1
    g /= n
    return x.dtype.type(loss), g


def rc_cross_entropy(x, t):
    return rc.cross_entropy(x, t)


def ref_cross_entropy(x, t):
    from relucore import reference as R

    return R.cross_entropy(x, t)


def _t_cross_entropy(torch):
    F = torch.nn.functional

    def fwdbwd(x, t):
        x = x.detach().requires_grad_()
        loss = F.cross_entropy(x, t)
        loss.backward()
        return loss.detach(), x.grad

    return fwdbwd


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def rc_softmax(x):
    return rc.softmax(x)


def ref_softmax(x):
    from relucore import reference as R

    return R.softmax(x)


def _t_softmax(torch):
    def fwd(x):
        return torch.softmax(x, 1)

    return fwd


def cases(sizes: Sequence[int], dtype, shapes=SHAPES) -> List[Case]:
    """Cross-entropy forward+backward and softmax per shape (``sizes`` is not used)."""
    dtype = np.dtype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    out: List[Case] = []
    for name, n, c in shapes:
        d = Inputs(n, c, dtype)
        nb = n * c * dtype.itemsize
        common = dict(n=n * c, dtype=dtype.name, shape=(n, c), suite=__name__, rtol=tol, atol=tol)
        out += [
            Case(f"cross_entropy_{name}", f"cross_entropy fwd+bwd {name}", make_inputs=lambda d=d: d.arrays,
                 relucore=rc_cross_entropy, numpy=np_cross_entropy, torch=_t_cross_entropy,
                 reference=ref_cross_entropy, bytes=2 * nb, **common),
            Case(f"softmax_{name}", f"softmax {name}", make_inputs=lambda d=d: d.arrays[:1],
                 relucore=rc_softmax, numpy=np_softmax, torch=_t_softmax, reference=ref_softmax,
                 bytes=2 * nb, **common),
        ]
    return out


def targets(rows: List[dict]) -> List[dict]:
    """The fused cross-entropy against PyTorch on the 256x1000 float32 logits."""
    sel = [r for r in rows if r["op"] == "cross_entropy_256x1000" and r["dtype"] == "float32"]
    if not sel:
        return []
    r = sel[0]
    text = f"cross_entropy fwd+bwd 256x1000 >= {TARGET_VS_TORCH:g}x PyTorch"
    v = r.get("speedup_vs_torch")
    if v is None:
        return [{"target": text, "met": None, "detail": "not measured (no torch)"}]
    return [{"target": text, "met": v >= TARGET_VS_TORCH, "detail": f"{v:.2f}x", "noisy": r.get("noisy", False)}]
