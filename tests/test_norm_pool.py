"""Sequential's BatchNorm2d -> activation -> MaxPool2d sweep (training, native backend): the same
results as the three layers run apart (bit for bit where both sum the statistics per plane: batch
2-3 with planes of 64+ values, except the backward's sums over 2x2 stride-2 windows, which add the
winners only: within rounding; within rounding otherwise), on every ISA, with NaN/±inf/±0 in the
data, every activation the batch norm fuses, overlapping and padded windows, odd sizes, frozen
statistics, non-contiguous input and two threads; numeric gradients; the paths that run the pool
apart (numpy backend, momentum=None, a Monitor); errors naming the layer; the bytes kept."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import relucore
from _helpers import assert_bitwise, make_data
from relucore import nn
from relucore.nn.container import fusable_activation
from relucore.nn.summary import summary
from test_pool import distinct_data

ACTS = {"relu": lambda: nn.ReLU(), "leaky": lambda: nn.LeakyReLU(0.1), "elu": lambda: nn.ELU(0.7)}
# (kernel, stride, padding): the usual 2x2, overlapping, padded, rectangular
POOLS = {"k2": (2, None, 0), "k2s1": (2, 1, 0), "k3s2p1": (3, 2, 1), "rect": ((2, 3), (1, 2), (1, 1))}
# batch <= 3 and planes of >= 64 values: the separate batch norm sums per plane too (bitwise); rows
# of 1, 14, 35 windows: the 2x2 kernels' row ends (vectors of 8 and 16 lanes, the tails' stores)
PLANE_SHAPES = [(2, 3, 16, 16), (1, 2, 8, 8), (3, 2, 9, 11), (2, 4, 13, 15), (2, 2, 10, 33), (2, 2, 28, 28),
                (1, 2, 7, 29), (1, 2, 4, 70), (1, 2, 40, 3)]
# the backward's values that come from its sums
SUMMED = ("dx", "dweight", "dbias")


class Apart(nn.Module):
    """The same layers with the pool run apart: the batch norm + activation pass keeping x (the
    sweep's kernels; a separate ReLU would pass dy through a NaN, the fused pair does not), then the
    pool."""

    def __init__(self, bn, act, pool):
        super().__init__()
        self.bn, self.pool = bn, pool
        self.act = fusable_activation(act)[0]

    def forward(self, x):
        return self.pool(self.bn.forward_activation(x, self.act, False))

    def backward(self, dy):
        return self.bn.backward(self.pool.backward(dy))


def apart_of(fused):
    return Apart(*copy.deepcopy(list(fused)))


def bn_of(model):
    return model.bn if isinstance(model, Apart) else model[0]


def triple(c, act, pool, dtype, seed=0):
    """(fused, apart): BatchNorm2d -> act -> MaxPool2d, and :func:`apart_of` it, same state."""
    bn = nn.BatchNorm2d(c, dtype=dtype)
    rng = np.random.default_rng(seed)
    bn.weight.data[...] = rng.uniform(-2, 2, c)  # negative scales reverse the pooling's order
    bn.bias.data[...] = rng.uniform(-1, 1, c)
    fused = nn.Sequential(bn, ACTS[act](), nn.MaxPool2d(*POOLS[pool]))
    return fused, apart_of(fused)


def ran_fused(model) -> bool:
    """Whether the last forward ran the sweep (the batch norm then holds the pool's positions)."""
    saved = bn_of(model).__dict__["_cache"]
    return saved is not None and len(saved) == 7 and isinstance(saved[6], tuple)


def step(model, x, dy, fused=None):
    """Forward, backward: (y, dx, dweight, dbias, running_mean, running_var); with ``fused`` (True or
    False), whether the forward ran the sweep is checked first."""
    for p in model.parameters():
        p.grad = None
    y = model(x)
    if fused is not None:
        assert ran_fused(model) == fused
    dx = model.backward(dy)
    bn = bn_of(model)
    keep = [None if a is None else a.copy() for a in (bn.running_mean, bn.running_var)]
    return (y, dx, bn.weight.grad, bn.bias.grad, *keep)


NAMES = ("y", "dx", "dweight", "dbias", "running_mean", "running_var")


def mostly_finite(rng, shape, dtype):
    """Normal data at mixed scales, NaN/±inf/±0/tiny/huge mixed into the last channel only: the
    other channels' statistics and gradients are numbers to compare."""
    a = make_data(rng, shape, dtype, special_frac=0)
    a[:, -1] = make_data(rng, (shape[0],) + tuple(shape[2:]), dtype)
    return a


def summable(a, pool):
    """``a`` with ±(the largest finite value) made ±100 where the 2x2 kernels sum in their own order:
    sums of those overflow, or cancel to what the other terms add, depending on the order."""
    if pool == "k2":
        big = np.abs(a) == np.finfo(a.dtype).max
        a[big] = np.copysign(100, a[big])
    return a


def assert_rounding_close(got, exp, what=""):
    """The same NaN and inf places and values within a few roundings of the largest finite value
    (of each channel, for (N, C, H, W) arrays): sums of the same terms added in another order."""
    got, exp = np.asarray(got), np.asarray(exp)
    assert got.dtype == exp.dtype and got.shape == exp.shape, what
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exp), err_msg=f"NaN places of {what}")
    inf = np.isinf(exp)
    np.testing.assert_array_equal(got[inf], exp[inf], err_msg=f"inf places of {what}")
    fin = np.isfinite(exp)
    tol = 1024 * np.finfo(exp.dtype).eps  # sums of up to a few thousand terms, some cancelling
    mag = np.abs(np.where(fin, exp, 0))
    scale = mag.max(axis=(0, 2, 3), keepdims=True) if exp.ndim == 4 else mag.max(initial=0)
    err = np.abs(np.where(fin, got, 0).astype(np.float64) - np.where(fin, exp, 0))
    bad = fin & (err > tol * (mag + scale))
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} values off by more than {tol:.2g} x their "
                           f"channel's largest; at {np.argwhere(bad)[:4].tolist()}: got {got[bad][:4]}, "
                           f"expected {exp[bad][:4]}")


