"""Conv2d and Linear call the native kernels directly (without the argument checks) for inputs whose
shapes passed the checks since the module last changed: the same bits as the checked call, and
every way out of that path: a changed module, a changed parameter array (non-contiguous, another
dtype, another shape), an unaligned, non-contiguous, wrongly typed or wrongly shaped input or dy,
and another backend."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import relucore
from _helpers import assert_bitwise
from relucore import nn
from relucore.nn.module import generation


def layers(dtype):
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(3, 5, 3, padding=1, dtype=dtype, rng=rng)
    lin = nn.Linear(12, 4, dtype=dtype, rng=rng)
    x_conv = rng.standard_normal((2, 3, 6, 7)).astype(dtype)
    x_lin = rng.standard_normal((6, 12)).astype(dtype)
    return [(conv, x_conv, (2, 5, 6, 7)), (lin, x_lin, (6, 4))]


def run(m, x, dy):
    for p in m.parameters():
        p.grad = None
    y = m(x)
    dx = m.backward(dy)
    return [y, dx] + [p.grad for p in m.parameters()]


def checked(m) -> bool:
    keys = m.__dict__.get("_checked_keys")
    return keys is not None and keys[0] == generation() and bool(keys[1])


@pytest.mark.parametrize("which", [0, 1], ids=["conv", "linear"])
def test_direct_calls_give_the_checked_results(dtype, which):
    m, x, out_shape = layers(dtype)[which]
    dy = np.random.default_rng(1).standard_normal(out_shape).astype(dtype)
    fresh = copy.deepcopy(m)
    first = run(m, x, dy)  # checked, and remembered
    assert checked(m)
    second = run(m, x, dy)  # direct
    third = run(fresh, x, dy)
    for a, b, c in zip(first, second, third):
        assert_bitwise(a, b)
        assert_bitwise(a, c)


@pytest.mark.parametrize("which", [0, 1], ids=["conv", "linear"])
def test_every_way_out_of_the_direct_path(dtype, which):
    m, x, out_shape = layers(dtype)[which]
    dy = np.random.default_rng(1).standard_normal(out_shape).astype(dtype)
    expected = run(copy.deepcopy(m), x, dy)
    run(m, x, dy)
    assert checked(m)

    def same(mm=m, xx=x, dd=dy, exact=True):
        for a, b in zip(run(mm, xx, dd), expected):
            if exact:
                np.testing.assert_array_equal(a, b)
            else:  # another GEMM layout: another rounding
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    # inputs and gradients the kernels cannot take as they are: the checked path converts them
    other = np.float64 if dtype == np.float32 else np.float32
    with pytest.raises(TypeError, match=type(m).__name__):
        m(x.astype(other))
    buf = np.empty(x.nbytes + 1, np.uint8)[1:].view(dtype).reshape(x.shape)  # unaligned
    buf[...] = x
    same(xx=buf)
    same(xx=np.asfortranarray(x), exact=which == 0)  # linear takes a transposed x as such
    same(dd=np.asfortranarray(dy))
    m(x)
    with pytest.raises(TypeError):
        m.backward(dy.astype(other))
    m(x)
    with pytest.raises(ValueError, match=type(m).__name__):
        m.backward(dy[:1])
    m.backward(dy)
    # parameter arrays replaced in place of the module's own
    w = m.weight.data
    m.weight.data = np.asfortranarray(w)
    assert not m.weight.data.flags.c_contiguous
    same(exact=which == 0)  # linear takes a transposed weight as such
    m.weight.data = w.astype(other)
    with pytest.raises(TypeError, match=type(m).__name__):
        m(x)
    m.weight.data = w
    bias = m.bias.data
    m.bias.data = bias[:-1].copy()
    with pytest.raises(ValueError):
        m(x)
    m.bias.data = bias
    # another backend
    with relucore.use_backend("numpy"):
        for a, b in zip(run(m, x, dy), expected):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    same()
    # a changed module: forgotten, checked again (padding changes the output's shape)
    if which == 0:
        m.padding = (0, 0)
        assert not checked(m)
        assert m(x).shape == (2, 5, 4, 5)
        m.backward(np.zeros((2, 5, 4, 5), dtype))
    else:
        m.weight = nn.Parameter(np.zeros((3, 12)), dtype)
        assert not checked(m)
        with pytest.raises(ValueError):
            m(x)


def test_batch_norm_count_does_not_change_the_module():
    """The batch norm's batch count is updated in place: a training step leaves the module (and so
    the checked shapes of its neighbours) as they were."""
    bn = nn.BatchNorm2d(3)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    g = generation()
    for _ in range(3):
        bn(x)
        bn.backward(x)
    assert generation() == g and int(bn.num_batches_tracked) == 3
