"""Sequential's evaluation plan: a planned forward gives the layer-by-layer path's outputs (the same
bits) and the NumPy backend's (within rounding), follows every change of parameters, buffers, mode,
children and backend, keeps what backward needs, and raises the layer-by-layer path's errors."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import relucore as rc
import relucore.nn as nn
from relucore.bench.inference import example_cnn
from relucore.nn import container

DTYPES = (np.float32, np.float64)


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def _image(n, dtype, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(dtype)


def _plain(model, x):
    """``model``'s output layer by layer: the first forward of a fresh copy (nothing planned yet)."""
    return copy.deepcopy(model)(x)


def _numpy(model, x):
    with rc.use_backend("numpy"):
        return model(x)


def _planned(model, x):
    """The output of a forward that runs ``model``'s plan for ``x`` (asserted to exist)."""
    model(x)
    plans = container._PLANS.get(model)
    assert plans is not None and (x.shape, x.dtype) in plans.by_key
    return model(x)


@pytest.fixture
def forward_calls(monkeypatch):
    """How often each layer type's own forward ran (a planned step calls the kernel instead)."""
    calls = {}
    for cls in (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.Linear, nn.Flatten):
        for name in ("forward", "forward_activation"):
            if name in cls.__dict__:
                original = cls.__dict__[name]

                def counted(self, *a, _o=original, _c=cls, **k):
                    calls[_c.__name__] = calls.get(_c.__name__, 0) + 1
                    return _o(self, *a, **k)

                monkeypatch.setattr(cls, name, counted)
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 8])
def test_planned_equals_layer_by_layer_and_numpy(isa, dtype, n):
    model = example_cnn(dtype)
    x = _image(n, dtype)
    y = _planned(model, x)
    assert y.dtype == dtype and y.shape == (n, 10)
    np.testing.assert_array_equal(y, _plain(model, x))
    np.testing.assert_allclose(y, _numpy(model, x), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_model_planned(isa, dtype):
    model = example_cnn(dtype)
    fast = nn.fuse(model)
    x = _image(2, dtype)
    y = _planned(fast, x)
    np.testing.assert_array_equal(y, _plain(fast, x))
    np.testing.assert_allclose(y, _numpy(model, x), **_tol(dtype))


def test_the_plan_skips_the_layers_forwards(forward_calls):
    model = example_cnn(np.float32)
    x = _image(1, np.float32)
    model(x)
    assert forward_calls and all(v > 0 for v in forward_calls.values())
    forward_calls.clear()
    model(x)
    model(x)
    assert forward_calls == {}
    model(_image(2, np.float32))  # another shape: layer by layer once, then planned
    assert forward_calls
    forward_calls.clear()
    model(_image(2, np.float32))
    assert forward_calls == {}


@pytest.mark.parametrize("dtype", DTYPES)
def test_parameters_changed_in_place_and_replaced(dtype):
    model = example_cnn(dtype)
    x = _image(2, dtype)
    _planned(model, x)
    model[0].weight.data *= 2  # in place: the plan reads the same arrays
    model[5].running_var[...] += 1
    np.testing.assert_array_equal(model(x), _plain(model, x))
    model[9].weight.data = model[9].weight.data * -1  # a new array: planned again
    np.testing.assert_array_equal(model(x), _plain(model, x))
    model[4].bias = nn.Parameter(np.ones(32), dtype)  # a new Parameter
    model[1].eps = 0.5  # an attribute
    y = model(x)
    np.testing.assert_array_equal(y, _plain(model, x))
    np.testing.assert_allclose(y, _numpy(model, x), **_tol(dtype))
    model[2] = nn.LeakyReLU(0.2)  # a child
    np.testing.assert_array_equal(model(x), _plain(model, x))
    np.testing.assert_allclose(model(x), _numpy(model, x), **_tol(dtype))
    w = model[9].weight.data
    w.shape = w.shape[::-1]  # reshaped in place: the layer-by-layer checks name the layer
    with pytest.raises(ValueError, match=r"^Linear\(in_features="):
        model(x)


def test_train_eval_toggles():
    model = example_cnn(np.float64)
    x = _image(4, np.float64)
    y_eval = _planned(model, x)
    model.train()
    ref = copy.deepcopy(model)
    y_train = model(x)  # batch statistics, running statistics updated
    np.testing.assert_array_equal(y_train, ref(x))
    assert not np.allclose(y_train, y_eval)
    model.eval()
    y = model(x)
    np.testing.assert_array_equal(y, _plain(model, x))
    assert not np.array_equal(y, y_eval)  # the updated running statistics are used
    model[1].train()  # one child in training mode: its batch statistics, not the plan's
    np.testing.assert_array_equal(model(x), _plain(model, x))
    np.testing.assert_array_equal(model(x), _plain(model, x))


def test_load_state_dict_and_to():
    model, other = example_cnn(np.float32, seed=0), example_cnn(np.float32, seed=5)
    x = _image(2, np.float32)
    _planned(model, x)
    model.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(model(x), other(x))
    model.double()
    y = model(x.astype(np.float64))
    np.testing.assert_allclose(y, _numpy(model, x.astype(np.float64)), **_tol(np.float64))
    with pytest.raises(TypeError, match="float64"):  # the float32 plan is gone
        model(x)


def test_backend_switched():
    model = example_cnn(np.float64)
    x = _image(3, np.float64)
    y = _planned(model, x)
    with rc.use_backend("numpy"):
        y_np = model(x)
        y_np2 = model(x)
    np.testing.assert_array_equal(y_np, y_np2)
    np.testing.assert_allclose(y, y_np, **_tol(np.float64))
    np.testing.assert_array_equal(model(x), y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_after_planned_forward(dtype):
    model, ref = example_cnn(dtype), example_cnn(dtype)
    x = _image(2, dtype)
    y = _planned(model, x)
    y_ref = ref(x)
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    dx, dx_ref = model.backward(dy), ref.backward(dy)
    np.testing.assert_array_equal(dx, dx_ref)
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
    with pytest.raises(RuntimeError, match="without a forward"):
        model.backward(dy)
    np.testing.assert_array_equal(y, y_ref)


def _errors(model, bad):
    try:
        model(bad)
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    raise AssertionError(f"no error for {bad!r}")


@pytest.mark.parametrize("bad", [
    np.zeros((1, 1, 28, 28), np.float64),  # the float32 model's dtype
    np.zeros((1, 1, 28, 28), np.int32),
    np.zeros((1, 2, 28, 28), np.float32),  # channels
    np.zeros((1, 28, 28), np.float32),  # rank
    np.zeros((1, 1, 27, 28), np.float32),  # the linear layer's size
])
def test_errors_are_the_layer_by_layer_ones(bad):
    fresh = example_cnn(np.float32)
    want = _errors(fresh, bad)
    model = example_cnn(np.float32)
    _planned(model, _image(1, np.float32))
    assert _errors(model, bad) == want
    assert _errors(model, bad) == want
    np.testing.assert_array_equal(model(_image(1, np.float32)), fresh(_image(1, np.float32)))


def test_inputs_that_are_not_planned():
    model = example_cnn(np.float32)
    x = _image(2, np.float32)
    big = np.zeros((2, 1, 56, 56), np.float32)
    big[:, :, ::2, ::2] = x
    strided = big[:, :, ::2, ::2]
    np.testing.assert_array_equal(model(strided), model(x))
    np.testing.assert_array_equal(model(strided), _plain(model, x))
    np.testing.assert_array_equal(model(np.asfortranarray(x)), _plain(model, x))
    readonly = x.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(_planned(model, readonly), _plain(model, x))


def test_a_module_twice_is_still_refused():
    model = example_cnn(np.float32)
    x = _image(1, np.float32)
    _planned(model, x)
    model[6] = model[2]
    with pytest.raises(ValueError, match="appears twice"):
        model(x)


def test_copies_do_not_share_plans():
    model = example_cnn(np.float32)
    x = _image(1, np.float32)
    _planned(model, x)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        clone(x)
        clone[0].weight.data[...] = 0
        clone[4].weight.data[...] = 0
        np.testing.assert_array_equal(clone(x), _plain(clone, x))
        assert not np.array_equal(clone(x), model(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_other_layers_and_nesting(dtype):
    nn.manual_seed(2)
    inner = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, dtype=dtype), nn.LeakyReLU(0.1),
                          nn.BatchNorm2d(4, dtype=dtype), nn.ELU())
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, dtype=dtype), nn.ReLU(), inner, nn.AvgPool2d(2), nn.Dropout(0.3),
        nn.Conv2d(4, 6, 1, bias=False, dtype=dtype), nn.BatchNorm2d(6, affine=False, dtype=dtype),
        nn.Sigmoid(), nn.MaxPool2d(2, padding=1), nn.Flatten(), nn.Linear(6 * 2 * 2, 5, bias=False, dtype=dtype),
        nn.BatchNorm1d(5, track_running_stats=False, dtype=dtype), nn.Tanh()).eval()
    x = np.random.default_rng(4).standard_normal((3, 2, 13, 13)).astype(dtype)
    y = _planned(model, x)
    np.testing.assert_array_equal(y, _plain(model, x))
    np.testing.assert_allclose(y, _numpy(model, x), **_tol(dtype))
    dy = np.ones_like(y)
    ref = copy.deepcopy(model)
    np.testing.assert_array_equal(model(x), ref(x))  # planned, and layer by layer (the copy's first)
    np.testing.assert_array_equal(model.backward(dy), ref.backward(dy))


