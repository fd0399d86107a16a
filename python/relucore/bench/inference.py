"""Batch-1 inference cases: the example CNN's evaluation forward on one 1x28x28 image.

The network is ``Conv2d(1,16,3,p=1)-BatchNorm2d-ReLU-MaxPool2d(2)-Conv2d(16,32,3,p=1)-BatchNorm2d-ReLU-
MaxPool2d(2)-Flatten-Linear(32*7*7,10)`` in evaluation mode, with running statistics away from
their initial values. Two relucore rows per dtype: the model as it is (``model.eval()``) and
``nn.fuse(model)`` (batch norms folded into the convolutions). ``sizes`` is not used. The NumPy
column is the same model on the NumPy backend (``relucore.use_backend("numpy")``); PyTorch's is the
same network with the same parameters under ``torch.no_grad()``. The work is about 2 MFLOP, so the
rows measure per-call overhead as much as the kernels.
"""

from __future__ import annotations

import functools
from typing import List, Sequence

import numpy as np

from .cases import Case
from .peers import torch_example_cnn

#: relucore against PyTorch eager, per dtype and per row (the model as it is, and fused)
TARGET_VS_TORCH = 2.0
#: multiply-adds of the network on one image: the two convolutions and the linear layer
MACS = 16 * 9 * 28 * 28 + 32 * 16 * 9 * 14 * 14 + 32 * 7 * 7 * 10


def example_cnn(dtype, seed: int = 0):
    """The example CNN in evaluation mode, float ``dtype``, with running statistics set from ``seed``."""
    from .. import nn
    from ..examples.digits import make_model

    nn.manual_seed(seed)
    model = make_model(dtype, 28)
    rng = np.random.default_rng(seed)
    for m in model:
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean[...] = rng.standard_normal(c) * 0.1
            m.running_var[...] = rng.uniform(0.5, 2.0, c)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.standard_normal(c) * 0.1
    return model.eval()


def torch_cnn(torch, model):
    """``model`` (the example CNN) as a ``torch.nn.Sequential`` in evaluation mode, same parameters."""
    return torch_example_cnn(torch, model.state_dict()).eval()


class Models:
    """The model, its fused copy and the input image for one dtype, made once."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)

    @functools.cached_property
    def eval(self):
        return example_cnn(self.dtype)

    @functools.cached_property
    def fused(self):
        from .. import nn

        return nn.fuse(self.eval)

    @functools.cached_property
    def x(self) -> np.ndarray:
        return np.random.default_rng(1).standard_normal((1, 1, 28, 28)).astype(self.dtype)


def _on_numpy(models: "Models", kind: str, x):
    """``models``' ``kind`` model ("eval" or "fused") on the NumPy backend."""
    from .. import use_backend

    with use_backend("numpy"):
        return getattr(models, kind)(x)


def _torch(models: "Models"):
    """The PyTorch maker: the unfused network (PyTorch eager runs it as written) in ``no_grad``."""
    def make(torch):
        t = torch_cnn(torch, models.eval)

        def run(x):
            with torch.no_grad():
                return t(x)

        return run

    return make


def cases(sizes: Sequence[int], dtype) -> List[Case]:
    """The evaluation forward of the example CNN and of its fused copy on one image (``sizes`` is not used)."""
    dtype = np.dtype(dtype)
    d = Models(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    bits = "f32" if dtype == np.float32 else "f64"
    common = dict(n=28 * 28, dtype=dtype.name, shape=(1, 1, 28, 28), suite=__name__, rtol=tol, atol=tol,
                  flops=2 * MACS, limit="none", make_inputs=lambda: (d.x,), torch=_torch(d))
    out = []
    for kind in ("eval", "fused"):
        on_numpy = functools.partial(_on_numpy, d, kind)
        out.append(Case(f"infer_b1_{kind}", f"batch-1 inference {bits} ({kind})",
                        relucore=lambda x, k=kind: getattr(d, k)(x), numpy=on_numpy, reference=on_numpy, **common))
    return out


def targets(rows: List[dict]) -> List[dict]:
    """Batch-1 inference against PyTorch eager, per dtype, for the model as it is and fused."""
    out = []
    for r in rows:
        if not r["op"].startswith("infer_b1_"):
            continue
        text = f"{r['label']} >= {TARGET_VS_TORCH:g}x PyTorch eager"
        v = r.get("speedup_vs_torch")
        out.append({"target": text, "met": None, "detail": "not measured (no torch)"} if v is None else
                   {"target": text, "met": v >= TARGET_VS_TORCH, "detail": f"{v:.2f}x",
                    "noisy": r.get("noisy", False)})
    return out
