"""relucore.reference.batch_norm / batch_norm_backward: PyTorch's semantics stated in NumPy, numeric
gradients, argument errors; and PyTorch itself as an optional peer."""

from __future__ import annotations

import numpy as np
import pytest

from relucore import reference as R

ACTS = [None, "relu", ("leaky_relu", 0.1), ("elu", 0.7)]
INVERTIBLE = [None, ("leaky_relu", 0.1), ("elu", 0.7)]
# 2-D, 3-D, 4-D, 5-D; C = 1; N = 1 with spatial > 1; 1x1 spatial
SHAPES = [(5, 3), (4, 2, 5), (3, 2, 3, 4), (2, 3, 2, 2, 3), (6, 1, 3), (1, 2, 3, 3), (5, 2, 1, 1)]


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bc(v, x):
    return np.asarray(v, np.float64).reshape((1, x.shape[1]) + (1,) * (x.ndim - 2))


def _act(z, act):
    if act is None:
        return z
    if act == "relu":
        return np.maximum(z, 0)
    name, p = act
    return np.where(z > 0, z, p * z) if name == "leaky_relu" else np.where(z > 0, z, p * np.expm1(z))


def _params(rng, c, dtype=np.float64):
    w = rng.uniform(0.5, 1.5, c).astype(dtype) * rng.choice([-1, 1], c)
    b = rng.standard_normal(c).astype(dtype)
    return w, b


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_training_forward_formula(shape, act):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 3 + 2
    w, b = _params(rng, shape[1])
    rm, rv = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, invstd = R.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3, eps=1e-3, activation=act)
    n = x.size // shape[1]
    mu = x.mean(axis=_axes(x))
    var = ((x - _bc(mu, x)) ** 2).sum(axis=_axes(x)) / n
    np.testing.assert_allclose(mean, mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(var + 1e-3), rtol=1e-12)
    z = (x - _bc(mu, x)) / np.sqrt(_bc(var, x) + 1e-3) * _bc(w, x) + _bc(b, x)
    np.testing.assert_allclose(y, _act(z, act), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * mu, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * var * n / (n - 1), rtol=1e-12)


