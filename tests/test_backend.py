"""relucore.use_backend: every relucore.nn layer on the native kernels or on relucore.reference,
the same training curve on both, the context manager's restore (also on error), and one call's
snapshot of the backend while another thread switches it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import relucore as rc
import relucore.nn as nn
import relucore.optim as optim


def _model(seed):
    nn.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, dtype=np.float64), nn.BatchNorm2d(4, dtype=np.float64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 10, dtype=np.float64))


def _losses(backend, steps=5):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 8, 8))
    t = rng.integers(0, 10, 16)
    model, loss_fn = _model(1), nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    out = []
    with rc.use_backend(backend):
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn(model(x), t)
            model.backward(loss_fn.backward())
            opt.step()
            out.append(float(loss))
    return np.array(out)


def test_same_training_curve_on_both_backends():
    native, numpy = _losses("native"), _losses("numpy")
    np.testing.assert_allclose(native, numpy, rtol=1e-9)
    assert native[-1] < native[0]


def test_numpy_backend_calls_the_reference(monkeypatch):
    calls = []
    original = rc.reference.linear
    monkeypatch.setattr(rc.reference, "linear", lambda *a, **k: calls.append(1) or original(*a, **k))
    layer = nn.Linear(3, 2)
    x = np.ones((4, 3), np.float32)
    layer(x)
    assert not calls
    with rc.use_backend("numpy"):
        assert rc.get_backend() == "numpy"
        layer(x)
    assert calls == [1]
    assert rc.get_backend() == "native"


def test_restores_on_error_and_nests():
    with pytest.raises(RuntimeError):
        with rc.use_backend("numpy"):
            with rc.use_backend("native"):
                assert rc.get_backend() == "native"
            assert rc.get_backend() == "numpy"
            raise RuntimeError("boom")
    assert rc.get_backend() == "native"
    rc.use_backend("numpy")
    try:
        assert rc.get_backend() == "numpy"
    finally:
        rc.use_backend("native")


def test_bad_names():
    with pytest.raises(TypeError, match="name"):
        rc.use_backend(None)
    with pytest.raises(ValueError, match="'native', 'numpy'"):
        rc.use_backend("torch")
    assert rc.get_backend() == "native"


def test_a_call_keeps_the_backend_found_at_its_start():
    # a layer whose forward switches the backend halfway (as another thread might): the rest of the
    # call still runs on the backend it started with
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            from relucore.nn import _functions as F

            seen.append(F.linear)
            rc.use_backend("numpy")
            seen.append(F.linear)
            return x

    try:
        Probe()(np.zeros(1))
        assert seen[0] is seen[1] is rc.linear
        seen.clear()
        Probe()(np.zeros(1))  # a new call starts on the backend set now
        assert seen[0] is rc.reference.linear
    finally:
        rc.use_backend("native")


def test_threads_switching_meanwhile():
    model = _model(2)
    model.eval()
    x = np.random.default_rng(3).standard_normal((4, 1, 8, 8))
    expected = model(x)
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            rc.use_backend("numpy")
            rc.use_backend("native")

    t = threading.Thread(target=flip)
    t.start()
    try:
        for _ in range(50):
            np.testing.assert_allclose(model(x), expected, rtol=1e-12, atol=1e-12)
    finally:
        stop.set()
        t.join()
        rc.use_backend("native")