@pytest.mark.parametrize("shape", PLANE_SHAPES, ids=str)
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("act", ACTS)
def test_as_the_layers_apart(rc, dtype, rng, shape, pool, act):
    fused, apart = triple(shape[1], act, pool, dtype)
    x = summable(mostly_finite(rng, shape, dtype), pool)  # NaN, ±inf, ±0 in the last channel
    for _ in range(2):  # the running statistics move twice
        dy = summable(mostly_finite(rng, nn.MaxPool2d(*POOLS[pool])(x).shape, dtype), pool)
        got = step(fused, x, dy, True)
        exp = step(apart, x, dy)
        for name, g, e in zip(NAMES, got, exp):
            same = assert_rounding_close if pool == "k2" and name in SUMMED else assert_bitwise
            same(g, e, f"{name} {act} {pool} {shape}")


@pytest.mark.parametrize("act", ACTS)
def test_frozen_statistics_and_no_affine(rc, dtype, rng, act):
    """A batch norm in evaluation mode inside a training Sequential, and one without weight, bias or
    running statistics."""
    shape = (2, 3, 12, 10)
    x = make_data(rng, shape, dtype)
    for make in ("eval", "plain"):
        if make == "eval":
            fused, apart = triple(3, act, "k2", dtype)
            for m in (fused, apart):
                bn_of(m).running_mean[...] = [0.5, -1, 2]
                bn_of(m).running_var[...] = [0.25, 4, 1]
                bn_of(m).eval()
        else:  # batch statistics: the specials in one channel, numbers in the others
            x = mostly_finite(rng, shape, dtype)
            bn = nn.BatchNorm2d(3, affine=False, track_running_stats=False, dtype=dtype)
            fused = nn.Sequential(bn, ACTS[act](), nn.MaxPool2d(2))
            apart = apart_of(fused)
        y = fused(x)
        assert ran_fused(fused)
        dy = summable((make_data if make == "eval" else mostly_finite)(rng, y.shape, dtype), "k2")
        assert_bitwise(y, apart(x), f"y {make}")
        dx = fused.backward(dy), apart.backward(dy)
        if make == "eval":  # no sums in dx
            assert_bitwise(*dx, f"dx {make}")
            assert_rounding_close(fused[0].weight.grad, bn_of(apart).weight.grad, "dweight")
            assert_bitwise(fused[0].running_mean, bn_of(apart).running_mean)
        else:
            assert_rounding_close(*dx, f"dx {make}")


def test_an_overflow_where_no_window_wins(rc, dtype):
    """Frozen statistics far from the data: x - mean overflows at a place that wins no window (the
    sums over winners check for that, as the sum over the whole plane has 0 * inf there)."""
    big = np.finfo(dtype).max
    fused, apart = triple(1, "relu", "k2", dtype)
    for m in (fused, apart):
        bn = bn_of(m)
        bn.weight.data[...], bn.bias.data[...] = -1, 0
        bn.running_mean[...], bn.running_var[...] = -0.6 * big, 1
        bn.eval()
    x = np.zeros((1, 1, 4, 6), dtype)
    x[0, 0, 0, 1] = 0.6 * big  # u = inf: z = -inf, relu 0, and the window's first place wins the tie
    dy = np.ones((1, 1, 2, 3), dtype)
    got, exp = step(fused, x, dy, True), step(apart, x, dy)
    assert np.isnan(exp[2]).all()  # the weight's gradient
    for name, g, e in zip(NAMES, got, exp):
        assert_bitwise(g, e, name)