def _eval_case(seed):
    """x (4, 3, 5), weight, bias and running buffers."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 3, 5))
    w, b = _params(rng, 3)
    return rng, x, w, b, rng.standard_normal(3), rng.uniform(0.5, 2, 3)


@pytest.mark.parametrize("act", ACTS)
def test_eval_forward_uses_running_buffers(act):
    _, x, w, b, rm, rv = _eval_case(2)
    keep = rm.copy(), rv.copy()
    y, mean, invstd = R.batch_norm(x, rm, rv, w, b, activation=act)
    np.testing.assert_array_equal(rm, keep[0])
    np.testing.assert_array_equal(rv, keep[1])
    np.testing.assert_allclose(mean, rm)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(rv + 1e-5))
    z = (x - _bc(rm, x)) / np.sqrt(_bc(rv, x) + 1e-5) * _bc(w, x) + _bc(b, x)
    np.testing.assert_allclose(y, _act(z, act), rtol=1e-12, atol=1e-12)


def test_running_buffers_over_steps_and_cumulative_average():
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((6, 2, 4)) * (k + 1) + k for k in range(4)]
    rm, rv = np.zeros(2), np.ones(2)
    cm, cv, counter = np.zeros(2), np.ones(2), np.array(0, np.int64)
    em, ev = np.zeros(2), np.ones(2)
    for x in batches:
        R.batch_norm(x, rm, rv, training=True, momentum=0.1)
        R.batch_norm(x, cm, cv, training=True, momentum=None, num_batches_tracked=counter)
        mu, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2), ddof=1)
        em, ev = 0.9 * em + 0.1 * mu, 0.9 * ev + 0.1 * var
    np.testing.assert_allclose(rm, em, rtol=1e-12)
    np.testing.assert_allclose(rv, ev, rtol=1e-12)
    assert counter == 4
    # momentum=None: factor 1/k at step k, so the first batch replaces the initial buffers and the
    # result is the plain average of the batch statistics
    np.testing.assert_allclose(cm, np.mean([x.mean(axis=(0, 2)) for x in batches], axis=0), rtol=1e-12)
    np.testing.assert_allclose(cv, np.mean([x.var(axis=(0, 2), ddof=1) for x in batches], axis=0), rtol=1e-12)


def test_training_without_running_buffers_and_counts():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 3, 2, 2)).astype(np.float32)
    y, mean, invstd, counts = R.batch_norm(x, None, None, training=True, activation="relu", return_counts=True)
    assert y.dtype == mean.dtype == invstd.dtype == np.float32
    np.testing.assert_array_equal(counts, (y > 0).sum(axis=(0, 2, 3)))
    assert counts.dtype == np.int64


def test_out_may_alias_x():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 5))
    exp = R.batch_norm(x, None, None, training=True, activation="elu")[0]
    r = R.batch_norm(x, None, None, training=True, activation="elu", out=x)
    assert r[0] is x
    np.testing.assert_array_equal(x, exp)


def _loss_grads(shape, act, training, seed):
    """Numeric gradients of sum(r * batch_norm(x)) with respect to x, weight and bias."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.standard_normal(shape)
    w, b = _params(rng, c)
    r = rng.standard_normal(shape)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)

    def f(x, w, b):
        return float((r * R.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training, activation=act)[0]).sum())

    def num(v, which, h=1e-6):
        g = np.zeros_like(v)
        for i in np.ndindex(v.shape):
            vp, vm = v.copy(), v.copy()
            vp[i] += h
            vm[i] -= h
            args_p = [x, w, b]
            args_m = [x, w, b]
            args_p[which], args_m[which] = vp, vm
            g[i] = (f(*args_p) - f(*args_m)) / (2 * h)
        return g

    _, mean, invstd = R.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training, activation=act)
    return x, w, b, r, mean, invstd, num(x, 0), num(w, 1), num(b, 2)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_numeric_gradients(shape, act, training):
    x, w, b, r, mean, invstd, gx, gw, gb = _loss_grads(shape, act, training, seed=len(shape) * 7 + shape[1])
    dx, dw, db = R.batch_norm_backward(r, x, w, mean, invstd, bias=b, activation=act, training=training)
    np.testing.assert_allclose(dx, gx, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dw, gw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, gb, rtol=1e-5, atol=1e-7)
    if act in INVERTIBLE and training:  # the y-only form gives the same gradients
        y = R.batch_norm(x, None, None, w, b, training=True, activation=act)[0]
        got = R.batch_norm_backward(r, None, w, mean, invstd, bias=b, activation=act, y=y)
        for g, e in zip(got, (dx, dw, db)):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("act", INVERTIBLE)
def test_y_only_backward_matches_x_backward_eval(act):
    rng, x, w, b, rm, rv = _eval_case(6)
    y, mean, invstd = R.batch_norm(x, rm, rv, w, b, activation=act)
    dy = rng.standard_normal(x.shape)
    exp = R.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation=act, training=False)
    got = R.batch_norm_backward(dy, None, w, mean, invstd, bias=b, activation=act, y=y, training=False)
    for g, e in zip(got, exp):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-10)


def test_backward_out_may_alias_dy():
    rng = np.random.default_rng(7)
    x, dy = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 3, 5))
    y, m, s = R.batch_norm(x, None, None, training=True, activation="relu")
    exp = R.batch_norm_backward(dy, x, None, m, s, activation="relu")
    got = R.batch_norm_backward(dy, x, None, m, s, activation="relu", out=dy)
    assert got[0] is dy
    np.testing.assert_array_equal(dy, exp[0])


