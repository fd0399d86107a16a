"""negative-weights: do the weights of a ReLU network go negative, and does weight decay change it?

A deep ReLU CNN (four 3x3 convolutions and a linear classifier) is trained on generated images with
SGD, once without and once with weight decay, from the same initialisation; the share of negative
weights per layer is taken before and after training, with the share of initially positive weights
that ended negative.
"""

from __future__ import annotations

import numpy as np

from .. import nn, optim
from ..diagnostics import negative_share
from ._common import Result, accuracy, images, pct, run_seeds, style, train_epoch

DECAYS = (0.0, 5e-3)
CLASSES = 4


def _model(seed: int) -> nn.Sequential:
    nn.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 3 * 3, CLASSES))


def _weights(model):
    """``(label, weight)`` per layer with a weight matrix or filter bank, e.g. ``("2 Conv2d", w)``."""
    return [(f"{n} {type(m).__name__}", m.weight) for n, m in model.named_modules()
            if "weight" in m._parameters and m.weight.ndim >= 2]


def _one_seed(seed: int, bar, quick: bool) -> dict:
    rng = np.random.default_rng(seed)
    n, epochs = (512, 2) if quick else (2048, 10)
    x, y = images(rng, n + 512, CLASSES)
    out = {}
    for wd in DECAYS:
        model = _model(seed)
        before = {name: p.data.copy() for name, p in _weights(model)}
        opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=wd)
        train_rng = np.random.default_rng(seed + 1)
        for _ in range(epochs):
            train_epoch(model, nn.CrossEntropyLoss(), opt, x[:n], y[:n], 32, train_rng)
            bar.update()
        layers = {}
        for name, p in _weights(model):
            w0 = before[name]
            flipped = np.count_nonzero((w0 > 0) & (p.data < 0)) / max(np.count_nonzero(w0 > 0), 1)
            layers[name] = dict(before=negative_share(w0), after=negative_share(p.data), flipped=float(flipped))
        out[wd] = dict(layers=layers, acc=accuracy(model, x[n:], y[n:]))
    return out


def run(seeds, quick: bool = False, progress: bool = False) -> Result:
    epochs = 2 if quick else 10
    runs = run_seeds(seeds, lambda s, bar: _one_seed(s, bar, quick), "negative-weights", progress,
                     epochs * len(DECAYS))
    names = list(runs[0][DECAYS[0]]["layers"])
    rows = []
    for name in names:
        def share(wd, key):
            return [r[wd]["layers"][name][key] for r in runs]
        rows.append([name, pct(share(0.0, "before")), pct(share(0.0, "after")), pct(share(DECAYS[1], "after")),
                     pct(share(0.0, "flipped"))])
    rows.append(["test accuracy", "-", pct(r[0.0]["acc"] for r in runs), pct(r[DECAYS[1]]["acc"] for r in runs), "-"])

    def mean_over_layers(wd, key):
        return [float(np.mean([r[wd]["layers"][n][key] for n in names])) for r in runs]

    before, after = mean_over_layers(0.0, "before"), mean_over_layers(0.0, "after")
    after_wd, flipped = mean_over_layers(DECAYS[1], "after"), mean_over_layers(0.0, "flipped")
    lowest = min(min(r[wd]["layers"][n]["after"] for n in names for r in runs) for wd in DECAYS)
    metrics = dict(before=float(np.mean(before)), after=float(np.mean(after)), after_wd=float(np.mean(after_wd)),
                   flipped=float(np.mean(flipped)), lowest_after=lowest)
    verdict = "still negative" if lowest > 0.25 else "negative in most layers"
    conclusion = (f"Weights of a trained ReLU CNN are {verdict}: {pct(after)} of them without weight decay and "
                  f"{pct(after_wd)} with weight decay {DECAYS[1]:g}, against {pct(before)} at initialisation "
                  f"(lowest layer of any run {100 * lowest:.0f}%), and {pct(flipped)} of the initially positive "
                  f"weights turned negative (mean ± std over {len(seeds)} seeds).")
    series = dict(names=names, before=[np.mean([r[0.0]["layers"][n]["before"] for r in runs]) for n in names],
                  after={wd: [np.mean([r[wd]["layers"][n]["after"] for r in runs]) for n in names] for wd in DECAYS})
    return Result("negative-weights", ["layer", "negative at init", "after, no decay", f"after, decay {DECAYS[1]:g}",
                                       "positive -> negative"], rows, conclusion, metrics, series, list(seeds))


def plot(result: Result, fig) -> None:
    s = result.series
    ax = fig.add_subplot(1, 1, 1)
    k = np.arange(len(s["names"]))
    ax.bar(k - 0.27, s["before"], 0.27, label="initialisation")
    for i, (wd, v) in enumerate(s["after"].items()):
        ax.bar(k + 0.27 * i, v, 0.27, label=f"trained, weight decay {wd:g}")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(k, s["names"], fontsize=7)
    ax.legend(fontsize=7)
    style(ax, "share of negative weights per layer (mean over seeds)", "layer", "negative share")
