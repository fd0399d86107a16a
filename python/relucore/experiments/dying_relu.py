"""dying-relu: ReLU against Leaky ReLU, ELU and a noisy ReLU at a learning rate that kills units.

An MLP with three hidden layers of 64 units (no batch norm, PyTorch's default initialisation) is
trained by Adam on generated overlapping blobs at its default learning rate 0.001 and at 0.1 (high
enough to kill units; plain SGD at such rates diverges before units die), with each activation. A
:class:`relucore.diagnostics.Monitor` records the share of dead units (never positive over an
epoch; for Leaky ReLU and ELU such units still pass a gradient) from the activation kernels' counts.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ._common import BLOB_CLASSES as CLASSES
from ._common import BLOB_FEATURES as FEATURES
from ._common import Result, compare_dead_units, plot_dead

ACTIVATIONS = ("relu", "leaky relu", "elu", "noisy relu")
RATES = (1e-3, 0.1)
WIDTH = 64


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


def run(seeds, quick: bool = False, progress: bool = False) -> Result:
    share, headers, rows, metrics, curves = compare_dead_units("dying-relu", seeds, ACTIVATIONS, RATES, _model, quick,
                                                               progress)
    lo, hi = RATES
    alive = sorted(ACTIVATIONS, key=lambda a: metrics[f"dead_{a}_{hi:g}"])
    best = max(ACTIVATIONS, key=lambda a: metrics[f"acc_{a}_{hi:g}"])

    def dead(act, lr):
        return share(act, lr, "dead")

    conclusion = (f"At learning rate {hi:g} the last epoch leaves {dead('relu', hi)} of ReLU units never positive "
                  f"(against {dead('relu', lo)} at {lo:g}), {dead('leaky relu', hi)} with Leaky ReLU, "
                  f"{dead('elu', hi)} with ELU and {dead('noisy relu', hi)} with a noisy ReLU; {alive[0]} keeps "
                  f"the most units alive and {'also' if best == alive[0] else best} reaches the best accuracy "
                  f"({share(best, hi, 'acc')} against ReLU's {share('relu', hi, 'acc')}; "
                  f"mean ± std over {len(seeds)} seeds).")
    return Result("dying-relu", ["activation"] + headers, rows, conclusion, metrics, dict(curves=curves), list(seeds))


def plot(result: Result, fig) -> None:
    plot_dead(result, fig, RATES, ACTIVATIONS)
