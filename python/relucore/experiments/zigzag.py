"""zigzag: all-positive layer inputs make every weight of a unit move the same way.

For one example, the gradient of a unit's weights is its error times the input, so with inputs that
are all positive (raw intensities, or after a sigmoid or a ReLU) all of a unit's weights move in the
same direction, and a path to an optimum where some weights must rise and others fall zigzags.
Zero-centred inputs (centred data, after tanh or batch norm) have no such constraint.

Two measurements: the gradient-sign coherence (:func:`relucore.diagnostics.sign_coherence`) of the
first layer of a small regression network fed each kind of input, at batch size 1 and 16; and the
path of per-example SGD on a two-weight least-squares problem whose optimum (1, -1) needs the two
weights to move apart, with positive against centred inputs.
"""

from __future__ import annotations

import numpy as np

from .. import nn, optim
from .. import reference as ref
from ..diagnostics import Monitor
from ._common import Result, pct, run_seeds, spread, style

POSITIVE = ("raw (positive)", "sigmoid", "relu")
CENTRED = ("centred", "tanh", "batch norm")
BATCHES = (1, 16)
TARGET = np.array([1.0, -1.0])


def _inputs(kind: str, z: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """The layer input of each kind, from Gaussian ``z`` and positive ``raw`` data."""
    if kind == "raw (positive)":
        return raw
    if kind == "sigmoid":
        return ref.sigmoid(z)
    if kind == "relu":
        return ref.relu(z)
    if kind == "centred":
        return raw - raw.mean(axis=0)
    if kind == "tanh":
        return ref.tanh(z)
    return ref.batch_norm(raw, None, None, training=True)[0]


def _coherence(seed: int, kind: str, batch: int, steps: int) -> float:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((2048, 32))
    raw = rng.uniform(0, 1, (2048, 32))
    x = _inputs(kind, z, raw).astype(np.float32)
    target = (np.tanh(x @ rng.standard_normal((32, 4))) @ rng.standard_normal(4)).astype(np.float32)[:, None]
    nn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 1))
    loss_fn, opt = nn.MSELoss(), optim.SGD(model.parameters(), lr=0.01)
    with Monitor(model) as monitor:
        for _ in range(steps):
            idx = rng.integers(0, len(x), batch)
            loss_fn(model(x[idx]), target[idx])
            model.zero_grad()
            model.backward(loss_fn.backward())
            monitor.step()
            opt.step()
    return float(np.nanmean(monitor.history["sign_coherence"]["0"]))


def _path(seed: int, centred: bool, steps: int, lr: float = 0.5):
    """Per-example SGD on 0.5 (w.x - w*.x)^2 from w = 0, with the step normalised by |x|^2 (so both
    input kinds take equally stable steps); the path, the share of updates moving both weights the
    same way, and the first step within 0.05 of w*."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 1.0, (steps, 2))
    if centred:
        x -= 0.6
    w = np.zeros(2)
    path, same = [w.copy()], 0
    reached = steps
    for t in range(steps):
        g = (x[t] @ (w - TARGET)) * x[t]
        same += bool(g[0] * g[1] > 0)
        w = w - lr / (x[t] @ x[t]) * g
        path.append(w.copy())
        if reached == steps and np.linalg.norm(w - TARGET) < 0.05:
            reached = t + 1
    return np.array(path), same / steps, reached


def _one_seed(seed: int, bar, quick: bool) -> dict:
    steps = 40 if quick else 300
    coh = {}
    for kind in POSITIVE + CENTRED:
        for b in BATCHES:
            coh[kind, b] = _coherence(seed, kind, b, steps)
        bar.update()
    toy = {c: _path(seed, c, 100 if quick else 400) for c in (False, True)}
    return dict(coh=coh, toy=toy)


def run(seeds, quick: bool = False, progress: bool = False) -> Result:
    runs = run_seeds(seeds, lambda s, bar: _one_seed(s, bar, quick), "zigzag", progress, len(POSITIVE + CENTRED))
    rows = []
    for kind in POSITIVE + CENTRED:
        rows.append([kind, "positive" if kind in POSITIVE else "zero-centred"]
                    + [spread(r["coh"][kind, b] for r in runs) for b in BATCHES])
    for centred in (False, True):
        rows.append([f"toy SGD, {'centred' if centred else 'positive'} x", "2 weights",
                     "same-way updates " + pct(r["toy"][centred][1] for r in runs),
                     "steps to optimum " + spread(r["toy"][centred][2] for r in runs)])

    def group(kinds, b):
        return [float(np.mean([r["coh"][k, b] for k in kinds])) for r in runs]

    pos1, cen1 = group(POSITIVE, 1), group(CENTRED, 1)
    same_pos = [r["toy"][False][1] for r in runs]
    same_cen = [r["toy"][True][1] for r in runs]
    steps_pos = [r["toy"][False][2] for r in runs]
    steps_cen = [r["toy"][True][2] for r in runs]
    metrics = dict(coherence_positive=float(np.mean(pos1)), coherence_centred=float(np.mean(cen1)),
                   coherence_positive_b16=float(np.mean(group(POSITIVE, 16))),
                   coherence_centred_b16=float(np.mean(group(CENTRED, 16))),
                   same_way_positive=float(np.mean(same_pos)), same_way_centred=float(np.mean(same_cen)),
                   steps_positive=float(np.mean(steps_pos)), steps_centred=float(np.mean(steps_cen)))
    conclusion = (f"All-positive inputs (raw, sigmoid, ReLU) give a gradient-sign coherence of {spread(pos1)} per "
                  f"weight row at batch size 1 against {spread(cen1)} for zero-centred ones, and in the two-weight "
                  f"toy {pct(same_pos)} of the SGD updates move both weights the same way (against "
                  f"{pct(same_cen)}), so the path zigzags and needs {spread(steps_pos)} steps to come within 0.05 of "
                  f"the optimum against {spread(steps_cen)} (mean ± std over {len(seeds)} seeds).")
    series = dict(paths={c: runs[0]["toy"][c][0] for c in (False, True)},
                  coh={b: ([np.mean([r["coh"][k, b] for r in runs]) for k in POSITIVE + CENTRED]) for b in BATCHES})
    return Result("zigzag", ["layer input", "kind", "sign coherence, batch 1", "sign coherence, batch 16"], rows,
                  conclusion, metrics, series, list(seeds))


def plot(result: Result, fig) -> None:
    s = result.series
    ax = fig.add_subplot(1, 2, 1)
    kinds = POSITIVE + CENTRED
    k = np.arange(len(kinds))
    for i, b in enumerate(BATCHES):
        ax.bar(k + 0.4 * i - 0.2, s["coh"][b], 0.4, label=f"batch {b}")
    ax.set_xticks(k, kinds, fontsize=7, rotation=20)
    ax.set_ylim(0.4, 1.02)
    ax.legend(fontsize=7)
    style(ax, "gradient-sign coherence of the first layer", "layer input", "coherence")
    ax = fig.add_subplot(1, 2, 2)
    for centred, label in ((False, "positive inputs"), (True, "centred inputs")):
        p = s["paths"][centred]
        ax.plot(p[:, 0], p[:, 1], lw=0.8, marker=".", ms=2, label=label)
    ax.plot(*TARGET, "k*", ms=8, label="optimum")
    ax.legend(fontsize=7)
    ax.set_aspect("equal", adjustable="datalim")
    style(ax, "per-example SGD path, two weights (first seed)", "w1", "w2")
