"""dying-relu: ReLU against Leaky ReLU, ELU and a noisy ReLU at a learning rate that kills units.

An MLP with three hidden layers of 64 units (no batch norm, PyTorch's default initialisation) is
trained by SGD with momentum on generated blobs at learning rate 0.05 and at 1.0, with each
activation. A :class:`relucore.diagnostics.Monitor` records the share of dead units (never positive
over an epoch; for Leaky ReLU and ELU such units still pass a gradient) from the activation kernels'
counts.
"""

from __future__ import annotations

import numpy as np

from .. import nn, optim
from ._common import Result, blob_split, pct, plot_dead, run_seeds, spread, train_watched

ACTIVATIONS = ("relu", "leaky relu", "elu", "noisy relu")
RATES = (1e-3, 0.1)
FEATURES, WIDTH, CLASSES = 16, 64, 4


class NoisyReLU(nn.ReLU):
    r"""ReLU of the input plus Gaussian noise in training, :math:`\max(0, x + \mathcal{N}(0, \sigma^2))`
    (Nair and Hinton, 2010); the plain ReLU in evaluation.

    Args:
        sigma: the noise's standard deviation. Default: ``0.5``.
        rng: :class:`numpy.random.Generator` for the noise. Default: a new one seeded with 0.
    """

    def __init__(self, sigma: float = 0.5, rng=None) -> None:
        super().__init__()
        self.sigma = float(sigma)
        self.rng = np.random.default_rng(0) if rng is None else rng

    def forward(self, x):
        if self.training:
            x = x + self.rng.normal(0.0, self.sigma, np.shape(x)).astype(np.asarray(x).dtype)
        return super().forward(x)


def _model(act: str, seed: int) -> nn.Sequential:
    nn.manual_seed(seed)
    make = {"relu": nn.ReLU, "leaky relu": nn.LeakyReLU, "elu": nn.ELU,
            "noisy relu": lambda: NoisyReLU(rng=np.random.default_rng(seed))}[act]
    layers, width = [], FEATURES
    for _ in range(3):
        layers += [nn.Linear(width, WIDTH), make()]
        width = WIDTH
    return nn.Sequential(*layers, nn.Linear(WIDTH, CLASSES))


def _one_seed(seed: int, bar, epochs: int, n: int) -> dict:
    data = blob_split(seed, n, FEATURES, CLASSES)
    out = {}
    for lr in RATES:
        for act in ACTIVATIONS:
            model = _model(act, seed)
            opt = optim.Adam(model.parameters(), lr=lr)
            out[act, lr] = train_watched(model, data, opt, epochs, 32, np.random.default_rng(seed + 1), bar)
    return out


def run(seeds, quick: bool = False, progress: bool = False) -> Result:
    epochs, n = (3, 512) if quick else (12, 2048)
    runs = run_seeds(seeds, lambda s, bar: _one_seed(s, bar, epochs, n), "dying-relu", progress,
                     epochs * len(ACTIVATIONS) * len(RATES))
    rows, metrics, curves = [], {}, {}
    for lr in RATES:
        for act in ACTIVATIONS:
            rs = [r[act, lr] for r in runs]
            rows.append([act, f"{lr:g}", pct(r["dead"][0] for r in rs), pct(r["dead"][-1] for r in rs),
                         pct(r["acc"] for r in rs), spread(r["losses"][-1] for r in rs)])
            metrics[f"dead_{act}_{lr:g}"] = float(np.mean([r["dead"][-1] for r in rs]))
            metrics[f"acc_{act}_{lr:g}"] = float(np.mean([r["acc"] for r in rs]))
            curves[act, lr] = np.mean([r["dead"] for r in rs], axis=0)
    lo, hi = RATES
    alive = sorted(ACTIVATIONS, key=lambda a: metrics[f"dead_{a}_{hi:g}"])
    best = max(ACTIVATIONS, key=lambda a: metrics[f"acc_{a}_{hi:g}"])

    def dead(act, lr):
        return pct(r[act, lr]["dead"][-1] for r in runs)

    conclusion = (f"At learning rate {hi:g} the last epoch leaves {dead('relu', hi)} of ReLU units never positive "
                  f"(against {dead('relu', lo)} at {lo:g}), {dead('leaky relu', hi)} with Leaky ReLU, "
                  f"{dead('elu', hi)} with ELU and {dead('noisy relu', hi)} with a noisy ReLU; {alive[0]} keeps "
                  f"the most units alive and {best} reaches the best accuracy "
                  f"({pct(r[best, hi]['acc'] for r in runs)} against ReLU's {pct(r['relu', hi]['acc'] for r in runs)}; "
                  f"mean ± std over {len(seeds)} seeds).")
    headers = ["activation", "lr", "dead, epoch 1", "dead, last epoch", "test accuracy", "final loss"]
    return Result("dying-relu", headers, rows, conclusion, metrics, dict(curves=curves), list(seeds))


def plot(result: Result, fig) -> None:
    plot_dead(result, fig, RATES, ACTIVATIONS)
