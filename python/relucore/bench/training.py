"""Training step case: one SGD step of the example CNN, relucore vs the numpy backend vs PyTorch.

``sizes`` is not used. The model is ``Conv2d(1,16,3,p=1)-BatchNorm2d-ReLU-MaxPool2d(2)-Conv2d(16,32,3,p=1)-
BatchNorm2d-ReLU-MaxPool2d(2)-Flatten-Linear(32*7*7,10)`` on a batch of 64 MNIST-size images. One step
is forward, cross-entropy, backward and SGD with momentum 0.9. The three implementations start
from the same parameters: ``relucore`` is :mod:`relucore.nn` on the native kernels, ``numpy`` the
same model on the numpy backend (``rc.use_backend("numpy")``, :mod:`relucore.reference`), and PyTorch
``torch.nn`` eager with autograd. Each call first puts the parameters, batch-norm statistics and
momentum buffers back to their starting values (a few small copies, in all three), so every call
computes the same step and its result (the loss and every parameter's gradient) can be checked.
``flops`` makes relucore-bench time the numpy backend alone first (its BLAS threads spin after each
call and would slow whatever runs next), then relucore and PyTorch in turns.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Sequence

import numpy as np

import relucore as rc

from .cases import Case
from .peers import torch_example_cnn

#: (N, C, H, W) of the batch.
SHAPE = (64, 1, 28, 28)
CLASSES = 10
LR, MOMENTUM = 0.01, 0.9
#: the training step against PyTorch eager and against the numpy backend, float32 and float64
TARGET_VS_TORCH = 1.5
TARGET_VS_NUMPY = 20.0


def relucore_model(dtype, side: int = 28):
    """The example CNN in :mod:`relucore.nn` (seeded: every call gives the same parameters)."""
    from relucore import nn
    from relucore.examples.digits import make_model

    nn.manual_seed(0)
    return make_model(dtype, side)


class Setup:
    """The batch, the starting state and each implementation's model, built on first use."""

    def __init__(self, shape: tuple, dtype: np.dtype):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.models: Dict[str, Any] = {}

    @functools.cached_property
    def state(self) -> Dict[str, np.ndarray]:
        return relucore_model(self.dtype, self.shape[2]).state_dict()

    @functools.cached_property
    def arrays(self) -> tuple:
        rng = np.random.default_rng(list(self.shape))
        x = rng.standard_normal(self.shape, dtype=np.float64).astype(self.dtype)
        return x, rng.integers(0, CLASSES, self.shape[0]), self

    def __repr__(self) -> str:  # shown in pytest ids and messages
        return f"Setup({self.shape}, {self.dtype.name})"


class _RelucoreStep:
    """A :mod:`relucore.nn` model, loss and optimizer, and the arrays a reset writes back."""

    def __init__(self, setup: Setup):
        from relucore import nn, optim

        self.model = relucore_model(setup.dtype, setup.shape[2])
        self.loss_fn = nn.CrossEntropyLoss()
        self.params = list(self.model.parameters())
        self.opt = optim.SGD(self.params, lr=LR, momentum=MOMENTUM)
        live = self.model._state_arrays()
        self.resets = [(live[k], v) for k, v in setup.state.items()]

    def __call__(self, x, t):
        for dst, src in self.resets:
            np.copyto(dst, src)
        for s in self.opt.state.values():
            s["momentum_buffer"][...] = 0
        loss = self.loss_fn(self.model(x), t)
        self.model.zero_grad()
        self.model.backward(self.loss_fn.backward(), input_grad=False)
        self.opt.step()
        return (np.asarray(loss, x.dtype),) + tuple(p.grad for p in self.params)


def _step(key: str, backend: str):
    def step(x, t, setup: Setup):
        run = setup.models.get(key)
        if run is None:
            run = setup.models[key] = _RelucoreStep(setup)
        with rc.use_backend(backend):
            return run(x, t)

    return step


rc_step = _step("relucore", "native")
numpy_step = _step("numpy", "numpy")
ref_step = _step("reference", "numpy")


