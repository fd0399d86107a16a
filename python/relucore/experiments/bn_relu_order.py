"""bn-relu-order: batch norm before or after ReLU, at an ordinary and at a provoking learning rate.

An MLP with three hidden layers of 64 units is trained by Adam on generated overlapping blobs with
each hidden layer as Linear -> BatchNorm -> ReLU (the usual order, run fused) or
Linear -> ReLU -> BatchNorm, with PyTorch's default initialisation, at Adam's default learning rate
0.001 and at 0.1 (high enough to provoke dying units; plain SGD at such rates diverges before units
die), next to the same network without batch norm. A :class:`relucore.diagnostics.Monitor`
records the share of dead units (never positive over an epoch) from the activation kernels' counts.
"""

from __future__ import annotations

from .. import nn
from ._common import BLOB_CLASSES as CLASSES
from ._common import BLOB_FEATURES as FEATURES
from ._common import Result, compare_dead_units, plot_dead

ORDERS = ("bn-relu", "relu-bn", "no bn")
RATES = (1e-3, 0.1)
WIDTH = 64


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


def run(seeds, quick: bool = False, progress: bool = False) -> Result:
    share, headers, rows, metrics, curves = compare_dead_units("bn-relu-order", seeds, ORDERS, RATES, _model, quick,
                                                               progress)
    lo, hi = RATES

    def dead(order, lr):
        return share(order, lr, "dead")

    def acc(order, lr):
        return share(order, lr, "acc")

    d_before, d_after = metrics[f"dead_bn-relu_{hi:g}"], metrics[f"dead_relu-bn_{hi:g}"]
    a_before, a_after = metrics[f"acc_bn-relu_{hi:g}"], metrics[f"acc_relu-bn_{hi:g}"]
    dead_word = "more" if d_before > d_after else "fewer" if d_before < d_after else "as many"
    acc_word = "a higher" if a_before > a_after else "a lower" if a_before < a_after else "the same"
    conclusion = (f"At learning rate {hi:g} the last epoch leaves {dead('bn-relu', hi)} of the units dead with batch "
                  f"norm before ReLU, {dead('relu-bn', hi)} with it after and {dead('no bn', hi)} without it "
                  f"(accuracy {acc('bn-relu', hi)}, {acc('relu-bn', hi)}, {acc('no bn', hi)}), so BN before ReLU "
                  f"leaves {dead_word} dead units than BN after it, with {acc_word} accuracy, against "
                  f"{dead('bn-relu', lo)}, {dead('relu-bn', lo)} and {dead('no bn', lo)} dead at learning rate {lo:g} "
                  f"(mean ± std over {len(seeds)} seeds).")
    return Result("bn-relu-order", ["order"] + headers, rows, conclusion, metrics, dict(curves=curves), list(seeds))


def plot(result: Result, fig) -> None:
    plot_dead(result, fig, RATES, ORDERS)
