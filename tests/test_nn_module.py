"""relucore.nn's Module machinery: parameters, modes, state_dict/save/load, dtype, repr, containers,
initialisation, batch norm and dropout in training and evaluation, errors, and a training run."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

import relucore.nn as nn
import relucore.optim as optim
import relucore.reference as R


def small_cnn(dtype=np.float32):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.25), nn.Linear(4 * 3 * 3, 3, dtype=dtype))


# ------------------------------------------------------------------ parameters and registration

def test_named_parameters_buffers_and_modules():
    model = small_cnn()
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias", "6.weight",
                                                        "6.bias"]
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert [n for n, _ in model.named_modules()][:3] == ["", "0", "1"]
    assert len(list(model.parameters())) == 6 and len(list(model.children())) == 7
    assert all(isinstance(p, nn.Parameter) and p.grad is None for p in model.parameters())


def test_custom_module_registers_attributes_and_shares_parameters_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight  # tied: listed once
            self.scale = nn.Parameter(np.ones(1))
            self.register_buffer("steps", np.zeros((), np.int64))
            self.plain = 5

    m = Tied()
    assert [n for n, _ in m.named_parameters()] == ["scale", "a.weight", "a.bias", "b.bias"]
    assert m.steps.shape == () and "steps" in m.state_dict() and m.plain == 5
    m.b = None
    assert [n for n, _ in m.named_children()] == ["a"]
    with pytest.raises(TypeError, match="parameter 'scale'"):
        m.scale = np.ones(1)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        m.nothing


def test_backward_accumulates_and_zero_grad():
    m = nn.Linear(4, 2, dtype=np.float64)
    x, dy = np.ones((3, 4)), np.ones((3, 2))
    m(x)
    m.backward(dy)
    g1 = m.weight.grad.copy()
    np.testing.assert_allclose(g1, R.linear_backward(dy, x, m.weight.data)[1])
    m(x)
    m.backward(dy)
    np.testing.assert_allclose(m.weight.grad, 2 * g1)
    m.zero_grad(set_to_none=False)
    assert m.weight.grad is not None and not m.weight.grad.any()
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_train_eval_propagate():
    model = small_cnn()
    assert model.training and model[1].training
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


# ------------------------------------------------------------------ state

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_state_dict_save_load_round_trip(dtype, tmp_path, rng):
    nn.manual_seed(0)
    a = small_cnn(dtype)
    x = rng.standard_normal((5, 1, 6, 6)).astype(dtype)
    a(x)  # running statistics move
    a.eval()
    path = tmp_path / "model.npz"
    a.save(path)
    nn.manual_seed(1)
    b = small_cnn(dtype).eval()
    assert not np.array_equal(a(x), b(x))
    result = b.load(path)
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(a(x), b(x))
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2 and v.dtype == v2.dtype and np.array_equal(v, v2)
    assert b.state_dict()["1.num_batches_tracked"] == 1


def test_save_load_with_the_same_path_and_files_that_are_not_saves(tmp_path):
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    for path in (tmp_path / "model", str(tmp_path / "other")):  # numpy.savez adds .npz; load finds it
        a.save(path)
        b.load(path)
        np.testing.assert_array_equal(a.weight.data, b.weight.data)
        b.load(str(path) + ".npz")
    buf = io.BytesIO()  # an open binary file
    a.save(buf)
    buf.seek(0)
    nn.Linear(3, 2).load(buf)
    (tmp_path / "run").mkdir()  # a directory named as the path given to save: the .npz is the save
    a.save(tmp_path / "run")
    b.load(tmp_path / "run")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("not a save")
    (tmp_path / "empty.npz").write_bytes(b"")
    data = (tmp_path / "model.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    for name in ("array.npy", "text.npz", "empty.npz", "cut.npz"):
        with pytest.raises(ValueError, match="is not a file written by Module.save"):
            b.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        b.load(tmp_path / "missing")


def test_state_dict_is_a_snapshot_and_load_is_in_place():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    weight_array = m.weight.data
    m.weight.data += 1
    assert not np.array_equal(sd["weight"], m.weight.data)
    m.load_state_dict(sd)
    assert m.weight.data is weight_array and np.array_equal(m.weight.data, sd["weight"])


def test_load_state_dict_errors_name_the_key():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    sd = m.state_dict()
    before = m.state_dict()
    with pytest.raises(KeyError, match=r"missing key\(s\) '1.running_var'"):
        m.load_state_dict({k: v for k, v in sd.items() if k != "1.running_var"})
    with pytest.raises(KeyError, match=r"unexpected key\(s\) 'extra'"):
        m.load_state_dict({**sd, "extra": np.ones(1)})
    bad = dict(sd, **{"0.weight": np.ones((3, 3)), "0.bias": np.full(3, 7.0)})
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 3\)"):
        m.load_state_dict(bad)
    assert all(np.array_equal(v, m.state_dict()[k]) for k, v in before.items()), "a failed load changed state"
    with pytest.raises(TypeError, match="1.num_batches_tracked"):
        m.load_state_dict(dict(sd, **{"1.num_batches_tracked": np.array(1.5)}))
    r = m.load_state_dict({"0.bias": np.zeros(3)}, strict=False)
    assert "0.weight" in r.missing_keys and not m[0].bias.data.any()


def test_to_dtype_and_constructor_dtype(rng):
    m = small_cnn()
    assert all(p.dtype == np.float32 for p in m.parameters())
    x = rng.standard_normal((2, 1, 6, 6))
    m.eval()
    y32 = m(x.astype(np.float32))
    assert m.double() is m
    assert all(p.dtype == np.float64 for p in m.parameters()) and m[1].running_var.dtype == np.float64
    assert m[1].num_batches_tracked.dtype == np.int64
    y64 = m(x)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="float32 or float64"):
        m.to(np.int32)
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(2, 2, dtype=np.float16)


# ------------------------------------------------------------------ repr and containers

def test_repr_like_pytorch():
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Sequential(nn.Flatten(), nn.Linear(16 * 14 * 14, 10, bias=False)))
    assert repr(model) == """Sequential(
  (0): Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (1): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  (2): ReLU()
  (3): MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))
  (4): Sequential(
    (0): Flatten(start_dim=1, end_dim=-1)
    (1): Linear(in_features=3136, out_features=10, bias=False)
  )
)"""
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Conv2d(4, 8, 3, dilation=2, groups=2)) == \
        "Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), dilation=(2, 2), groups=2)"


def test_sequential_indexing_len_iteration_append():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s = nn.Sequential(a, b)
    assert len(s) == 2 and s[0] is a and s[-1] is b and list(s) == [a, b]
    assert s.append(c) is s and len(s) == 3 and s[2] is c
    head = s[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [a, b]
    s[1] = nn.Tanh()
    assert isinstance(s[1], nn.Tanh)
    with pytest.raises(IndexError):
        s[3]
    with pytest.raises(TypeError, match="Module"):
        s.append(np.ones(2))
    x = np.ones((4, 2), np.float32)
    y = s(x)
    assert y.shape == (4, 1) and s.backward(np.ones_like(y)).shape == (4, 2)


def test_flatten_axes(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    f = nn.Flatten(1, 2)
    y = f(x)
    assert y.shape == (2, 12, 5) and np.array_equal(y, x.reshape(2, 12, 5))
    assert f.backward(y).shape == x.shape
    with pytest.raises(ValueError, match="Flatten"):
        nn.Flatten(3, 1)(x)


# ------------------------------------------------------------------ initialisation

def test_default_init_bounds_are_pytorchs():
    nn.manual_seed(0)
    lin = nn.Linear(400, 300)
    conv = nn.Conv2d(8, 64, 5, groups=2)
    for m, fan_in in ((lin, 400), (conv, 4 * 25)):
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): gain sqrt(1/3) * sqrt(3 / fan_in)
        w, b = m.weight.data, m.bias.data
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # the uniform's standard deviation
        assert np.abs(b).max() <= bound
    bn = nn.BatchNorm2d(5)
    assert np.array_equal(bn.weight.data, np.ones(5)) and np.array_equal(bn.bias.data, np.zeros(5))
    assert np.array_equal(bn.running_var, np.ones(5)) and bn.num_batches_tracked == 0


def test_manual_seed_and_rng_make_runs_reproducible():
    nn.manual_seed(42)
    a = nn.Conv2d(3, 4, 3)
    nn.manual_seed(42)
    b = nn.Conv2d(3, 4, 3, dtype=np.float64)
    assert np.array_equal(a.weight.data, b.weight.data.astype(np.float32))
    c = nn.Linear(5, 5, rng=np.random.default_rng(7))
    d = nn.Linear(5, 5, rng=np.random.default_rng(7))
    assert np.array_equal(c.weight.data, d.weight.data) and np.array_equal(c.bias.data, d.bias.data)
    w = np.zeros((6, 3))
    nn.init.kaiming_normal_(w, nonlinearity="relu", rng=np.random.default_rng(0))
    assert w.std() > 0
    assert nn.init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))


# ------------------------------------------------------------------ batch norm and dropout modes

def test_batch_norm_running_stats_train_and_eval(rng):
    m = nn.BatchNorm2d(3, momentum=0.2, dtype=np.float64)
    x = rng.standard_normal((4, 3, 2, 2)) * 2 + 1
    m(x)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)  # unbiased, as PyTorch
    np.testing.assert_allclose(m.running_mean, 0.8 * 0 + 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(m.running_var, 0.8 * 1 + 0.2 * var, rtol=1e-12)
    assert m.num_batches_tracked == 1
    m.eval()
    before = m.state_dict()
    y = m(x)
    expected = (x - m.running_mean[:, None, None]) / np.sqrt(m.running_var[:, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert all(np.array_equal(v, m.state_dict()[k]) for k, v in before.items()), "eval changed the buffers"


def test_batch_norm_cumulative_average_and_no_tracking(rng):
    m = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    xs = [rng.standard_normal((5, 2)) + i for i in range(3)]
    for x in xs:
        m(x)
    np.testing.assert_allclose(m.running_mean, np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-12)
    assert m.num_batches_tracked == 3
    m = nn.BatchNorm1d(2, track_running_stats=False, dtype=np.float64).eval()
    assert m.running_mean is None and "running_mean" not in m.state_dict()
    y = m(xs[0])  # batch statistics even in evaluation
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)


def test_dropout_train_eval_and_seeding():
    x = np.ones((200, 50), np.float32)
    d = nn.Dropout(0.3, rng=np.random.default_rng(0))
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    dy = np.full_like(x, 2.0)
    np.testing.assert_allclose(d.backward(dy), np.where(kept, 2 / 0.7, 0), rtol=1e-6)
    assert np.array_equal(nn.Dropout(0.3, rng=np.random.default_rng(0))(x), y)
    nn.manual_seed(3)
    y1 = nn.Dropout(0.5)(x)
    nn.manual_seed(3)
    assert np.array_equal(nn.Dropout(0.5)(x), y1)
    d.eval()
    assert d(x) is x and d.backward(dy) is dy
    assert not nn.Dropout(1.0)(x).any()
    with pytest.raises(ValueError, match="p"):
        nn.Dropout(1.5)


# ------------------------------------------------------------------ errors name the layer

def test_errors_name_the_layer():
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8, kernel_size=\(3, 3\).*expected input of shape "
                                         r"\(N, 3, H, W\), got \(3, 32, 32\)"):
        conv(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\), got \(1, 4, 8, 8\)"):
        conv(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(TypeError, match=r"Conv2d\(3, 8.*input is float64 but the layer's parameters are float32"):
        conv(np.zeros((1, 3, 8, 8)))
    with pytest.raises(TypeError, match="float32 or float64"):
        conv(np.zeros((1, 3, 8, 8), np.int32))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8"):  # kernel larger than the image
        conv(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(RuntimeError, match=r"Conv2d\(3, 8.*backward\(\) called without a forward\(\)"):
        conv.backward(np.zeros((1, 8, 6, 6), np.float32))
    y = conv(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"backward\(\) expected dy of shape \(1, 8, 6, 6\)"):
        conv.backward(np.zeros((1, 8, 5, 5), np.float32))
    conv.backward(np.zeros_like(y))  # the forward is still there after a wrong dy
    with pytest.raises(RuntimeError, match="each forward"):  # one backward per forward
        conv.backward(np.zeros_like(y))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4.*expected input of shape \(N, 4, H, W\)"):
        nn.BatchNorm2d(4)(np.zeros((2, 3, 4, 4), np.float32))
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3.*more than 1 value per channel"):
        bn(np.zeros((1, 3), np.float32))
    assert bn.num_batches_tracked == 0, "a failed forward counted a batch"
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4.*\(N, 4\) or \(N, 4, L\)"):
        nn.BatchNorm1d(4)(np.zeros((2, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"Linear\(in_features=5.*\(\*, 5\), got \(2, 4\)"):
        nn.Linear(5, 2)(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"PReLU\(num_parameters=3\).*\(N, 3, \*\)"):
        nn.PReLU(3)(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match=r"ReLU\(\).*x"):
        nn.ReLU()(np.zeros(3, np.int64))
    with pytest.raises(RuntimeError, match=r"MaxPool2d.*backward\(\) called"):
        nn.MaxPool2d(2).backward(np.zeros((1, 1, 1, 1)))
    with pytest.raises(RuntimeError, match="Sequential"):
        nn.Sequential(nn.ReLU()).backward(np.zeros(2))
    relu = nn.ReLU()
    with pytest.raises(ValueError, match="appears twice"):
        nn.Sequential(relu, nn.Linear(2, 2), relu)(np.zeros((1, 2), np.float32))


DY_DTYPE_LAYERS = {
    "Linear": (lambda: nn.Linear(4, 3), (2, 4)), "Conv2d": (lambda: nn.Conv2d(2, 3, 3), (2, 2, 5, 5)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2), (2, 2, 3, 3)), "BatchNorm1d": (lambda: nn.BatchNorm1d(4), (3, 4)),
    "ReLU": (nn.ReLU, (2, 5)), "ReLU6": (nn.ReLU6, (2, 5)), "LeakyReLU": (nn.LeakyReLU, (2, 5)),
    "ELU": (nn.ELU, (2, 5)), "Sigmoid": (nn.Sigmoid, (2, 5)), "Tanh": (nn.Tanh, (2, 5)),
    "Softmax": (lambda: nn.Softmax(1), (2, 5)), "LogSoftmax": (lambda: nn.LogSoftmax(1), (2, 5)),
    "PReLU": (lambda: nn.PReLU(2), (2, 2, 3)), "MaxPool2d": (lambda: nn.MaxPool2d(2), (1, 2, 4, 4)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), (1, 2, 4, 4)), "Dropout": (lambda: nn.Dropout(0.5), (2, 5)),
    "Flatten": (nn.Flatten, (2, 2, 3)),
}


@pytest.mark.parametrize("name", DY_DTYPE_LAYERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dy_of_another_dtype_is_a_type_error_naming_the_layer(name, dtype):
    """As for the input (no silent cast): dy must have the forward output's dtype; the forward's
    state stays for a corrected backward."""
    make, shape = DY_DTYPE_LAYERS[name]
    layer = make().to(dtype)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y = layer(x)
    other = np.float32 if dtype == np.float64 else np.float64
    for bad in (other, np.int64, np.bool_):
        with pytest.raises(TypeError, match=rf"{name}\(.*expected dy of dtype {np.dtype(dtype).name}"):
            layer.backward(np.ones(y.shape, bad))
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == dtype and dx.shape == x.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_gradients_of_another_dtype_are_refused(dtype):
    """With reduction="none" the upstream gradient is an array shaped like the losses: of their
    dtype only (a number stays a number for the reductions)."""
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    for loss, target, shape in ((nn.MSELoss(reduction="none"), np.zeros((4, 3), dtype), (4, 3)),
                                (nn.CrossEntropyLoss(reduction="none"), np.array([0, 1, 2, 0]), (4,))):
        loss(x, target)
        for bad in (other, np.int64):
            with pytest.raises(TypeError, match=rf"{type(loss).__name__}.*expected dy of dtype {np.dtype(dtype).name}"):
                loss.backward(np.ones(shape, bad))
        assert loss.backward(np.ones(shape, dtype)).dtype == dtype
    for loss in (nn.MSELoss(), nn.CrossEntropyLoss()):
        loss(x, np.zeros((4, 3), dtype) if isinstance(loss, nn.MSELoss) else np.array([0, 1, 2, 0]))
        assert loss.backward(np.float64(2.0)).dtype == dtype  # a number scales


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_keeps_its_state_when_dy_is_refused(dtype):
    """A dy the last module refuses (shape or dtype) leaves the whole network's forward state, so a
    corrected backward follows and gives the gradients of an undisturbed one."""
    def model():
        nn.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64, 3)).to(dtype)

    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(dtype)
    dy = np.random.default_rng(1).standard_normal((2, 3)).astype(dtype)
    ref = model()
    ref(x)
    exp_dx = ref.backward(dy)
    m = model()
    m(x)
    other = np.float32 if dtype == np.float64 else np.float64
    with pytest.raises(ValueError, match=r"Linear.*expected dy of shape \(2, 3\)"):
        m.backward(np.ones((2, 4), dtype))
    with pytest.raises(TypeError, match="Linear.*expected dy of dtype"):
        m.backward(dy.astype(other))
    np.testing.assert_array_equal(m.backward(dy), exp_dx)
    for p, q in zip(m.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)
    with pytest.raises(RuntimeError, match="Sequential"):  # one backward per forward
        m.backward(dy)


def test_constructor_errors():
    with pytest.raises(ValueError, match="groups = 2 must divide in_channels = 3"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match="stride"):
        nn.MaxPool2d(2, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)
    with pytest.raises(ValueError, match=r"Conv2d: a weight of shape \(8, 3, 2147483648, 2147483648\) would take"):
        nn.Conv2d(3, 8, 2**31)
    with pytest.raises(ValueError, match=r"Linear: a weight of shape \(1099511627776, 1099511627776\)"):
        nn.Linear(2**40, 2**40)
    with pytest.raises(TypeError, match="negative_slope"):
        nn.LeakyReLU("0.1")
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    with pytest.raises(TypeError, match="rng"):
        nn.Linear(2, 2, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss("avg")


# ------------------------------------------------------------------ training

def _softmax_cross_entropy(logits, target):
    """Mean cross-entropy and its gradient, written out."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -np.log(p[np.arange(n), target]).mean()
    p[np.arange(n), target] -= 1
    return float(loss), p / n


