"""relu-grad-at-zero: does the value used for ReLU'(0) change training?

A two-layer network written with the plain functions (linear, relu, relu_backward, cross_entropy;
64 inputs, 512 hidden units, batches of 256) is trained by SGD on generated 8-bit images with
ReLU'(0) = 0, 1/2 and 1, from the same seed and the same batches, in float32, in float32 with a
batch norm between the first layer and the ReLU, and in float64.
Recorded per run: the loss curve, how many hidden pre-activations were exactly 0, at how many steps
the backward result depended on ReLU'(0) (a zero pre-activation receiving a non-zero gradient), and
whether the trained weights differ from the ReLU'(0) = 0 run at all. The three runs are the same bit
for bit until such a step, so the other two are trained only when the ReLU'(0) = 0 run met one.

Bertoin et al. (2021), "Numerical influence of ReLU'(0) on backpropagation" (NeurIPS), report that
backpropagation outputs vary with ReLU'(0) in about half of float32 runs, never in float64, and
that batch norm and Adam buffer the effect.
"""

from __future__ import annotations

import numpy as np

import relucore as rc

from ._common import Result, mean_curve, pct, run_seeds, spread, style

GRADS = (0.0, 0.5, 1.0)
#: (label, dtype, batch norm between the first layer and the ReLU)
SETTINGS = (("float32", np.float32, False), ("float32 + BN", np.float32, True), ("float64", np.float64, False))
CLASSES, SIDE, HIDDEN, BATCH = 10, 8, 512, 256


def _data(rng: np.random.Generator, n: int):
    """Sparse 8-bit images: a class template of blobs, thresholded, plus noise, quantised to k/255."""
    templates = rng.uniform(-1.5, 1.0, (CLASSES, SIDE * SIDE))
    y = rng.integers(0, CLASSES, n)
    x = np.clip(templates[y] + 0.5 * rng.standard_normal((n, SIDE * SIDE)), 0, 1)
    return np.round(x * 255) / 255, y


def _train(x, y, dtype, bn: bool, grad_at_zero: float, seed: int, steps: int, batch: int, lr: float = 0.05) -> dict:
    rng = np.random.default_rng(seed)
    k1, k2 = 1 / np.sqrt(x.shape[1]), 1 / np.sqrt(HIDDEN)
    w1 = rng.uniform(-k1, k1, (HIDDEN, x.shape[1])).astype(dtype)
    b1 = rng.uniform(-k1, k1, HIDDEN).astype(dtype)
    w2 = rng.uniform(-k2, k2, (CLASSES, HIDDEN)).astype(dtype)
    b2 = rng.uniform(-k2, k2, CLASSES).astype(dtype)
    gamma, beta = np.ones(HIDDEN, dtype), np.zeros(HIDDEN, dtype)
    x = x.astype(dtype)
    losses, zeros, changed = [], 0, 0
    for _ in range(steps):
        idx = rng.integers(0, len(x), batch)
        a = rc.linear(x[idx], w1, b1)
        if bn:
            z, mean, invstd = rc.batch_norm(a, None, None, gamma, beta, training=True)
        else:
            z = a
        h = rc.relu(z)
        loss, dlogits = rc.cross_entropy(rc.linear(h, w2, b2), y[idx])
        dh, dw2, db2 = rc.linear_backward(dlogits, h, w2)
        at_zero = z == 0
        if at_zero.any():
            zeros += int(np.count_nonzero(at_zero))
            changed += bool(np.any(dh[at_zero] != 0))
        dz = rc.relu_backward(dh, z, grad_at_zero=grad_at_zero)
        params = [(w2, dw2), (b2, db2)]
        if bn:
            dz, dgamma, dbeta = rc.batch_norm_backward(dz, a, gamma, mean, invstd, bias=beta)
            params += [(gamma, dgamma), (beta, dbeta)]
        _, dw1, db1 = rc.linear_backward(dz, x[idx], w1)
        for p, g in params + [(w1, dw1), (b1, db1)]:
            p -= dtype(lr) * g
        losses.append(float(loss))
    return dict(losses=losses, zeros=zeros, changed=changed, params=(w1, b1, w2, b2, gamma, beta))