@pytest.mark.parametrize("shape", [(8, 4, 16, 16), (6, 3, 7, 7), (5, 2, 5, 9), (64, 4, 14, 14)], ids=str)
@pytest.mark.parametrize("act", ACTS)
def test_close_to_the_layers_apart_in_other_layouts(rc, dtype, rng, shape, act):
    """Shapes where the separate batch norm sums its statistics per channel or across vector lanes:
    the same up to rounding (values far apart: rounding does not move a window's winner)."""
    fused, apart = triple(shape[1], act, "k2", dtype)
    x = distinct_data(rng, shape).astype(dtype)
    x /= np.abs(x).max()
    y = fused(x)
    assert ran_fused(fused)
    dy = rng.standard_normal(y.shape).astype(dtype)
    for p in fused.parameters():
        p.grad = None
    got = (y, fused.backward(dy), fused[0].weight.grad, fused[0].bias.grad, fused[0].running_mean, fused[0].running_var)
    exp = step(apart, x, dy)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for name, g, e in zip(NAMES, got, exp):
        np.testing.assert_allclose(g, e, err_msg=name, **tol)


def test_two_threads_bitwise(dtype, rng):
    shape = (4, 8, 48, 48)  # over two threads' worth of planes
    x = mostly_finite(rng, shape, dtype)
    dy = mostly_finite(rng, (4, 8, 24, 24), dtype)
    results = []
    for n in (1, 2):
        fused, _ = triple(8, "relu", "k2", dtype)
        old = relucore.get_num_threads()
        relucore.set_num_threads(n)
        try:
            results.append(step(fused, x, dy, True))
        finally:
            relucore.set_num_threads(old)
    for name, a, b in zip(NAMES, *results):
        assert_bitwise(a, b, name)


def test_non_contiguous_input(dtype, rng):
    x = mostly_finite(rng, (2, 3, 20, 16), dtype).transpose(0, 1, 3, 2)
    fused, apart = triple(3, "relu", "k2", dtype)
    y = fused(x)
    assert ran_fused(fused)
    dy = mostly_finite(rng, (2, 3, 10, 8), dtype).transpose(0, 1, 3, 2)
    assert not dy.flags.c_contiguous
    assert_bitwise(y, apart(x))
    assert_rounding_close(fused.backward(dy), apart.backward(dy), "dx")


def test_parameters_the_kernel_does_not_take_run_apart(dtype, rng):
    """A non-contiguous weight, a read-only running buffer: the layers run apart (same results)."""
    x = make_data(rng, (2, 3, 16, 16), dtype)
    dy = make_data(rng, (2, 3, 8, 8), dtype)
    for change in ("weight", "running_mean"):
        fused, apart = triple(3, "relu", "k2", dtype)
        for m in (bn_of(fused), bn_of(apart)):
            if change == "weight":
                m.weight.data = np.repeat(m.weight.data, 2)[::2]  # same values, stride 2
            else:
                m.running_mean.flags.writeable = False
        if change == "running_mean":
            with pytest.raises(ValueError):  # NumPy's own refusal, as for the batch norm alone
                fused(x)
            continue
        got = step(fused, x, dy, False)
        for name, g, e in zip(NAMES, got, step(apart, x, dy)):
            assert_bitwise(g, e, f"{name} {change}")


def test_numeric_gradients():
    rng = np.random.default_rng(5)
    for pool in POOLS:
        fused, _ = triple(2, "leaky", pool, np.float64, seed=3)
        x = distinct_data(rng, (2, 2, 8, 8))
        report = relucore.gradcheck(fused, x, rtol=1e-5)
        assert report.passed, report


def test_paths_that_run_the_pool_apart(dtype, rng):
    """numpy backend, momentum=None (the batch count decides the average), a Monitor counting
    active units: the pool runs as its own layer, its backward from the batch norm's."""
    shape = (2, 3, 8, 8)
    x = distinct_data(rng, shape).astype(dtype)  # finite, far apart: the NumPy rounding keeps the winners
    dy = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    fused, apart = triple(3, "relu", "k2", dtype)
    exp = step(apart, x, dy)
    with relucore.use_backend("numpy"):
        got = step(fused, x, dy, False)
    for name, g, e in zip(NAMES, got, exp):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, err_msg=name)
    x = make_data(rng, shape, dtype)
    dy = make_data(rng, (2, 3, 4, 4), dtype)

    fused, apart = triple(3, "relu", "k2", dtype)
    fused[0].momentum = bn_of(apart).momentum = None
    got, exp = step(fused, x, dy, False), step(apart, x, dy)
    for name, g, e in zip(NAMES, got, exp):
        assert_bitwise(g, e, name)

    from relucore.diagnostics import Monitor

    fused, apart = triple(3, "relu", "k2", dtype)
    with Monitor(fused) as mon:
        got = step(fused, x, dy, False)
        mon.step()
    for name, g, e in zip(NAMES, got, step(apart, x, dy)):
        assert_bitwise(g, e, name)
    assert any(mon.history[k] for k in mon.history)