def _blobs(rng, n=300):
    """Three well separated Gaussian blobs (a classifier can reach a loss near 0)."""
    centers = np.array([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])
    y = rng.integers(0, 3, n)
    x = (centers[y] + rng.standard_normal((n, 2))).astype(np.float32)
    return x, y


def test_cross_entropy_loss_matches_the_written_out_formula(rng):
    logits = rng.standard_normal((16, 5)).astype(np.float32)
    target = rng.integers(0, 5, 16)
    loss_fn = nn.CrossEntropyLoss()
    loss, dlogits = _softmax_cross_entropy(logits.astype(np.float64), target)
    assert loss_fn(logits, target) == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(loss_fn.backward(), dlogits, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_two_layer_mlp_learns(opt_name):
    x, y = _blobs(np.random.default_rng(0))
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = (optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt_name == "sgd"
           else optim.Adam(model.parameters(), lr=0.02))
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for epoch in range(30):
        for i in range(0, len(x), 50):
            loss = loss_fn(model(x[i:i + 50]), y[i:i + 50])
            first = loss if first is None else first
            model.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
    model.eval()
    final = loss_fn(model(x), y)
    accuracy = (model(x).argmax(axis=1) == y).mean()
    assert first > 0.9 and final < 0.1, (first, final)
    assert accuracy > 0.9


def test_small_cnn_trains_on_both_dtypes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 1, 6, 6))
    y = (x[:, 0, :3].sum(axis=(1, 2)) > x[:, 0, 3:].sum(axis=(1, 2))).astype(int)  # top half brighter
    for dtype in (np.float32, np.float64):
        nn.manual_seed(0)
        model = small_cnn(dtype)
        model[5].p = 0.0
        opt = optim.AdamW(model.parameters(), lr=0.02)
        losses = []
        for _ in range(60):
            loss, dlogits = _softmax_cross_entropy(model(x.astype(dtype)), y)
            losses.append(loss)
            model.zero_grad()
            model.backward(dlogits.astype(dtype))
            opt.step()
        assert losses[-1] < 0.3 * losses[0], (dtype, losses[0], losses[-1])


def test_empty_batch_runs_through(rc):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ELU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4, 2)).eval()
    y = model(np.zeros((0, 3, 4, 4), np.float32))
    assert y.shape == (0, 2)
    dx = model.backward(y)
    assert dx.shape == (0, 3, 4, 4)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
