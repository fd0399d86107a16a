"""A Conv2d followed by BatchNorm2d -> activation -> MaxPool2d in training: where the convolution's
few-tap direct forward runs whole images, it also sums each output plane for the batch norm's
statistics while the plane is in cache (``_core.conv2d_moments``), and the batch norm + pool sweep
takes those sums instead of a pass over the output. Everything that follows (output, positions,
statistics, running buffers, gradients) is bit for bit what the layers give run one after the
other, on every ISA, with NaN/±inf/±0 in the data; elsewhere (images split into row blocks, layers
on Winograd or the GEMM) no sums come back and the sweep sums as before."""

from __future__ import annotations

import numpy as np
import pytest
import relucore
from _helpers import assert_bitwise, make_data
from relucore import _core, nn
from relucore.nn.container import fusable_activation

ACTS = {"relu": lambda: nn.ReLU(), "leaky": lambda: nn.LeakyReLU(0.1), "elu": lambda: nn.ELU(0.7)}
# (batch, channels, H, W, filters, kernel, padding): whole images per work item (a batch of at
# least 4 per thread, 2 threads); filters across the 8-filter register groups, planes with and
# without a vector tail, 3 input channels
CASES = [(8, 1, 8, 8, 4, 3, 1), (9, 1, 12, 10, 9, 3, 1), (16, 3, 9, 11, 5, 3, 0), (12, 1, 14, 14, 16, 4, 2),
         (64, 1, 28, 28, 16, 3, 1)]


@pytest.fixture
def two_threads():
    old = relucore.get_num_threads()
    relucore.set_num_threads(2)
    yield
    relucore.set_num_threads(old)


def layers(c, f, k, p, act, dtype, seed=0):
    nn.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bn = nn.BatchNorm2d(f, dtype=dtype)
    bn.weight.data[...] = rng.uniform(-2, 2, f)  # negative scales reverse the pooling's order
    bn.bias.data[...] = rng.uniform(-1, 1, f)
    return [nn.Conv2d(c, f, k, padding=p, dtype=dtype), bn, ACTS[act](), nn.MaxPool2d(2), nn.Flatten()]


def summed(monkeypatch) -> list:
    """Record whether each conv2d_moments call gave sums."""
    calls = []
    inner = _core.conv2d_moments

    def spy(*args):
        r = inner(*args)
        calls.append(r[1] is not None)
        return r

    monkeypatch.setattr(_core, "conv2d_moments", spy)
    return calls


def step_apart(mods, x, dy):
    """Forward and backward with the layers one after the other: the convolution alone, then the
    batch norm + activation + pool sweep summing its own statistics."""
    conv, bn, act, pool, flat = mods
    a, inv = fusable_activation(act)
    out = flat(bn.forward_activation(conv(x), a, inv, pool))
    conv.backward(bn.backward(flat.backward(dy)))
    return out


