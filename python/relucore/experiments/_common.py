"""What every experiment shares: the result record, seed spread, progress bar, generated data,
training loop and output files (table, CSV, PNG)."""

from __future__ import annotations

import csv
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Sequence

import numpy as np

from ..diagnostics import _figure_class, format_table


@dataclass
class Result:
    """An experiment's outcome: a table, a one-sentence conclusion computed from the numbers,
    the numbers tests check (``metrics``) and what the plot draws (``series``)."""

    name: str
    headers: List[str]
    rows: List[list]
    conclusion: str
    metrics: Dict[str, float] = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    seeds: List[int] = field(default_factory=list)
    files: List[str] = field(default_factory=list)

    def table(self) -> str:
        return format_table(self.headers, self.rows)


def spread(values: Iterable[float]) -> str:
    """``mean ± std`` over seeds (population std), compact."""
    v = np.asarray(list(values), dtype=np.float64)
    return f"{v.mean():.3g} ± {v.std():.2g}"


def pct(values: Iterable[float]) -> str:
    """Shares as ``mean ± std`` percent."""
    v = 100 * np.asarray(list(values), dtype=np.float64)
    return f"{v.mean():.1f} ± {v.std():.1f}%"


class _PlainBar:
    """A progress bar on stderr for when tqdm is not installed."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n, self.t0 = max(total, 1), desc, 0, time.perf_counter()
        self._draw()

    def _draw(self) -> None:
        done = int(30 * self.n / self.total)
        sys.stderr.write(f"\r{self.desc} [{'#' * done}{'.' * (30 - done)}] {self.n}/{self.total} "
                         f"{time.perf_counter() - self.t0:.0f}s")
        sys.stderr.flush()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def close(self) -> None:
        sys.stderr.write("\n")


def progress_bar(total: int, desc: str, enabled: bool = True):
    """tqdm when importable, else a plain bar; ``enabled=False`` draws nothing."""
    if not enabled:
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainBar(total, desc)
    return tqdm(total=total, desc=desc, leave=False)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def blobs(rng: np.random.Generator, n: int, features: int, classes: int, noise: float = 1.0,
          dtype=np.float32):
    """Gaussian class clusters: ``n`` points in ``features`` dimensions around random centres."""
    centres = rng.standard_normal((classes, features)) * 1.5
    y = rng.integers(0, classes, n)
    x = centres[y] + noise * rng.standard_normal((n, features))
    return x.astype(dtype), y


def images(rng: np.random.Generator, n: int, classes: int, size: int = 12, dtype=np.float32):
    """Single-channel ``size``x``size`` images: a random smooth template per class, shifted by up to
    one pixel, plus noise."""
    templates = rng.standard_normal((classes, size + 2, size + 2))
    templates = (templates + np.roll(templates, 1, 1) + np.roll(templates, 1, 2)) / 3
    y = rng.integers(0, classes, n)
    dy, dx = rng.integers(0, 3, n), rng.integers(0, 3, n)
    x = np.stack([templates[c, i:i + size, j:j + size] for c, i, j in zip(y, dy, dx)])
    x = x + 0.8 * rng.standard_normal(x.shape)
    return x[:, None].astype(dtype), y


def train_epoch(model, loss_fn, opt, x, y, batch: int, rng: np.random.Generator, monitor=None) -> float:
    """One shuffled pass over ``(x, y)``; returns the mean loss."""
    order = rng.permutation(len(x))
    losses = []
    for i in range(0, len(x) - batch + 1, batch):
        idx = order[i:i + batch]
        losses.append(loss_fn(model(x[idx]), y[idx]))
        model.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
        if monitor is not None:
            monitor.step()
    return float(np.mean(losses)) if losses else float("nan")


def accuracy(model, x, y) -> float:
    """Share of ``x`` classified as ``y`` in evaluation mode (training mode is restored)."""
    model.eval()
    try:
        return float(np.mean(np.argmax(model(x), axis=1) == y))
    finally:
        model.train()


def write_outputs(result: Result, out_dir: str, plot: Callable[[Result, object], None]) -> List[str]:
    """Write ``NAME.csv`` (the table) and, when matplotlib is importable, ``NAME.png`` (``plot``
    draws on a figure); returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{result.name}.csv")]
    with open(paths[0], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(result.headers)
        w.writerows(result.rows)
    Figure = _figure_class()
    if Figure is None:
        return paths
    fig = Figure(figsize=(9, 3.4))
    plot(result, fig)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, f"{result.name}.png"))
    fig.savefig(paths[-1], dpi=72)
    return paths


