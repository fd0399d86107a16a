"""The cost of leaving :class:`relucore.diagnostics.Monitor` on: a training step with and without it.

``pytest benchmarks --benchmark-only -k diagnostics`` times both; ``python
benchmarks/test_bench_diagnostics.py`` measures them in alternating turns in one process (the only
figure that holds on shared, noisy cores) and prints the medians and the overhead.
"""

import time

import numpy as np
import pytest

import relucore.nn as nn
import relucore.optim as optim
from relucore.diagnostics import Monitor

MODELS = ("cnn", "mlp")


def _setup(kind: str, watched: bool, count_zeros: bool = False, weight_every: int = 1):
    """A model, its optimizer, a batch, and the Monitor (or None)."""
    nn.manual_seed(0)
    rng = np.random.default_rng(0)
    if kind == "cnn":
        model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(32 * 8 * 8, 10))
        x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
    else:
        model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        x = rng.standard_normal((128, 256)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return model, opt, x, y, Monitor(model, count_zeros, weight_every) if watched else None


def _step(model, opt, x, y, monitor, loss_fn=nn.CrossEntropyLoss()):
    loss = loss_fn(model(x), y)
    model.zero_grad()
    model.backward(loss_fn.backward())
    opt.step()
    if monitor is not None:
        monitor.step()
    return loss


@pytest.mark.parametrize("watched", [False, True], ids=["plain", "monitor"])
@pytest.mark.parametrize("kind", MODELS)
def test_train_step(benchmark, kind, watched):
    model, opt, x, y, monitor = _setup(kind, watched)
    expected = _step(*_setup(kind, False)[:4], None)
    benchmark.group = f"train step, {kind}"
    loss = benchmark(_step, model, opt, x, y, monitor)
    if benchmark.disabled:  # one call: the watched model's first step is the plain one's, bit for bit
        assert loss == expected
    if monitor is not None:
        assert monitor.history["active"]
        assert all(len(v) == monitor.steps for v in monitor.history["grad_norm"].values())
        monitor.close()


def overhead(kind: str, turns: int = 41, reps: int = 3, clock=time.perf_counter, **options) -> dict:
    """Median seconds per step without and with the Monitor (``options``: its arguments), measured
    in alternating turns, and the median over turns of the ratio of the two (each pair of turns
    ran back to back, so load that drifts on shared cores cancels). ``clock=time.thread_time``
    with one relucore thread counts only the CPU time of the work itself, which other processes
    on the cores cannot inflate."""
    runs = {False: _setup(kind, False), True: _setup(kind, True, **options)}
    times = {False: [], True: []}
    for w in (False, True):
        _step(*runs[w])  # warm up
    for turn in range(turns):
        for w in ((False, True) if turn % 2 else (True, False)):
            t0 = clock()
            for _ in range(reps):
                _step(*runs[w])
            times[w].append((clock() - t0) / reps)
    ratio = np.median(np.array(times[True]) / np.array(times[False]))
    return dict(plain=np.median(times[False]), watched=np.median(times[True]), overhead=ratio - 1)


OPTIONS = (dict(weight_every=0), dict(weight_every=10), dict(), dict(count_zeros=True))

if __name__ == "__main__":
    import relucore

    for threads, clock, what in ((None, time.perf_counter, "wall time"), (1, time.thread_time, "CPU time, 1 thread")):
        if threads:
            relucore.set_num_threads(threads)
        print(what)
        for kind in MODELS:
            for options in OPTIONS:
                r = overhead(kind, clock=clock, **options)
                label = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
                print(f"  {kind:4s} {label:18s} plain {1e3 * r['plain']:6.2f} ms, monitored {1e3 * r['watched']:6.2f} "
                      f"ms: overhead {100 * r['overhead']:+.1f}%")
