"""vanishing: how the gradient norm changes from layer to layer in a deep MLP, per activation.

A 12-layer MLP (width 64) with sigmoid, tanh, ReLU, Leaky ReLU or ELU, each initialised with the
gain that suits it (Xavier normal with gain 1 for sigmoid and 5/3 for tanh, He normal for the ReLU
family), is trained for a few hundred SGD steps on generated blobs while a
:class:`relucore.diagnostics.Monitor` records each layer's weight-gradient norm. The per-layer
factor is the geometric mean ratio between the gradient norms of consecutive layers, from the
output towards the input. Also checked: ReLU is idempotent, relu(relu(x)) == relu(x) bit for bit,
in float32 and float64, including -0.0, infinities, NaN and subnormals.
"""

from __future__ import annotations

import numpy as np

import relucore as rc

from .. import nn, optim
from ..diagnostics import Monitor
from ._common import Result, blobs, run_seeds, spread, style, train_epoch

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")
DEPTH, WIDTH, FEATURES, CLASSES = 12, 64, 16, 4


def _layer(act: str) -> nn.Module:
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}[act]()


def _model(act: str, seed: int) -> nn.Sequential:
    nn.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(DEPTH):
        lin = nn.Linear(FEATURES if i == 0 else WIDTH, WIDTH, rng=rng)
        if act in ("sigmoid", "tanh"):
            nn.init.xavier_normal_(lin.weight, nn.init.calculate_gain(act), rng=rng)
        else:
            nn.init.kaiming_normal_(lin.weight, nonlinearity="leaky_relu" if act == "leaky_relu" else "relu", rng=rng)
        nn.init.zeros_(lin.bias)
        layers += [lin, _layer(act)]
    return nn.Sequential(*layers, nn.Linear(WIDTH, CLASSES, rng=rng))


def _grad_norms(act: str, seed: int, epochs: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y = blobs(rng, 1024, FEATURES, CLASSES)
    model = _model(act, seed)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with Monitor(model) as monitor:
        for _ in range(epochs):
            train_epoch(model, nn.CrossEntropyLoss(), opt, x, y, 32, rng, monitor)
    norms = monitor.history["grad_norm"]
    return np.array([np.exp(np.mean(np.log(norms[str(2 * i)]))) for i in range(DEPTH)])


def idempotence_mismatches(n: int = 100_000, seed: int = 0) -> dict:
    """Per dtype, how many elements of relu(relu(x)) differ in their bits from relu(x)."""
    rng = np.random.default_rng(seed)
    out = {}
    for dtype in (np.float32, np.float64):
        info = np.finfo(dtype)
        special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny / 4, -info.tiny / 4, info.max, -info.max])
        x = np.concatenate([rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n), special]).astype(dtype)
        once = rc.relu(x)
        twice = rc.relu(once)
        bits = np.uint32 if dtype == np.float32 else np.uint64
        out[np.dtype(dtype).name] = (int(np.count_nonzero(once.view(bits) != twice.view(bits))), x.size)
    return out


def _one_seed(seed: int, bar, epochs: int) -> dict:
    out = {}
    for act in ACTIVATIONS:
        out[act] = _grad_norms(act, seed, epochs)
        bar.update()
    return out


def run(seeds, quick: bool = False, progress: bool = False) -> Result:
    epochs = 1 if quick else 6
    runs = run_seeds(seeds, lambda s, bar: _one_seed(s, bar, epochs), "vanishing", progress, len(ACTIVATIONS))
    rows, metrics, curves, fs = [], {}, {}, {}
    for act in ACTIVATIONS:
        norms = [r[act] for r in runs]
        # factor per layer from output to input: (first / last) ** (1 / (DEPTH - 1))
        factor = [float((n[0] / n[-1]) ** (1 / (DEPTH - 1))) for n in norms]
        ratio = [float(n[0] / n[-1]) for n in norms]
        rows.append([act, spread(n[-1] for n in norms), spread(n[0] for n in norms), spread(ratio), spread(factor)])
        fs[act] = spread(factor)
        metrics[f"factor_{act}"] = float(np.mean(factor))
        metrics[f"ratio_{act}"] = float(np.mean(ratio))
        curves[act] = np.exp(np.mean(np.log(norms), axis=0))
    idem = idempotence_mismatches()
    bad = sum(m for m, _ in idem.values())
    total = sum(n for _, n in idem.values())
    metrics["idempotence_mismatches"] = bad
    order = sorted(ACTIVATIONS, key=lambda a: metrics[f"factor_{a}"])
    conclusion = (f"From the output layer to the input layer the gradient norm changes by a factor "
                  f"{fs['sigmoid']} per layer with sigmoid, {fs['tanh']} with tanh and {fs['relu']} with ReLU "
                  f"({fs['leaky_relu']} Leaky ReLU, {fs['elu']} ELU), so over {DEPTH} layers the first layer's "
                  f"gradient is {metrics[f'ratio_{order[0]}']:.2g} times the last one's with {order[0]} and "
                  f"{metrics[f'ratio_{order[-1]}']:.2g} times with {order[-1]}, and relu(relu(x)) equalled "
                  f"relu(x) bit for bit in {total - bad} of {total} float32/float64 values (mean ± std over "
                  f"{len(seeds)} seeds).")
    headers = ["activation", "grad norm, last hidden layer", "grad norm, first layer", "first / last",
               "factor per layer"]
    return Result("vanishing", headers, rows, conclusion, metrics, dict(curves=curves), list(seeds))


def plot(result: Result, fig) -> None:
    ax = fig.add_subplot(1, 1, 1)
    for act, c in result.series["curves"].items():
        ax.semilogy(np.arange(1, DEPTH + 1), c, marker="o", ms=3, lw=1, label=act)
    ax.legend(fontsize=7)
    style(ax, f"weight-gradient norm per layer, {DEPTH}-layer MLP (geometric mean over steps and seeds)",
          "layer (1 = input side)", "gradient norm")