def style(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Small fonts, so a three-panel figure stays legible at 72 dpi."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def seed_list(seed: int, seeds: int) -> List[int]:
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    return list(range(seed, seed + seeds))


def mean_curve(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """The mean of equal-length curves (one per seed)."""
    return np.mean(np.asarray(curves, dtype=np.float64), axis=0)


def run_seeds(seeds: Sequence[int], fn: Callable[[int, object], dict], desc: str, show: bool,
              units_per_seed: int) -> List[dict]:
    """``fn(seed, bar)`` for each seed under one progress bar of ``units_per_seed`` units per seed
    (``fn`` calls ``bar.update()`` as it goes)."""
    bar = progress_bar(len(seeds) * units_per_seed, desc, show)
    try:
        return [fn(s, bar) for s in seeds]
    finally:
        bar.close()


def train_watched(model, data, opt, epochs: int, batch: int, rng: np.random.Generator, bar) -> dict:
    """Train ``model`` on ``data = (x, y, x_test, y_test)`` with a :class:`~relucore.diagnostics.Monitor`;
    per epoch the mean loss and the share of dead units over all watched layers, then the test
    accuracy."""
    from .. import nn
    from ..diagnostics import Monitor

    x, y, xt, yt = data
    loss_fn = nn.CrossEntropyLoss()
    dead, losses = [], []
    with Monitor(model) as monitor:
        for _ in range(epochs):
            losses.append(train_epoch(model, loss_fn, opt, x, y, batch, rng, monitor))
            dead.append(float(np.mean(list(monitor.epoch().values()))))
            bar.update()
    return dict(dead=dead, losses=losses, acc=accuracy(model, xt, yt))


def blob_split(seed: int, n: int, features: int, classes: int):
    """``(x, y, x_test, y_test)`` from :func:`blobs` with overlapping clusters (noise 2), with 1024
    test points."""
    x, y = blobs(np.random.default_rng(seed), n + 1024, features, classes, noise=2.0)
    return x[:n], y[:n], x[n:], y[n:]


def plot_dead(result: Result, fig, rates: Sequence[float], keys: Sequence[str]) -> None:
    """Dead-unit share per epoch (``result.series["curves"][key, lr]``), one panel per learning rate."""
    curves = result.series["curves"]
    for i, lr in enumerate(rates):
        ax = fig.add_subplot(1, len(rates), i + 1)
        for k in keys:
            c = np.asarray(curves[k, lr])
            ax.plot(np.arange(1, len(c) + 1), 100 * c, marker="o", ms=3, lw=1, label=k)
        ax.legend(fontsize=7)
        style(ax, f"learning rate {lr:g}", "epoch", "dead units (%)")


BLOB_FEATURES, BLOB_CLASSES = 16, 4  # the data of compare_dead_units


def compare_dead_units(name: str, seeds: Sequence[int], variants: Sequence[str], rates: Sequence[float],
                       make_model: Callable[[str, int], object], quick: bool, progress: bool):
    """Train ``make_model(variant, seed)`` with Adam at each learning rate on :func:`blob_split`
    data (``BLOB_FEATURES`` features, ``BLOB_CLASSES`` classes) and tabulate the dead units and
    accuracy; returns ``(share, headers, rows, metrics, curves)``: ``share(variant, lr, "dead" or
    "acc")`` is the last epoch's dead share or the test accuracy as "mean ± std%" over seeds, and
    the metrics ``dead_<variant>_<lr>`` and ``acc_<variant>_<lr>`` are their means."""
    from .. import optim

    epochs, n = (3, 512) if quick else (12, 4096)

    def one_seed(seed, bar):
        data = blob_split(seed, n, BLOB_FEATURES, BLOB_CLASSES)
        out = {}
        for lr in rates:
            for v in variants:
                model = make_model(v, seed)
                out[v, lr] = train_watched(model, data, optim.Adam(model.parameters(), lr=lr), epochs, 32,
                                           np.random.default_rng(seed + 1), bar)
        return out

    runs = run_seeds(seeds, one_seed, name, progress, epochs * len(variants) * len(rates))
    rows, metrics, curves = [], {}, {}
    for lr in rates:
        for v in variants:
            rs = [r[v, lr] for r in runs]
            rows.append([v, f"{lr:g}", pct(r["dead"][0] for r in rs), pct(r["dead"][-1] for r in rs),
                         pct(max(r["dead"]) for r in rs), pct(r["acc"] for r in rs),
                         spread(r["losses"][-1] for r in rs)])
            metrics[f"dead_{v}_{lr:g}"] = float(np.mean([r["dead"][-1] for r in rs]))
            metrics[f"acc_{v}_{lr:g}"] = float(np.mean([r["acc"] for r in rs]))
            curves[v, lr] = np.mean([r["dead"] for r in rs], axis=0)
    headers = ["lr", "dead, epoch 1", "dead, last epoch", "dead, worst epoch", "test accuracy", "final loss"]

    def share(variant, lr, key):
        return pct(r[variant, lr][key][-1] if key == "dead" else r[variant, lr][key] for r in runs)

    return share, headers, rows, metrics, curves