def _one_seed(seed: int, bar, quick: bool, runs: int, steps: int) -> dict:
    out = {}
    for r in range(runs):
        x, y = _data(np.random.default_rng([seed, r]), 4096)
        for label, dtype, bn in SETTINGS:
            base = _train(x, y, dtype, bn, 0.0, seed * 1000 + r, steps, BATCH)
            res = {0.0: base}
            for g in GRADS[1:]:
                # without a step where ReLU'(0) mattered the run is the same, bit for bit
                res[g] = _train(x, y, dtype, bn, g, seed * 1000 + r, steps, BATCH) if base["changed"] else base
            for g in GRADS:
                res[g] = dict(res[g], differs=any(not np.array_equal(a, b)
                                                  for a, b in zip(res[g]["params"], base["params"])))
            out[r, label] = res
            bar.update()
    return out


def run(seeds, quick: bool = False, progress: bool = False) -> Result:
    runs, steps = (1, 40) if quick else (4, 500)
    per_seed = run_seeds(seeds, lambda s, bar: _one_seed(s, bar, quick, runs, steps), "relu-grad-at-zero",
                         progress, runs * len(SETTINGS))
    rows, metrics, curves, changed_share = [], {}, {}, {}
    for d, _, _ in SETTINGS:
        cell = [[v for (r, dn), v in s.items() if dn == d] for s in per_seed]  # per seed, its runs
        zeros = [np.mean([v[0.0]["zeros"] for v in c]) for c in cell]
        changed_steps = [np.mean([v[0.0]["changed"] for v in c]) for c in cell]
        diverged = [np.mean([v[1.0]["differs"] for v in c]) for c in cell]
        for g in GRADS:
            final = [np.mean([np.mean(v[g]["losses"][-20:]) for v in c]) for c in cell]
            gap = [np.mean([abs(np.mean(v[g]["losses"][-20:]) - np.mean(v[0.0]["losses"][-20:])) for v in c])
                   for c in cell]
            differs = [np.mean([v[g]["differs"] for v in c]) for c in cell]
            rows.append([d, f"{g:g}", spread(final), spread(gap), pct(differs),
                         spread(zeros) if g == 0 else "", spread(changed_steps) if g == 0 else ""])
            metrics[f"{d}_gap_{g:g}"] = float(np.mean(gap))
            curves[d, g] = mean_curve([v[g]["losses"] for c in cell for v in c])
        metrics[f"{d}_zeros"] = float(np.mean(zeros))
        metrics[f"{d}_runs_changed"] = float(np.mean(diverged))
        changed_share[d] = diverged
        metrics[f"{d}_steps_changed"] = float(np.mean(changed_steps))
    total = len(seeds) * runs
    per_run = steps * BATCH * HIDDEN  # hidden pre-activations computed in one run
    metrics["float32_zero_rate"] = metrics["float32_zeros"] / per_run
    f32, f64 = metrics["float32_runs_changed"], metrics["float64_runs_changed"]
    bn_changed = metrics["float32 + BN_runs_changed"]
    gap = max(metrics[f"{d}_gap_{g:g}"] for d, _, _ in SETTINGS for g in GRADS)
    compare = ("close to" if 0.25 <= f32 <= 0.75 else "below" if f32 < 0.25 else "above")
    conclusion = (f"ReLU'(0) changed the training in {round(f32 * total)} of {total} float32 runs "
                  f"({pct(changed_share['float32'])} per seed), with "
                  f"{metrics['float32_zeros']:.1f} exact-zero pre-activations per run of {per_run:.2g} "
                  f"({metrics['float32_zero_rate']:.1g} each), and in {100 * f64:.0f}% of the float64 runs "
                  f"({metrics['float64_zeros']:.1f} zeros) and in {round(bn_changed * total)} of the float32 runs "
                  f"with batch norm ({metrics['float32 + BN_zeros']:.1f} zeros per run), {compare} "
                  f"the about half of float32 runs reported by "
                  f"Bertoin et al. (2021) for larger networks, while the final losses of the three choices stay "
                  f"within {gap:.2g} of each other (mean over {len(seeds)} seeds).")
    headers = ["setting", "ReLU'(0)", "final loss", "|loss - loss(0)|", "weights differ from 0",
               "zeros per run", "steps where it mattered"]
    return Result("relu-grad-at-zero", headers, rows, conclusion, metrics, dict(curves=curves), list(seeds))


def plot(result: Result, fig) -> None:
    curves = result.series["curves"]
    for i, (d, _, _) in enumerate(SETTINGS):
        ax = fig.add_subplot(1, len(SETTINGS), i + 1)
        for g in GRADS:
            ax.plot(curves[d, g], lw=1, label=f"ReLU'(0) = {g:g}", ls=("-", "--", ":")[GRADS.index(g)])
        ax.legend(fontsize=7)
        style(ax, f"{d}: training loss (mean over runs)", "step", "cross-entropy")