def _t_step(torch):
    def step(x, t, setup: Setup):
        run = setup.models.get("torch")
        if run is None:
            run = setup.models["torch"] = _TorchStep(torch, setup)
        return run(x, t)

    return step


class _TorchStep:
    """The same model in ``torch.nn`` with the same starting state, and its SGD."""

    def __init__(self, torch, setup: Setup):
        self.torch = torch
        self.model = torch_example_cnn(torch, setup.state, setup.shape[2])
        init = {k: torch.from_numpy(np.array(v)) for k, v in setup.state.items()}
        live = self.model.state_dict(keep_vars=True)
        self.resets = [(live[k], v) for k, v in init.items()]
        self.params = list(self.model.parameters())
        self.opt = torch.optim.SGD(self.params, lr=LR, momentum=MOMENTUM)

    def __call__(self, x, t):
        torch = self.torch
        with torch.no_grad():
            for dst, src in self.resets:
                dst.copy_(src)
            for s in self.opt.state.values():
                if s.get("momentum_buffer") is not None:
                    s["momentum_buffer"].zero_()
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.model(x), t)
        loss.backward()
        self.opt.step()
        return (loss.detach(),) + tuple(p.grad for p in self.params)


def step_flops(shape) -> int:
    """Multiply-adds x 2 of one step: both convolutions and the linear layer forward, their weight
    gradients, and the input gradients of all but the first convolution."""
    n, c, h, w = shape
    q = h // 4
    conv1 = 2 * n * 16 * h * w * c * 9
    conv2 = 2 * n * 32 * (h // 2) * (w // 2) * 16 * 9
    fc = 2 * n * 32 * q * q * CLASSES
    return 2 * conv1 + 3 * conv2 + 3 * fc


def cases(sizes: Sequence[int], dtype, shape=SHAPE) -> List[Case]:
    """The training step of the example CNN on ``shape`` (``sizes`` is not used; H = W, a multiple of 4)."""
    dtype = np.dtype(dtype)
    tol = 2e-3 if dtype == np.float32 else 1e-9
    setup = Setup(tuple(shape), dtype)
    short = "f32" if dtype == np.float32 else "f64"
    return [Case("train_step", f"train step {short}", n=int(np.prod(shape)), dtype=dtype.name, shape=tuple(shape),
                 make_inputs=lambda: setup.arrays, relucore=rc_step, numpy=numpy_step, torch=_t_step,
                 reference=ref_step, flops=step_flops(shape), limit="none", suite=__name__, rtol=tol,
                 atol=tol * 1e-2, peers_alone=True)]


def _target(text: str, v, want: float, noisy: bool, missing: str) -> dict:
    if v is None:
        return {"target": text, "met": None, "detail": missing}
    return {"target": text, "met": v >= want, "detail": f"{v:.2f}x", "noisy": noisy}


def targets(rows: List[dict]) -> List[dict]:
    """The training step against PyTorch and against the numpy backend, per dtype."""
    out = []
    for r in rows:
        if r["op"] != "train_step":
            continue
        noisy = r.get("noisy", False)
        out.append(_target(f"{r['label']} >= {TARGET_VS_TORCH:g}x PyTorch eager", r.get("speedup_vs_torch"),
                           TARGET_VS_TORCH, noisy, "not measured (no torch)"))
        out.append(_target(f"{r['label']} >= {TARGET_VS_NUMPY:g}x the numpy backend", r.get("speedup_vs_numpy"),
                           TARGET_VS_NUMPY, noisy, "not measured"))
    return out


def notes(rows: List[dict], threads: int) -> List[str]:
    """What one step is (printed after the table)."""
    if not rows:
        return []
    n, c, h, w = rows[0]["shape"]
    return [f"train step: forward, cross-entropy, backward and SGD (momentum {MOMENTUM}) of the example CNN on "
            f"{n} x {c}x{h}x{w} images, {threads} threads; \"numpy\" is the same "
            "relucore.nn model on the numpy backend; each call first restores the starting state (all three); "
            "each library is timed alone, relucore and PyTorch in two alternating rounds (timed sample by sample "
            "in turns, PyTorch's idle OpenMP threads spin into relucore's samples and about halve its speed)"]
