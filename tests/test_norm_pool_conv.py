"""A network's first Conv2d followed by BatchNorm2d -> activation -> MaxPool2d, trained with
``backward(dy, input_grad=False)``: the batch norm + pool backward hands its input gradient to the
convolution plane by plane, and the convolution's weight and bias gradients are bit for bit those
of the layers' own backwards (``input_grad=True``), on every ISA with relucore's GEMM, for any
thread count, with NaN/±inf/
±0 in the data; where the hand-over does not apply (more than 16 taps, groups, OpenBLAS's GEMM,
forced Winograd) the layers run apart; a damaged position is an error naming the layer."""

from __future__ import annotations

import numpy as np
import pytest
import relucore
from _helpers import assert_bitwise, make_data
from relucore import nn

ACTS = {"relu": lambda: nn.ReLU(), "leaky": lambda: nn.LeakyReLU(0.1), "elu": lambda: nn.ELU(0.7)}
# (batch, channels, H, W, filters, kernel, padding, pool): batches across the two fixed chunks of
# images (1, 2, 3, 5), filters across the 4-row register tiles, planes with and without a vector tail
CASES = [
    (1, 1, 8, 8, 4, 3, 1, 2),
    (2, 1, 12, 10, 6, 3, 1, 2),
    (3, 1, 9, 11, 5, 3, 0, 2),
    (5, 1, 13, 15, 9, 2, 0, (3, 2, 1)),
    (4, 1, 14, 14, 16, 4, 2, 2),
    (6, 1, 28, 28, 16, 3, 1, 2),
    (3, 1, 7, 20, 3, (1, 5), (0, 2), 2),
]


def network(c, f, k, p, pool, act, dtype, seed=0):
    nn.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bn = nn.BatchNorm2d(f, dtype=dtype)
    bn.weight.data[...] = rng.uniform(-2, 2, f)  # negative scales reverse the pooling's order
    bn.bias.data[...] = rng.uniform(-1, 1, f)
    pool = nn.MaxPool2d(*pool) if isinstance(pool, tuple) else nn.MaxPool2d(pool)
    return nn.Sequential(nn.Conv2d(c, f, k, padding=p, dtype=dtype), bn, ACTS[act](), pool, nn.Flatten())


def handed_over(model, monkeypatch) -> list:
    """Record what each BatchNorm2d._backward_into call returned."""
    calls = []
    inner = nn.BatchNorm2d._backward_into

    def spy(self, dy, conv):
        calls.append(inner(self, dy, conv))
        return calls[-1]

    monkeypatch.setattr(nn.BatchNorm2d, "_backward_into", spy)
    return calls


def grads(model, x, dy, input_grad):
    for q in model.parameters():
        q.grad = None
    model(x)
    r = model.backward(dy, input_grad=input_grad)
    assert (r is None) == (not input_grad)
    return [q.grad.copy() for q in model.parameters()]


def both(model, x, dy):
    """(with the hand-over, the layers' own backwards): every parameter's gradient."""
    got = grads(model, x, dy, False)
    return got, grads(model, x, dy, True)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("act", ACTS)
def test_bitwise_as_the_layers_backwards(rc, dtype, rng, case, act, monkeypatch):
    n, c, h, w, f, k, p, pool = case
    model = network(c, f, k, p, pool, act, dtype)
    calls = handed_over(model, monkeypatch)
    x = make_data(rng, (n, c, h, w), dtype)  # NaN, ±inf, ±0 among them
    x[0] = rng.standard_normal((c, h, w))
    dy = make_data(rng, model(x).shape, dtype)
    with relucore.use_gemm("own"):  # "auto" takes OpenBLAS's GEMM below AVX-512, where it declines
        got, exp = both(model, x, dy)
    assert calls == [True]
    for name, g, e in zip(("conv.weight", "conv.bias", "bn.weight", "bn.bias"), got, exp):
        assert_bitwise(g, e, f"{name} {case} {act}")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count_bitwise(dtype, threads, monkeypatch):
    rng = np.random.default_rng(3)
    model = network(1, 16, 3, 1, 2, "relu", dtype)
    x = rng.standard_normal((9, 1, 20, 20)).astype(dtype)
    dy = rng.standard_normal((9, 16 * 100)).astype(dtype)
    old = relucore.get_num_threads()
    relucore.set_num_threads(1)
    try:
        exp = grads(model, x, dy, True)
        relucore.set_num_threads(threads)
        calls = handed_over(model, monkeypatch)
        got = grads(model, x, dy, False)
    finally:
        relucore.set_num_threads(old)
    assert calls == [True]
    for g, e in zip(got, exp):
        assert_bitwise(g, e)


def test_no_conv_bias(dtype, rng, monkeypatch):
    model = network(1, 8, 3, 1, 2, "relu", dtype)
    conv = model[0]
    conv.bias = None
    calls = handed_over(model, monkeypatch)
    x = rng.standard_normal((4, 1, 10, 10)).astype(dtype)
    dy = rng.standard_normal((4, 8 * 25)).astype(dtype)
    got, exp = both(model, x, dy)
    assert calls == [True] and len(got) == 3
    for g, e in zip(got, exp):
        assert_bitwise(g, e)


