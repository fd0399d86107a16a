"""relucore.diagnostics: the figures against hand-computed values on tiny models, on every ISA."""

import sys

import numpy as np
import pytest

import relucore
import relucore.nn as nn
import relucore.optim as optim
import relucore.reference as reference
from relucore import diagnostics as dg
from relucore.nn import _functions


def test_sign_coherence_by_hand():
    g = np.array([[1.0, 2.0, -1.0, 0.0], [-1.0, -3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # row 0: 2 of 3 non-zero entries positive; row 1: 2 of 2 negative; row 2 has none and is left out
    assert dg.sign_coherence(g) == pytest.approx((2 / 3 + 1) / 2)
    assert dg.sign_coherence(np.ones((2, 3, 2, 2))) == 1.0  # conv filters: one row per filter
    assert dg.sign_coherence(np.array([1.0, -1.0])) == 0.5  # a bias: one row
    assert np.isnan(dg.sign_coherence(np.zeros((2, 2))))


def test_scalar_figures_by_hand():
    assert dg.negative_share(np.array([-1.0, -0.0, 0.0, 2.0])) == 0.25  # -0.0 is not negative
    assert dg.grad_norm(np.array([[3.0, 0.0], [0.0, 4.0]], np.float32)) == 5.0
    assert dg.grad_norm(np.full(4, 3e30, np.float32)) == pytest.approx(6e30)  # squares overflow float32
    assert dg.exact_zeros(np.array([0.0, -0.0, 1e-45, -1.0])) == 2
    assert dg.dead_share(np.array([0, 3, 0, 1])) == 0.5
    assert dg.dead_share(np.int64(0)) == 1.0
    with pytest.raises(ValueError, match="counts"):
        dg.dead_share(np.array([], np.int64))


def test_format_table():
    text = dg.format_table(["a", "bb"], [["x", 0.5], ["yyy", float("nan")]])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "bb"] and lines[2].split() == ["x", "0.5"] and lines[3].split() == ["yyy", "-"]
    assert len({len(ln) for ln in lines}) == 1


def _tiny(dtype):
    """Linear(2, 3) with unit 0 always positive, unit 1 never and unit 2 for x[0] > 0 only, then ReLU."""
    lin = nn.Linear(2, 3, dtype=dtype)
    lin.weight.data[...] = [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    lin.bias.data[...] = [1.0, -1.0, 0.0]
    return nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 2, dtype=dtype))


def test_monitor_dead_and_active_units(isa, dtype):
    model = _tiny(dtype)
    monitor = dg.Monitor(model)
    batches = [np.array([[-1.0, 0.0], [-2.0, 1.0]], dtype), np.array([[3.0, 0.0], [-1.0, 5.0]], dtype)]
    for x in batches:
        model(x)
        monitor.step()
    # step 1: unit 0 positive twice of 6 outputs; step 2: units 0 (twice) and 2 (once)
    assert monitor.history["active"]["1"] == [2 / 6, 3 / 6]
    assert monitor.dead_units() == {"1": 1 / 3}
    assert monitor.epoch() == {"1": 1 / 3}
    model(batches[0])
    monitor.step()
    assert monitor.epoch() == {"1": 2 / 3}  # a new window: unit 2 was never positive in it
    assert monitor.history["dead"]["1"] == [1 / 3, 2 / 3]
    monitor.close()


def test_monitor_weights_and_gradients(isa, dtype, rng):
    nn.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4, dtype=dtype), nn.ReLU(), nn.Linear(4, 3, dtype=dtype))
    monitor = dg.Monitor(model)
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(model(rng.standard_normal((6, 5)).astype(dtype)), rng.integers(0, 3, 6))
    model.backward(loss_fn.backward())
    monitor.step()
    for name, layer in (("0", model[0]), ("2", model[2])):
        w, g = layer.weight.data, layer.weight.grad
        assert monitor.history["negative_weights"][name] == [np.mean(w < 0)]
        assert monitor.history["grad_norm"][name][0] == pytest.approx(np.sqrt(np.sum(g.astype(np.float64) ** 2)))
        pos, neg = (g > 0).sum(1), (g < 0).sum(1)
        live = pos + neg > 0  # a dead unit's row is all zero and left out
        expected = np.mean(np.maximum(pos, neg)[live] / (pos + neg)[live])
        assert monitor.history["sign_coherence"][name][0] == pytest.approx(expected)
    table = monitor.table()
    assert "Linear" in table and "ReLU" in table and table.startswith("step 1")
    monitor.close()


