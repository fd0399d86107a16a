"""relucore.nn layers: backward against central differences (float64), forward and backward against
the same computation written with relucore.reference, and batch norm + activation fusion."""

from __future__ import annotations

import numpy as np
import pytest

import relucore
import relucore.nn as nn
import relucore.reference as R


def away_from_kinks(rng, shape):
    """|x| in [0.1, 2]: no finite-difference step crosses 0."""
    return rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape):
    """Values 0.1 apart in random order: a max pool's winner does not change under a small step."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - n * 0.05).reshape(shape)


def bn_eval(num, cls=nn.BatchNorm2d):
    m = cls(num, dtype=np.float64)
    rng = np.random.default_rng(5)
    m.running_mean[...] = rng.standard_normal(num)
    m.running_var[...] = rng.uniform(0.5, 2.0, num)
    m.weight.data[...] = rng.uniform(0.5, 1.5, num)
    m.bias.data[...] = rng.standard_normal(num)
    return m.eval()


D = dict(dtype=np.float64)
GRAD_CASES = {
    "linear": (lambda: nn.Linear(5, 3, **D), (4, 5), away_from_kinks),
    "linear_3d_nobias": (lambda: nn.Linear(5, 3, bias=False, **D), (2, 3, 5), away_from_kinks),
    "conv_s2_p1_g2": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, **D), (2, 4, 7, 7), away_from_kinks),
    "conv_dil_nobias": (lambda: nn.Conv2d(3, 2, (2, 3), dilation=2, bias=False, **D), (1, 3, 6, 7), away_from_kinks),
    "bn2d_train": (lambda: nn.BatchNorm2d(3, **D), (4, 3, 2, 3), away_from_kinks),
    "bn2d_eval": (lambda: bn_eval(3), (4, 3, 2, 3), away_from_kinks),
    "bn2d_no_affine": (lambda: nn.BatchNorm2d(3, affine=False, **D), (4, 3, 2, 2), away_from_kinks),
    "bn1d_nc": (lambda: nn.BatchNorm1d(4, **D), (6, 4), away_from_kinks),
    "bn1d_ncl": (lambda: nn.BatchNorm1d(2, momentum=None, **D), (3, 2, 5), away_from_kinks),
    "relu": (lambda: nn.ReLU(), (3, 4, 5), away_from_kinks),
    "relu_g0": (lambda: nn.ReLU(grad_at_zero=0.5), (3, 4, 5), away_from_kinks),
    "relu6": (lambda: nn.ReLU6(), (3, 4, 5), away_from_kinks),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), (3, 4, 5), away_from_kinks),
    "elu": (lambda: nn.ELU(0.7), (3, 4, 5), away_from_kinks),
    "sigmoid": (lambda: nn.Sigmoid(), (3, 4, 5), away_from_kinks),
    "tanh": (lambda: nn.Tanh(), (3, 4, 5), away_from_kinks),
    "softmax": (lambda: nn.Softmax(dim=1), (3, 4, 5), away_from_kinks),
    "log_softmax": (lambda: nn.LogSoftmax(), (3, 4), away_from_kinks),
    "prelu_channels": (lambda: nn.PReLU(3, 0.1, **D), (2, 3, 4, 2), away_from_kinks),
    "prelu_shared": (lambda: nn.PReLU(**D), (5, 4), away_from_kinks),
    "maxpool": (lambda: nn.MaxPool2d(2), (2, 3, 4, 6), distinct),
    "maxpool_s2_p1": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 5, 5), distinct),
    "avgpool_nopad_count": (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (1, 2, 5, 6), away_from_kinks),
    "flatten": (lambda: nn.Flatten(), (2, 3, 2, 2), away_from_kinks),
    "dropout_eval": (lambda: nn.Dropout(0.5).eval(), (3, 4), away_from_kinks),
    "sequential_fused_relu": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, **D), nn.BatchNorm2d(3, **D),
                                                    nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2, **D)),
                              (3, 2, 4, 4), away_from_kinks),
    "sequential_eval_conv_activation": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, **D), nn.LeakyReLU(0.2),
                                                              nn.Conv2d(3, 2, 1, **D), nn.ReLU()).eval(),
                                        (2, 2, 5, 5), away_from_kinks),
    "sequential_fused_leaky_elu": (lambda: nn.Sequential(nn.Linear(4, 5, **D), nn.BatchNorm1d(5, **D), nn.LeakyReLU(0.1),
                                                         nn.Linear(5, 3, **D), nn.BatchNorm1d(3, **D), nn.ELU()),
                                   (6, 4), away_from_kinks),
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_backward_matches_central_differences(rc, case):
    make, shape, data = GRAD_CASES[case]
    rng = np.random.default_rng(sorted(GRAD_CASES).index(case))
    nn.manual_seed(1)
    # central differences of sum(dout * m(x)) for x and every parameter, dout random
    relucore.gradcheck(make(), data(rng, shape), seed=sorted(GRAD_CASES).index(case), raise_on_failure=True)


@pytest.mark.parametrize("kw", [{}, dict(reduction="sum", label_smoothing=0.2), dict(ignore_index=1)],
                         ids=["mean", "sum_smoothing", "ignore"])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 2, 2), (5,)], ids=["NC", "NCHW", "C"])
def test_cross_entropy_loss_gradient(rc, kw, shape, rng):
    x = rng.standard_normal(shape)
    # unbatched: one class index, not the ignored one
    target = np.int64(2) if len(shape) == 1 else rng.integers(0, shape[1], shape[:1] + shape[2:])
    loss_fn = nn.CrossEntropyLoss(**kw)
    loss = loss_fn(x, target)
    assert isinstance(loss, float)
    loss_fn.backward()
    # the loss times a random upstream scalar, against central differences
    relucore.gradcheck((lambda x: np.asarray(loss_fn(x, target)), loss_fn.backward), x, raise_on_failure=True)


def test_cross_entropy_loss_none_and_probabilities(rc, rng):
    x = rng.standard_normal((4, 3, 2))
    target = rng.integers(0, 3, (4, 2))
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    losses = loss_fn(x, target)
    ref_loss, ref_grad = R.cross_entropy(x, target, reduction="none")
    np.testing.assert_allclose(losses, ref_loss, rtol=1e-12)
    g = rng.standard_normal((4, 2))
    np.testing.assert_allclose(loss_fn.backward(g), ref_grad * g[:, None, :], rtol=1e-12)
    with pytest.raises(ValueError, match="backward"):
        loss_fn(x, target)
        loss_fn.backward(np.ones(3))
    probs = R.softmax(rng.standard_normal((4, 3, 2)), axis=1)
    loss = nn.CrossEntropyLoss()(x, probs)
    assert loss == pytest.approx(float(-(probs * R.log_softmax(x, axis=1)).sum(axis=1).mean()), rel=1e-12)
    with pytest.raises(ValueError, match="CrossEntropyLoss"):
        nn.CrossEntropyLoss()(x, np.full((4, 2), 7))
    with pytest.raises(TypeError, match="CrossEntropyLoss"):
        nn.CrossEntropyLoss()(x, target.astype(np.float64))


def test_mse_loss_gradient(rng):
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for reduction, scale in (("mean", 0.7), ("sum", 1.0)):
        loss = nn.MSELoss(reduction)
        expected = np.sum((x - t) ** 2) / (x.size if reduction == "mean" else 1)
        assert loss(x, t) == pytest.approx(expected, rel=1e-12)
        dx = loss.backward(scale)
        np.testing.assert_allclose(dx, scale * 2 * (x - t) / (x.size if reduction == "mean" else 1), rtol=1e-12)
    loss = nn.MSELoss("none")
    np.testing.assert_allclose(loss(x, t), (x - t) ** 2, rtol=1e-12)
    np.testing.assert_allclose(loss.backward(x), 2 * (x - t) * x, rtol=1e-12)


# ------------------------------------------------------------------ against relucore.reference

def _p(m, name):
    p = getattr(m, name)
    return None if p is None else p.data


def _ref_conv(m, x, dy):
    geo = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)
    y = R.conv2d(x, m.weight.data, _p(m, "bias"), **geo)
    dx, dw, db = R.conv2d_backward(dy, x, m.weight.data, **geo)
    return y, dx, {"weight": dw, "bias": db}


def _ref_linear(m, x, dy):
    dx, dw, db = R.linear_backward(dy, x, m.weight.data)
    return R.linear(x, m.weight.data, _p(m, "bias")), dx, {"weight": dw, "bias": db}


def _ref_bn(m, x, dy):
    rm, rv = np.array(m.running_mean), np.array(m.running_var)  # copies: the layer updates its own
    y, mean, invstd = R.batch_norm(x, rm, rv, _p(m, "weight"), _p(m, "bias"), m.training, m.momentum, m.eps)
    dx, dw, db = R.batch_norm_backward(dy, x, _p(m, "weight"), mean, invstd, bias=_p(m, "bias"), training=m.training)
    return y, dx, {"weight": dw, "bias": db}


def _ref_act(fwd, bwd):
    def f(m, x, dy):
        y = fwd(x)
        return y, bwd(dy, x, y), {}
    return f


def _ref_prelu(m, x, dy):
    dx, dw = R.prelu_backward(dy, x, m.weight.data)
    return R.prelu(x, m.weight.data), dx, {"weight": dw}


def _ref_maxpool(m, x, dy):
    y, idx = R.max_pool2d(x, m.kernel_size, m.stride, m.padding)
    return y, R.max_pool2d_backward(dy, idx, x.shape), {}


def _ref_avgpool(m, x, dy):
    args = (m.kernel_size, m.stride, m.padding, m.count_include_pad)
    return R.avg_pool2d(x, *args), R.avg_pool2d_backward(dy, x.shape, *args), {}


REF_CASES = {
    "conv": (lambda dt: nn.Conv2d(3, 4, 3, stride=(1, 2), padding=1, dtype=dt), (2, 3, 6, 7), _ref_conv),
    "conv_depthwise": (lambda dt: nn.Conv2d(4, 4, 3, groups=4, bias=False, dtype=dt), (2, 4, 5, 5), _ref_conv),
    "linear": (lambda dt: nn.Linear(6, 5, dtype=dt), (4, 6), _ref_linear),
    "bn2d_train": (lambda dt: nn.BatchNorm2d(3, dtype=dt), (4, 3, 3, 3), _ref_bn),
    "bn1d_eval": (lambda dt: nn.BatchNorm1d(3, dtype=dt).eval(), (5, 3), _ref_bn),
    "relu": (lambda dt: nn.ReLU(), (4, 5), _ref_act(R.relu, lambda dy, x, y: R.relu_backward(dy, x))),
    "relu_g1": (lambda dt: nn.ReLU(grad_at_zero=1.0), (4, 5),
                _ref_act(R.relu, lambda dy, x, y: R.relu_backward(dy, x, grad_at_zero=1.0))),
    "relu6": (lambda dt: nn.ReLU6(), (4, 5), _ref_act(R.relu6, lambda dy, x, y: R.relu6_backward(dy, x))),
    "leaky": (lambda dt: nn.LeakyReLU(0.3), (4, 5),
              _ref_act(lambda x: R.leaky_relu(x, 0.3), lambda dy, x, y: R.leaky_relu_backward(dy, x, 0.3))),
    "elu": (lambda dt: nn.ELU(1.5), (4, 5), _ref_act(lambda x: R.elu(x, 1.5), lambda dy, x, y: R.elu_backward(dy, x, 1.5))),
    "sigmoid": (lambda dt: nn.Sigmoid(), (4, 5), _ref_act(R.sigmoid, lambda dy, x, y: R.sigmoid_backward(dy, y))),
    "tanh": (lambda dt: nn.Tanh(), (4, 5), _ref_act(R.tanh, lambda dy, x, y: R.tanh_backward(dy, y))),
    "softmax": (lambda dt: nn.Softmax(dim=1), (4, 5, 3),
                _ref_act(lambda x: R.softmax(x, 1), lambda dy, x, y: R.softmax_backward(dy, y, 1))),
    "log_softmax": (lambda dt: nn.LogSoftmax(0), (4, 5),
                    _ref_act(lambda x: R.log_softmax(x, 0), lambda dy, x, y: R.log_softmax_backward(dy, y, 0))),
    "prelu": (lambda dt: nn.PReLU(3, dtype=dt), (2, 3, 4), _ref_prelu),
    "maxpool": (lambda dt: nn.MaxPool2d(3, 2, 1), (2, 3, 7, 6), _ref_maxpool),
    "avgpool": (lambda dt: nn.AvgPool2d(2, padding=1, count_include_pad=False), (2, 3, 5, 5), _ref_avgpool),
}


@pytest.mark.parametrize("case", sorted(REF_CASES))
def test_layer_matches_reference_functions(rc, dtype, case, rng):
    make, shape, ref = REF_CASES[case]
    m = make(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::5] = 0  # exact zeros: ReLU'(0) and the masks
    dy = rng.standard_normal(ref(m, x, np.zeros(m(x).shape, dtype))[0].shape).astype(dtype)
    m.backward(dy)
    y_ref, dx_ref, grads_ref = ref(m, x, dy)
    y = m(x)
    dx = m.backward(dy)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    for name, p in m.named_parameters():
        assert p.grad.dtype == dtype
        # the two backward calls accumulated: twice the reference's gradient
        np.testing.assert_allclose(p.grad, 2 * grads_ref[name], **tol, err_msg=name)


def test_noncontiguous_input(rc, rng):
    m = nn.Conv2d(3, 2, 3, padding=1, dtype=np.float64)
    x = rng.standard_normal((2, 6, 5, 8))[:, ::2, :, ::-1]
    y = m(x)
    np.testing.assert_allclose(y, R.conv2d(x, m.weight.data, m.bias.data, padding=1), rtol=1e-12, atol=1e-12)
    dx = m.backward(np.ones_like(y))
    np.testing.assert_allclose(dx, R.conv2d_backward(np.ones_like(y), x, m.weight.data, padding=1)[0], rtol=1e-12)


# ------------------------------------------------------------------ batch norm + activation fusion

FUSION = {
    "relu": (lambda: nn.ReLU(), False),
    "leaky": (lambda: nn.LeakyReLU(0.1), True),
    "leaky_zero_slope": (lambda: nn.LeakyReLU(0.0), False),
    "elu": (lambda: nn.ELU(0.8), True),
}


def _fusion_pair(dtype, bn_cls, act_factory, training, seed):
    nn.manual_seed(seed)
    layers = [nn.Linear(6, 4, dtype=dtype) if bn_cls is nn.BatchNorm1d else nn.Conv2d(2, 4, 3, dtype=dtype),
              bn_cls(4, dtype=dtype), act_factory()]
    model = nn.Sequential(*layers)
    rng = np.random.default_rng(seed)
    model[1].weight.data[...] = rng.uniform(0.5, 2.0, 4)
    model[1].bias.data[...] = rng.standard_normal(4)
    model[1].running_mean[...] = rng.standard_normal(4)
    model[1].running_var[...] = rng.uniform(0.5, 2.0, 4)
    return model.train(training)


@pytest.mark.parametrize("act", sorted(FUSION))
@pytest.mark.parametrize("bn_cls", [nn.BatchNorm1d, nn.BatchNorm2d], ids=["bn1d", "bn2d"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_sequential_fused_equals_unfused(rc, dtype, act, bn_cls, training, rng):
    make_act, invertible = FUSION[act]
    fused = _fusion_pair(dtype, bn_cls, make_act, training, 3)
    plain = _fusion_pair(dtype, bn_cls, make_act, training, 3)
    plain.fuse = False
    x = rng.standard_normal((8, 6) if bn_cls is nn.BatchNorm1d else (4, 2, 5, 5)).astype(dtype)
    y1, y2 = fused(x), plain(x)
    bn = fused[1]
    assert fused[2]._cache is None, "the fused activation must not run on its own"
    assert plain[2]._cache is not None
    # invertible activations keep only the output
    assert (bn._cache[0] is None) == invertible and (bn._cache[1] is None) != invertible
    dy = rng.standard_normal(y1.shape).astype(dtype)
    dx1, dx2 = fused.backward(dy), plain.backward(dy)
    pairs = [(y1, y2, "y"), (dx1, dx2, "dx")] + [(p1.grad, p2.grad, n) for (n, p1), p2 in
                                                 zip(fused.named_parameters(), plain.parameters())]
    pairs += [(b1, b2, "buffer") for b1, b2 in zip(fused.buffers(), plain.buffers())]
    # Relative to the largest value: the bias before a batch norm has a gradient of ~0 (cancellation),
    # and float32 ELU outputs near -alpha invert to z with a few digits less.
    scale = max(float(np.abs(want).max()) for _, want, _ in pairs)
    tol = (1e-4 if act == "elu" else 1e-5) * scale if dtype == np.float32 else 1e-11 * scale
    for got, want, what in pairs:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=what)
    if act in ("relu", "leaky", "leaky_zero_slope"):  # the same rounding: the same bits forward
        np.testing.assert_array_equal(y1, y2)


def test_fused_keeps_input_when_weight_has_zeros(rc):
    model = nn.Sequential(nn.BatchNorm1d(3), nn.LeakyReLU(0.1))
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    model(x)
    assert model[0]._cache[0] is None
    model.backward(np.ones_like(x))
    model[0].weight.data[1] = 0
    model(x)
    assert model[0]._cache[0] is not None  # y cannot be inverted through a zero weight
    dx = model.backward(np.ones_like(x))
    assert np.isfinite(dx).all()


def test_no_fusion_for_relu_with_grad_at_zero_or_subclasses(rc):
    class MyReLU(nn.ReLU):
        pass

    class MyBatchNorm(nn.BatchNorm1d):
        pass

    for bn, act in ((nn.BatchNorm1d(3), nn.ReLU(grad_at_zero=0.5)), (nn.BatchNorm1d(3), MyReLU()),
                    (MyBatchNorm(3), nn.ReLU())):
        model = nn.Sequential(bn, act)
        model(np.ones((4, 3), np.float32))
        assert act._cache is not None


@pytest.mark.parametrize("slope", [None, 0.2, 0.0], ids=["relu", "leaky", "leaky0"])
def test_sequential_eval_fuses_conv_and_activation(rc, dtype, slope, rng):
    def make(fuse):
        nn.manual_seed(4)
        act = nn.ReLU() if slope is None else nn.LeakyReLU(slope)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, dtype=dtype), act, nn.Flatten(), fuse=fuse).eval()

    fused, plain = make(True), make(False)
    x = rng.standard_normal((2, 3, 5, 5)).astype(dtype)
    y1, y2 = fused(x), plain(x)
    assert fused[1]._cache is None and fused[0]._cache[2] is not None, "the activation ran inside conv2d"
    assert plain[1]._cache is not None
    np.testing.assert_array_equal(y1, y2)  # the activation of the same rounded sums
    dy = rng.standard_normal(y1.shape).astype(dtype)
    np.testing.assert_array_equal(fused.backward(dy), plain.backward(dy))
    for p1, p2 in zip(fused.parameters(), plain.parameters()):
        np.testing.assert_array_equal(p1.grad, p2.grad)
    fused.train()
    fused(x)
    assert fused[1]._cache is not None, "training runs the activation on its own (its mask is kept)"


def test_no_conv_fusion_for_negative_slope(rc):
    act = nn.LeakyReLU(-0.5)  # the output's sign is not the pre-activation's
    model = nn.Sequential(nn.Conv2d(1, 2, 1), act).eval()
    model(np.ones((1, 1, 2, 2), np.float32))
    assert act._cache is not None


def test_input_grad_false_skips_the_first_convolutions_dx(rc, rng):
    from relucore.nn import _functions as F

    nn.manual_seed(5)
    model = nn.Sequential(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU()), nn.Flatten(), nn.Linear(27, 2))
    x = rng.standard_normal((4, 2, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((4, 2)).astype(np.float32)
    model(x)
    dx = model.backward(dy)
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    seen = []

    class Spy:
        def __getattr__(self, name):
            f = getattr(rc, name)
            return (lambda *a, **k: seen.append(k) or f(*a, **k)) if name == "conv2d_backward" else f

    previous = F.set_backend(Spy())
    try:
        model(x)
        assert model.backward(dy, input_grad=False) is None
    finally:
        F.set_backend(previous)
    assert seen and seen[0]["compute_dx"] is False
    assert dx.shape == x.shape
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(g, p.grad)
    conv = nn.Conv2d(1, 1, 1)
    conv(np.ones((1, 1, 2, 2), np.float32))
    assert conv.backward(np.ones((1, 1, 2, 2), np.float32), input_grad=False) is None


def test_backend_indirection_runs_every_layer_on_reference(rng):
    """The layers reach their kernels only through relucore.nn._functions."""
    from relucore.nn import _functions as F

    nn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=np.float64), nn.BatchNorm2d(4, dtype=np.float64),
                          nn.ELU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3, dtype=np.float64), nn.Tanh())
    x = rng.standard_normal((3, 2, 4, 4))
    y_native = model(x)
    dx_native = model.backward(np.ones_like(y_native))
    grads_native = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    calls = []

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(R, name)

    previous = F.set_backend(Spy())
    try:
        y_ref = model(x)
        dx_ref = model.backward(np.ones_like(y_ref))
    finally:
        F.set_backend(previous)
    assert {"conv2d", "batch_norm", "max_pool2d", "linear", "tanh", "batch_norm_backward"} <= set(calls)
    assert "elu" not in calls  # fused into batch_norm
    np.testing.assert_allclose(y_ref, y_native, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx_ref, dx_native, rtol=1e-10, atol=1e-12)
    for g, p in zip(grads_native, model.parameters()):
        np.testing.assert_allclose(p.grad, g, rtol=1e-10, atol=1e-12)


def test_against_torch_nn(rc, rng):
    """The same network with the same weights through torch.nn: outputs, gradients, running stats."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    ours = nn.Sequential(nn.Conv2d(2, 4, 3, stride=1, padding=1, dtype=np.float64), nn.BatchNorm2d(4, dtype=np.float64),
                         nn.LeakyReLU(0.1), nn.Conv2d(4, 4, 3, padding=1, groups=2, dtype=np.float64),
                         nn.BatchNorm2d(4, momentum=None, dtype=np.float64), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False), nn.PReLU(4, dtype=np.float64),
                         nn.Flatten(), nn.Linear(36, 8, dtype=np.float64), nn.BatchNorm1d(8, dtype=np.float64),
                         nn.ELU(0.5), nn.Linear(8, 3, dtype=np.float64), nn.Tanh())
    theirs = tnn.Sequential(tnn.Conv2d(2, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.LeakyReLU(0.1),
                            tnn.Conv2d(4, 4, 3, padding=1, groups=2), tnn.BatchNorm2d(4, momentum=None), tnn.ReLU(),
                            tnn.MaxPool2d(2), tnn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
                            tnn.PReLU(4), tnn.Flatten(), tnn.Linear(36, 8), tnn.BatchNorm1d(8), tnn.ELU(0.5),
                            tnn.Linear(8, 3), tnn.Tanh()).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    for step in range(2):  # running statistics after two batches
        x = rng.standard_normal((6, 2, 4, 4))
        tx = torch.tensor(x, requires_grad=True)
        y, ty = ours(x), theirs(tx)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        ours.zero_grad()
        theirs.zero_grad()
        dx = ours.backward(dy)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
    tstate = theirs.state_dict()
    for name, v in ours.state_dict().items():
        np.testing.assert_allclose(v, tstate[name].numpy(), rtol=1e-12, err_msg=name)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((3, 2, 4, 4))
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(), dict(label_smoothing=0.1, ignore_index=2), dict(reduction="sum")],
                         ids=["mean", "smoothing_ignore", "sum"])
def test_cross_entropy_and_softmax_against_torch(rc, kw, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    target = rng.integers(0, 4, (6, 3))
    tx = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.CrossEntropyLoss(**kw)(tx, torch.tensor(target))
    tloss.backward(torch.tensor(0.5))
    loss_fn = nn.CrossEntropyLoss(**kw)
    assert loss_fn(x, target) == pytest.approx(tloss.item(), rel=1e-5)
    np.testing.assert_allclose(loss_fn.backward(0.5), tx.grad.numpy(), rtol=1e-5, atol=1e-7)
    for ours, theirs in ((nn.Softmax(1), torch.nn.Softmax(1)), (nn.LogSoftmax(1), torch.nn.LogSoftmax(1))):
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.tensor(x))
        np.testing.assert_allclose(ours(x), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.backward(x), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