@pytest.mark.parametrize("tracking", [False, True])
def test_momentum_none_where_no_running_statistics_move(dtype, rng, tracking):
    """momentum=None with track_running_stats=False, or a batch norm in eval mode inside a training
    Sequential (its running statistics used, not updated): the sweep runs, as the layers apart."""
    shape = (2, 3, 8, 8)
    x = make_data(rng, shape, dtype, special_frac=0)
    dy = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    bn = nn.BatchNorm2d(3, momentum=None, track_running_stats=tracking, dtype=dtype)
    bn.weight.data[...] = rng.uniform(-2, 2, 3)
    if tracking:
        bn.running_mean[...] = rng.uniform(-1, 1, 3)
        bn.running_var[...] = rng.uniform(0.5, 2, 3)
    fused = nn.Sequential(bn, nn.ReLU(), nn.MaxPool2d(2))
    apart = apart_of(fused)
    if tracking:
        fused[0].eval(), bn_of(apart).eval()
    before = [None if a is None else a.copy() for a in (bn.running_mean, bn.running_var)]
    got, exp = step(fused, x, dy, True), step(apart, x, dy)
    for name, g, e in zip(NAMES[:4], got, exp):
        assert_rounding_close(g, e, name) if name in SUMMED else assert_bitwise(g, e, name)
    for b, a in zip(before, got[4:]):  # the running statistics did not move
        assert (b is None and a is None) or np.array_equal(a, b)


def test_not_fused_where_it_should_not(dtype):
    """Evaluation mode, a pool of more than 255 positions, another pool type, ReLU with a gradient
    at 0, fuse=False."""
    x = np.random.default_rng(0).standard_normal((2, 3, 20, 20)).astype(dtype)
    fused, _ = triple(3, "relu", "k2", dtype)
    fused.eval()
    fused(x)
    assert not ran_fused(fused)
    for tail in (nn.MaxPool2d(16), nn.AvgPool2d(2)):
        m = nn.Sequential(nn.BatchNorm2d(3, dtype=dtype), nn.ReLU(), tail)
        m(x)
        assert not ran_fused(m)
    m = nn.Sequential(nn.BatchNorm2d(3, dtype=dtype), nn.ReLU(grad_at_zero=1), nn.MaxPool2d(2))
    m(x)
    assert not ran_fused(m)
    m = nn.Sequential(nn.BatchNorm2d(3, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2), fuse=False)
    m(x)
    assert m[0].__dict__["_cache"] is not None and not ran_fused(m)


def test_errors_name_the_layer():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    fused, _ = triple(3, "relu", "k2", np.float32)
    with pytest.raises(RuntimeError, match="Sequential"):
        fused.backward(np.ones((2, 3, 4, 4), np.float32))
    fused(x)
    fused[0].backward(np.ones((2, 3, 4, 4), np.float32))
    with pytest.raises(RuntimeError, match="BatchNorm2d"):  # one backward per forward
        fused[0].backward(np.ones((2, 3, 4, 4), np.float32))
    fused(x)
    bn = fused[0]  # the layer keeps its state for a corrected call
    with pytest.raises(ValueError, match=r"BatchNorm2d.*\(2, 3, 4, 4\)"):
        bn.backward(np.ones((2, 3, 8, 8), np.float32))
    for dtype in (np.int32, np.float64):  # dy of the forward output's dtype only (no silent cast)
        with pytest.raises(TypeError, match="BatchNorm2d.*expected dy of dtype float32"):
            bn.backward(np.ones((2, 3, 4, 4), dtype))
    dx = bn.backward(np.ones((2, 3, 4, 4), np.float32))
    assert dx.shape == x.shape and dx.dtype == np.float32
    fused(x)
    fused[0].__dict__["_cache"][6][0][0, 0, 0, 0] = 7  # a damaged window position
    with pytest.raises(ValueError, match="BatchNorm2d.*positions"):
        fused.backward(np.ones((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="MaxPool2d"):  # a window larger than the padded input
        nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(9))(x)
    with pytest.raises(ValueError, match="BatchNorm2d"):  # one value per channel
        nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(1))(x[:1, :, :1, :1])


def test_summary_counts_the_positions_at_the_batch_norm():
    model = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    s = summary(model, (8, 4, 6, 6))
    kept = [r.kept_bytes for r in s.rows]
    # x (float32), the saved mean and 1/std, one byte per pooled output; nothing at ReLU and pool
    assert kept == [8 * 4 * 36 * 4 + 2 * 4 * 4 + 8 * 4 * 9, 0, 0, 0]