def state(mods):
    conv, bn = mods[:2]
    return [conv.weight.grad, conv.bias.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("act", ACTS)
def test_bitwise_as_the_layers_apart(rc, dtype, rng, case, act, two_threads, monkeypatch):
    n, c, h, w, f, k, p = case
    x = make_data(rng, (n, c, h, w), dtype)  # NaN, ±inf, ±0 among them
    x[0] = rng.standard_normal((c, h, w))  # image 0 holds the shifts: finite in most channels
    fused = nn.Sequential(*layers(c, f, k, p, act, dtype))
    mods = layers(c, f, k, p, act, dtype)
    calls = summed(monkeypatch)
    with relucore.use_gemm("own"):  # the direct forward stands in for relucore's GEMM only
        for step in range(2):  # the first call checks the arguments, later ones take the sums
            got = fused(x)
            dy = make_data(rng, got.shape, dtype, special_frac=0)
            fused.backward(dy)
            assert_bitwise(got, step_apart(mods, x, dy), f"output, step {step}")
            for name, g, e in zip(("conv dw", "conv db", "bn dw", "bn db", "mean", "var"), state(list(fused)),
                                  state(mods)):
                assert_bitwise(g, e, f"{name}, step {step}")
    assert calls == [True]


@pytest.mark.parametrize("act", ["relu", "elu"])
def test_given_sums_are_the_sweeps_own(rc, dtype, rng, act, two_threads):
    """The sweep with conv2d_moments' sums: the same output, positions, statistics and running
    buffers as the sweep summing the same array itself."""
    x = rng.standard_normal((8, 2, 10, 13)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    with relucore.use_gemm("own"):
        y, sums = _core.conv2d_moments(x, w, b, 1, 1, 1, 1, 1, 1, 1)
        assert_bitwise(y, relucore.conv2d(x, w, b, padding=1), "conv2d_moments' y")
    assert sums is not None and sums.shape == (2, 8 * 6) and sums.dtype == np.float64
    code = _core.NORM_ACTIVATIONS[act]
    out = []
    for given in (sums, None):
        rm, rv = np.full(6, 0.5, dtype), np.full(6, 2.0, dtype)
        r = _core.batch_norm_max_pool2d(y, rm, rv, None, None, True, 0.1, 1e-5, code, 0.5, 2, 2, 2, 2, 0, 0, given)
        out.append(list(r) + [rm, rv])
    for name, g, e in zip(("y", "positions", "mean", "invstd", "running_mean", "running_var"), *out):
        assert_bitwise(g, e, name)


def test_no_sums_where_they_do_not_apply(dtype, rng):
    """Images split into row blocks (a batch smaller than 4 per thread), OpenBLAS as the GEMM,
    forced Winograd, a layer with many taps: conv2d_moments gives y as conv2d does and no sums."""
    old = relucore.get_num_threads()
    relucore.set_num_threads(2)
    try:
        for n, c, f, gemm, algo in [(2, 1, 8, "own", "auto"), (8, 1, 8, "blas", "auto"), (8, 1, 8, "own", "winograd"),
                                    (8, 16, 16, "own", "auto")]:
            x = rng.standard_normal((n, c, 14, 14)).astype(dtype)
            w = rng.standard_normal((f, c, 3, 3)).astype(dtype)
            with relucore.use_gemm(gemm), relucore.use_conv_algorithm(algo):
                y, sums = _core.conv2d_moments(x, w, None, 1, 1, 1, 1, 1, 1, 1)
                assert_bitwise(y, relucore.conv2d(x, w, None, padding=1), f"y {n, c, f, gemm, algo}")
            assert sums is None, (n, c, f, gemm, algo)
    finally:
        relucore.set_num_threads(old)


def test_run_sums_checked(dtype):
    """The sweep refuses sums of the wrong shape, and sums outside training."""
    x = np.ones((2, 3, 4, 4), dtype)
    args = (None, None, None, None, True, 0.1, 1e-5, 0, 0.0, 2, 2, 2, 2, 0, 0)
    with pytest.raises(ValueError, match="run sums"):
        _core.batch_norm_max_pool2d(x, *args, np.zeros((2, 5)))
    evaluation = (np.zeros(3, dtype), np.ones(3, dtype)) + args[2:4] + (False,) + args[5:]
    with pytest.raises(ValueError, match="run sums"):
        _core.batch_norm_max_pool2d(x, *evaluation, np.zeros((2, 6)))


def test_a_forward_replaced_on_the_instance_is_called(dtype, rng):
    """A Conv2d whose forward is replaced on the instance runs that forward in training, not the
    sums path beside it."""
    mods = layers(1, 4, 3, 1, "relu", dtype)
    calls = []
    inner = mods[0].forward

    def wrapped(x):
        calls.append(x.shape)
        return inner(x)

    mods[0].forward = wrapped
    model = nn.Sequential(*mods)
    x = rng.standard_normal((8, 1, 8, 8)).astype(dtype)
    model(x)
    model(x)
    assert calls == [x.shape, x.shape]
