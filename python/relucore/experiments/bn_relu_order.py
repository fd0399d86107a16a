"""bn-relu-order: batch norm before or after ReLU, at an ordinary and at a provoking learning rate.

An MLP with three hidden layers of 64 units is trained by SGD on generated blobs with each hidden
layer as Linear -> BatchNorm -> ReLU (the usual order, run fused) or Linear -> ReLU -> BatchNorm,
with PyTorch's default initialisation, at learning rate 0.05 and at 2.0 (high enough to provoke dying
units), next to the same network without batch norm. A :class:`relucore.diagnostics.Monitor`
records the share of dead units (never positive over an epoch) from the activation kernels' counts.
"""

from __future__ import annotations

import numpy as np

from .. import nn, optim
from ._common import Result, blob_split, pct, plot_dead, run_seeds, spread, train_watched

ORDERS = ("bn-relu", "relu-bn", "no bn")
RATES = (1e-3, 0.1)
FEATURES, WIDTH, CLASSES = 16, 64, 4


def _model(order: str, seed: int) -> nn.Sequential:
    nn.manual_seed(seed)
    layers, width = [], FEATURES
    for _ in range(3):
        layers.append(nn.Linear(width, WIDTH))
        width = WIDTH
        if order == "bn-relu":
            layers += [nn.BatchNorm1d(WIDTH), nn.ReLU()]
        elif order == "relu-bn":
            layers += [nn.ReLU(), nn.BatchNorm1d(WIDTH)]
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers, nn.Linear(WIDTH, CLASSES))


def _one_seed(seed: int, bar, epochs: int, n: int) -> dict:
    data = blob_split(seed, n, FEATURES, CLASSES)
    out = {}
    for lr in RATES:
        for order in ORDERS:
            model = _model(order, seed)
            opt = optim.Adam(model.parameters(), lr=lr)
            out[order, lr] = train_watched(model, data, opt, epochs, 32, np.random.default_rng(seed + 1), bar)
    return out


def run(seeds, quick: bool = False, progress: bool = False) -> Result:
    epochs, n = (3, 512) if quick else (12, 2048)
    runs = run_seeds(seeds, lambda s, bar: _one_seed(s, bar, epochs, n), "bn-relu-order", progress,
                     epochs * len(ORDERS) * len(RATES))
    rows, metrics, curves = [], {}, {}
    for lr in RATES:
        for order in ORDERS:
            rs = [r[order, lr] for r in runs]
            rows.append([order, f"{lr:g}", pct(r["dead"][0] for r in rs), pct(r["dead"][-1] for r in rs),
                         pct(max(r["dead"]) for r in rs), pct(r["acc"] for r in rs),
                         spread(r["losses"][-1] for r in rs)])
            metrics[f"dead_{order}_{lr:g}"] = float(np.mean([r["dead"][-1] for r in rs]))
            metrics[f"acc_{order}_{lr:g}"] = float(np.mean([r["acc"] for r in rs]))
            curves[order, lr] = np.mean([r["dead"] for r in rs], axis=0)
    lo, hi = RATES

    def dead(order, lr):
        return pct(r[order, lr]["dead"][-1] for r in runs)

    def acc(order, lr):
        return pct(r[order, lr]["acc"] for r in runs)

    fewer = "fewer" if metrics[f"dead_bn-relu_{hi:g}"] <= metrics[f"dead_relu-bn_{hi:g}"] else "more"
    conclusion = (f"At learning rate {hi:g} the last epoch leaves {dead('bn-relu', hi)} of the units dead with batch "
                  f"norm before ReLU, {dead('relu-bn', hi)} with it after and {dead('no bn', hi)} without it "
                  f"(accuracy {acc('bn-relu', hi)}, {acc('relu-bn', hi)}, {acc('no bn', hi)}), so BN before ReLU "
                  f"keeps {fewer} units alive than after it, against {dead('bn-relu', lo)}, {dead('relu-bn', lo)} "
                  f"and {dead('no bn', lo)} dead at learning rate {lo:g} (mean ± std over {len(seeds)} seeds).")
    headers = ["order", "lr", "dead, epoch 1", "dead, last epoch", "dead, worst epoch", "test accuracy", "final loss"]
    return Result("bn-relu-order", headers, rows, conclusion, metrics, dict(curves=curves), list(seeds))


def plot(result: Result, fig) -> None:
    plot_dead(result, fig, RATES, ORDERS)