class _Flip(nn.Module):
    """Mirrors the width axis, as a view (negative strides) on odd calls and as a copy on even ones:
    the layer after it gets inputs the kernels do not always take as they are."""

    def __init__(self):
        super().__init__()
        self.__dict__["calls"] = 0

    def forward(self, x):
        self.__dict__["calls"] += 1
        y = x[..., ::-1]
        return y if self.calls % 2 else np.ascontiguousarray(y)

    def backward(self, dy):
        return dy[..., ::-1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_layers_after_a_custom_module(dtype):
    nn.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, dtype=dtype), _Flip(), nn.BatchNorm2d(4, dtype=dtype),
                          nn.ReLU(), _Flip(), nn.Conv2d(4, 4, 3, dtype=dtype), _Flip(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3, dtype=dtype)).eval()
    x = _image(2, dtype)[:, :, :8, :8].copy()
    want = _numpy(model, x)
    for _ in range(4):  # views and copies in turn, planned after the first call
        np.testing.assert_allclose(model(x), want, **_tol(dtype))
    assert (x.shape, x.dtype) in container._PLANS[model].by_key


def test_forward_wrapped_on_the_instance():
    """A forward replaced on a layer instance (as relucore.diagnostics.Monitor does) runs, whether it
    was replaced before or after the plan was made, and the plan comes back when it is removed."""
    model = example_cnn(np.float32)
    x = _image(1, np.float32)
    want = _planned(model, x)
    calls = []
    bn = model[1]
    original = bn.forward_activation
    bn.__dict__["forward_activation"] = lambda *a, **k: calls.append(1) or original(*a, **k)
    np.testing.assert_array_equal(model(x), want)
    np.testing.assert_array_equal(model(x), want)
    assert calls == [1, 1]
    del bn.__dict__["forward_activation"]
    np.testing.assert_array_equal(model(x), want)
    np.testing.assert_array_equal(model(x), want)
    assert calls == [1, 1]


def test_monitor_counts_planned_forwards():
    from relucore import diagnostics as dg

    model, ref = example_cnn(np.float32), example_cnn(np.float32)
    xs = [_image(2, np.float32, seed=s) for s in range(3)]
    model(xs[0])
    model(xs[0])  # planned before the monitor is attached
    monitors = [dg.Monitor(model), dg.Monitor(ref)]
    for x in xs:
        np.testing.assert_array_equal(model(x), ref(x))
        for mon in monitors:
            mon.step()
    assert monitors[0].history["active"] == monitors[1].history["active"]
    assert all(len(v) == 3 for v in monitors[0].history["active"].values())
    for mon in monitors:
        mon.close()