@pytest.mark.parametrize("setting", ["taps", "groups", "blas", "winograd", "numpy"])
def test_layers_apart_where_it_does_not_apply(dtype, setting, monkeypatch):
    """More than 16 column rows, grouped convolution, OpenBLAS's GEMM, Winograd forced, the numpy
    backend: each layer's own backward, the same gradients."""
    rng = np.random.default_rng(4)
    c, groups = (2, 1) if setting == "taps" else (2, 2) if setting == "groups" else (1, 1)
    model = network(1, 4, 3, 1, 2, "relu", dtype)
    model[0] = nn.Conv2d(c, 4, 3, padding=1, groups=groups, dtype=dtype)
    x = rng.standard_normal((3, c, 10, 10)).astype(dtype)
    dy = rng.standard_normal((3, 4 * 25)).astype(dtype)
    calls = handed_over(model, monkeypatch)
    scope = {"blas": lambda: relucore.use_gemm("blas"), "winograd": lambda: relucore.use_conv_algorithm("winograd"),
             "numpy": lambda: relucore.use_backend("numpy")}.get(setting)
    if scope is None:
        got, exp = both(model, x, dy)
    else:
        with scope():
            got, exp = both(model, x, dy)
    assert not any(calls)
    for g, e in zip(got, exp):
        assert_bitwise(g, e)


@pytest.mark.parametrize("input_grad", [False, True])
def test_dy_of_the_other_dtype_names_the_layer(dtype, input_grad):
    """dy must have the forward output's dtype (no silent cast): the network's last layer names it,
    and the network keeps its state for a corrected call, which gives an undisturbed one's gradients."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 1, 10, 10)).astype(dtype)
    dy = rng.standard_normal((3, 4 * 25)).astype(dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    exp = grads(network(1, 4, 3, 1, 2, "relu", dtype), x, dy, input_grad)
    model = network(1, 4, 3, 1, 2, "relu", dtype)
    model(x)
    with pytest.raises(TypeError, match=f"Flatten.*expected dy of dtype {np.dtype(dtype).name}.*got {np.dtype(other).name}"):
        model.backward(dy.astype(other), input_grad=input_grad)
    model.backward(dy, input_grad=input_grad)
    for g, e in zip([q.grad for q in model.parameters()], exp):
        assert_bitwise(g, e)


def test_damaged_position_names_the_layer(monkeypatch):
    model = network(1, 4, 3, 1, 2, "relu", np.float32)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    calls = handed_over(model, monkeypatch)
    model(x)
    model[1].__dict__["_cache"][6][0][0, 0, 0, 0] = 7
    with pytest.raises(ValueError, match="BatchNorm2d.*positions"):
        model.backward(np.ones((2, 4 * 16), np.float32), input_grad=False)
    assert calls == []  # raised inside the hand-over


def test_the_first_layer_only(dtype, monkeypatch):
    """A Conv2d -> BatchNorm2d pair that is not at the start runs its layers' own backwards."""
    rng = np.random.default_rng(6)
    model = nn.Sequential(nn.ReLU(), *network(1, 4, 3, 1, 2, "relu", dtype))
    calls = handed_over(model, monkeypatch)
    x = rng.standard_normal((2, 1, 8, 8)).astype(dtype)
    got, exp = both(model, x, rng.standard_normal((2, 4 * 16)).astype(dtype))
    assert not any(calls)
    for g, e in zip(got, exp):
        assert_bitwise(g, e)


@pytest.mark.parametrize("act", ACTS)
def test_conv_bias_summed_by_the_batch_norm_after_it(rc, dtype, rng, act, monkeypatch):
    """conv -> batch norm -> act -> pool twice: the second convolution's bias gradient comes from the
    batch norm + pool backward's dx pass; every gradient bit for bit that of the modules' own
    backwards called one by one."""
    model = network(1, 4, 3, 1, 2, act, dtype)
    block = list(network(4, 6, 3, 1, 2, act, dtype, seed=1))[:4]
    model = nn.Sequential(*list(model)[:4], *block, nn.Flatten())
    sums = []
    inner = nn.BatchNorm2d._backward

    def spy(self, dy, input_sums=False):
        r = inner(self, dy, input_sums)
        sums.append(r[1] is not None)
        return r

    monkeypatch.setattr(nn.BatchNorm2d, "_backward", spy)
    x = make_data(rng, (3, 1, 12, 12), dtype)
    x[0] = rng.standard_normal((1, 12, 12))
    dy = make_data(rng, (3, 6 * 9), dtype)
    for p in model.parameters():
        p.grad = None
    model(x)
    dx = model.backward(dy)
    assert sums == [True, True]
    got = [p.grad.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    model(x)
    ran = [model[i] for i in (0, 1, 4, 5, 8)]  # the fused activations and pools run in the batch norms
    g = dy
    for m in reversed(ran):
        g = m.backward(g)
    assert_bitwise(dx, g, "dx")
    for i, (a, e) in enumerate(zip(got, [p.grad for p in model.parameters()])):
        assert_bitwise(a, e, f"parameter {i}")


def test_a_backward_replaced_on_the_instance_is_called(dtype):
    """A layer whose backward is replaced on the instance (a wrapper, a hook) gets its backward
    called: no hand-over around it."""
    rng = np.random.default_rng(9)
    model = network(1, 4, 3, 1, 2, "relu", dtype)
    conv = model[0]
    calls = []
    inner = conv.backward

    def wrapped(dy, input_grad=True):
        calls.append(input_grad)
        return inner(dy, input_grad=input_grad)

    conv.backward = wrapped
    x = rng.standard_normal((2, 1, 8, 8)).astype(dtype)
    dy = rng.standard_normal((2, 4 * 16)).astype(dtype)
    model(x)
    assert model.backward(dy, input_grad=False) is None
    assert calls == [False]
    assert conv.weight.grad is not None and conv.bias.grad is not None