def _bn_error_cases(M=R):
    """(error, message pattern, call) for the functions of module M."""
    x = np.zeros((4, 3, 2), np.float32)
    c = np.zeros(3, np.float32)
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    return [
        (TypeError, "float32 and float64", lambda: M.batch_norm(x.astype(np.int32), c, c.copy())),
        (TypeError, "running_mean", lambda: M.batch_norm(x, c.astype(np.float64), c)),
        (ValueError, "running_var", lambda: M.batch_norm(x, c, np.zeros(4, np.float32))),
        (ValueError, "weight", lambda: M.batch_norm(x, c, c.copy(), weight=np.ones(2, np.float32))),
        (ValueError, "x must be", lambda: M.batch_norm(np.zeros(3, np.float32), None, None, training=True)),
        (ValueError, "x must be", lambda: M.batch_norm(np.zeros((1,) * 6, np.float32), None, None, training=True)),
        (ValueError, "more than 1 value per channel",
         lambda: M.batch_norm(np.zeros((1, 3, 1, 1), np.float32), None, None, training=True)),
        (ValueError, "evaluation", lambda: M.batch_norm(x, None, None)),
        (ValueError, "both", lambda: M.batch_norm(x, c, None, training=True)),
        (ValueError, "writeable", lambda: M.batch_norm(x, ro, c.copy(), training=True)),
        (ValueError, "num_batches_tracked", lambda: M.batch_norm(x, c, c.copy(), training=True, momentum=None)),
        (ValueError, "activation", lambda: M.batch_norm(x, c, c.copy(), activation="gelu")),
        (TypeError, "activation", lambda: M.batch_norm(x, c, c.copy(), activation=3)),
        (TypeError, "momentum", lambda: M.batch_norm(x, c, c.copy(), training=True, momentum="a")),
        (ValueError, "out", lambda: M.batch_norm(x, c, c.copy(), out=np.zeros((4, 3, 3), np.float32))),
        (ValueError, "not invertible|recovered",
         lambda: M.batch_norm_backward(x, None, None, c, c, activation="relu", y=x)),
        (ValueError, "> 0", lambda: M.batch_norm_backward(x, None, None, c, c, activation=("leaky_relu", 0.0), y=x)),
        (ValueError, "no zeros", lambda: M.batch_norm_backward(x, None, c, c, c, y=x)),
        (ValueError, "exactly one", lambda: M.batch_norm_backward(x, x, None, c, c, y=x)),
        (ValueError, "exactly one", lambda: M.batch_norm_backward(x, None, None, c, c)),
        (ValueError, "same shape", lambda: M.batch_norm_backward(x, x[:2], None, c, c)),
        (ValueError, "save_mean", lambda: M.batch_norm_backward(x, x, None, c[:2], c)),
        (TypeError, "save_invstd", lambda: M.batch_norm_backward(x, x, None, c, c.astype(np.float64))),
    ]


@pytest.mark.parametrize("case", range(len(_bn_error_cases())))
def test_errors(case):
    err, match, call = _bn_error_cases()[case]
    with pytest.raises(err, match=match):
        call()


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 5), (2, 2, 3, 3, 3), (1, 2, 4, 4)])
def test_against_torch(shape, act):
    """PyTorch as an optional peer (the tests above do not need it)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape)
    w, b = _params(rng, shape[1])
    rm, rv = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    tz = F.batch_norm(tx, trm, trv, tw, tb, training=True, momentum=0.2, eps=1e-4)
    if act == "relu":
        tz = torch.relu(tz)
    elif act is not None:
        tz = F.leaky_relu(tz, act[1]) if act[0] == "leaky_relu" else F.elu(tz, act[1])
    dy = rng.standard_normal(shape)
    tz.backward(torch.tensor(dy))
    y, mean, invstd = R.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2, eps=1e-4, activation=act)
    np.testing.assert_allclose(y, tz.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12)
    dx, dw, db = R.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation=act)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-9, atol=1e-11)