def test_monitor_leaves_results_and_backend_alone(isa, dtype, rng):
    """The watched model computes the same bits, and the kernel backend is restored, also after an error."""
    def build():
        nn.manual_seed(3)
        return nn.Sequential(nn.Conv2d(2, 4, 3, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
                             nn.Conv2d(4, 4, 1, dtype=dtype), nn.LeakyReLU(0.1), nn.ELU(), nn.ReLU6(),
                             nn.Flatten(), nn.Linear(4 * 4 * 4, 3, dtype=dtype))

    x = rng.standard_normal((5, 2, 6, 6)).astype(dtype)
    plain, watched = build(), build()
    monitor = dg.Monitor(watched, count_zeros=True)
    y0, y1 = plain(x), watched(x)
    assert np.array_equal(y0, y1)
    dy = rng.standard_normal(y0.shape).astype(dtype)
    assert np.array_equal(plain.backward(dy), watched.backward(dy))
    assert _functions.get_backend() is relucore
    monitor.step()
    # the fused batch norm + ReLU reports positive counts per channel, as the reference computes them
    pre = watched[0](x)
    bn_y = reference.batch_norm(pre, None, None, training=True, activation="relu")[0]
    assert monitor.history["active"]["1"] == [pytest.approx(np.mean(bn_y > 0))]
    assert "1" not in monitor.history["zeros"]  # the fused pre-activation is never stored
    assert set(monitor.history["active"]) == {"1", "4", "5", "6"}
    with pytest.raises(TypeError):
        watched(x.astype(np.float16))
    assert _functions.get_backend() is relucore
    monitor.close()
    assert all("forward" not in m.__dict__ and "forward_activation" not in m.__dict__ for m in watched.modules())


@pytest.mark.parametrize("shape", [(7,), (5, 6), (3, 4, 5), (2, 3, 8, 8), (0, 3)], ids=str)
@pytest.mark.parametrize("layer", [nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU])
def test_monitor_counts_every_shape(isa, dtype, rng, shape, layer):
    """Short channel runs are counted in NumPy, long ones by the kernel: the same counts either way."""
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[:1] = 0.0  # an exact zero is not positive
    model = nn.Sequential(layer())
    with dg.Monitor(model) as monitor:
        y = model(x)
        assert np.array_equal(y, nn.Sequential(layer())(x))
        monitor.step()
    positive = reference.relu(x) > 0  # every watched activation is positive exactly where x is
    channels = (positive.reshape(shape[0], shape[1], int(np.prod(shape[2:]))).sum(axis=(0, 2)) if x.ndim >= 2
                else positive.sum())
    assert monitor.history["active"]["0"] == [pytest.approx(positive.sum() / max(x.size, 1))]
    assert monitor.dead_units()["0"] == pytest.approx(np.mean(np.atleast_1d(channels) == 0))


def test_monitor_counts_exact_zeros(isa, dtype):
    model = nn.Sequential(nn.ReLU(grad_at_zero=0.5), nn.ReLU())
    with dg.Monitor(model, count_zeros=True) as monitor:
        model(np.array([[0.0, -0.0, 1.0], [2.0, 0.0, -3.0]], dtype))
        monitor.step()
    assert monitor.history["zeros"] == {"0": [3.0], "1": [4.0]}  # the first ReLU keeps its 3 zeros, -3 -> 0
    assert "forward" not in model[0].__dict__


def test_monitor_on_the_reference_backend(dtype):
    previous = _functions.set_backend(reference)
    try:
        model = _tiny(dtype)
        with dg.Monitor(model) as monitor:
            model(np.array([[-1.0, 0.0], [3.0, 1.0]], dtype))
            monitor.step()
        assert monitor.dead_units() == {"1": 1 / 3}
    finally:
        _functions.set_backend(previous)


def test_monitor_outputs(tmp_path, monkeypatch):
    model = _tiny(np.float32)
    monitor = dg.Monitor(model)
    opt, loss_fn = optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss()
    for _ in range(3):
        loss_fn(model(np.ones((4, 2), np.float32)), np.zeros(4, np.int64))
        model.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
        monitor.step()
    monitor.epoch()
    monitor.to_csv(tmp_path / "m.csv")
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "metric,layer,index,value" and "dead,1,0,0.3333333333333333" in lines
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="to_csv"):
            monitor.plot(tmp_path / "m.png")
    else:
        monitor.plot(tmp_path / "m.png")
        assert (tmp_path / "m.png").stat().st_size > 1000
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="matplotlib"):
        monitor.plot(tmp_path / "n.png")


def test_monitor_weight_every():
    model = _tiny(np.float32)
    monitors = []
    for every in (3, 0):
        with dg.Monitor(model, weight_every=every) as monitor:
            with pytest.raises(ValueError, match="already watched"):
                dg.Monitor(model)
            for _ in range(7):
                model(np.ones((2, 2), np.float32))
                monitor.step()
        monitors.append(monitor)
    every3, never = monitors
    assert len(every3.history["negative_weights"]["0"]) == 3  # steps 0, 3 and 6
    assert len(every3.history["active"]["1"]) == 7
    assert not never.history["negative_weights"] and len(never.history["active"]["1"]) == 7


def test_monitor_rejects_bad_arguments():
    with pytest.raises(TypeError, match="relucore.nn.Module"):
        dg.Monitor(lambda x: x)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="weight_every"):
            dg.Monitor(_tiny(np.float32), weight_every=bad)
