"""Native softmax, log_softmax (and their backward functions) and the fused cross_entropy against
relucore.reference on every ISA: rows around the vector width and the summation block, strided
class axes, special values, ±1e4 logits, layouts, out= and in place, label smoothing, probability
targets, ignore_index, every reduction, numeric gradients, thread-count independence and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import relucore
from relucore import reference as R

from _conv_helpers import numeric_grad

# (shape, axis): rows shorter/longer than 8 and 16 lanes and the 4096-element block; a class axis
# with inner positions around the vector width and the 256-position thread block; 0-d and 1-d
SOFTMAX_CASES = [((3, 1), -1), ((4, 7), -1), ((2, 8), 1), ((3, 15), -1), ((2, 16), -1), ((2, 17), -1),
                 ((2, 33), 1), ((2, 4100), -1), ((5,), 0), ((), 0), ((3, 5, 7), 1), ((2, 6, 16), 1),
                 ((2, 3, 17), 1), ((1, 4, 300), 1), ((2, 3, 4, 5), 0), ((4, 3, 2), 2), ((3, 4), 0)]
# logits shapes for cross_entropy: (N, C) rows, unbatched (C,), (N, C, *) with inner positions
CE_SHAPES = [(4, 7), (3, 16), (5, 17), (2, 1000), (1, 1), (9,), (3, 5, 7), (2, 4, 3, 6), (2, 3, 17), (1, 2, 300)]


def _tol(dtype):
    return dict(rtol=3e-6, atol=3e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)


def _close(got, exp, dtype, scale=1.0):
    got, exp = np.asarray(got), np.asarray(exp)
    assert got.dtype == exp.dtype == dtype and got.shape == exp.shape
    t = _tol(dtype)
    np.testing.assert_allclose(got, exp, rtol=t["rtol"] * scale, atol=t["atol"] * scale)


def _targets(shape, rng, ignore=True):
    c = shape[1] if len(shape) > 1 else shape[0]
    positions = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, c, positions)
    if ignore and t.size > 1:
        t.flat[1] = -100
    return t


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_matches_reference(isa, dtype, shape, axis):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    for fwd, bwd in ((relucore.softmax, relucore.softmax_backward),
                     (relucore.log_softmax, relucore.log_softmax_backward)):
        y = fwd(x, axis)
        ey = getattr(R, fwd.__name__)(x, axis)
        _close(y, ey, dtype)
        _close(bwd(dy, ey, axis), getattr(R, bwd.__name__)(dy, ey, axis), dtype, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_rows_sum_to_one_and_large_logits(isa, dtype):
    x = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4 + 1, -1e4 - 1], [3e4, 3e4, 3e4]], dtype)
    p = relucore.softmax(x)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(p, R.softmax(x), **_tol(dtype))
    logp = relucore.log_softmax(x)
    np.testing.assert_array_equal(logp[0], np.array([0, -1e4, -2e4], dtype))
    np.testing.assert_allclose(logp, R.log_softmax(x), **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_special_values(isa, dtype, axis):
    # NaN or +inf anywhere in a slice makes the slice NaN; -inf entries are 0 (-inf for log);
    # an all -inf slice is NaN; -0.0 and 0 are ordinary
    cols = [[np.nan, 1.0, 2.0], [np.inf, 0.0, 1.0], [-np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf],
            [-0.0, 0.0, -0.0], [0.0, 0.0, 0.0], [np.inf, np.inf, 1.0], [-1e4, 1e4, np.nan]]
    x = np.array(cols, dtype)
    x = np.ascontiguousarray(x.T) if axis == 0 else x
    x = np.repeat(x, 7, axis=1 - axis)  # every lane position of a vector, and tails
    for f in ("softmax", "log_softmax"):
        got, exp = getattr(relucore, f)(x, axis), getattr(R, f)(x, axis)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(exp))
        np.testing.assert_allclose(got, exp, **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_layouts_out_and_in_place(isa, dtype):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 40)).astype(dtype)
    for x in (base[:, ::2], base.T, np.asfortranarray(base), base[::-1]):
        for axis in (0, 1, -1):
            _close(relucore.softmax(x, axis), R.softmax(x, axis), dtype)
            out = np.empty(x.shape, dtype)
            assert relucore.log_softmax(x, axis, out=out) is out
            _close(out, R.log_softmax(x, axis), dtype)
    x = base.copy()
    expected = R.softmax(x)
    assert relucore.softmax(x, out=x) is x
    _close(x, expected, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    expected = R.softmax_backward(dy, x)
    y = x.copy()
    assert relucore.softmax_backward(dy, y, out=y) is y  # dx over y
    _close(y, expected, dtype, 4)
    buf = np.empty(x.size + 1, dtype)  # out overlapping x shifted by one element
    xs = buf[1:].reshape(x.shape)
    xs[...] = base
    out = buf[:-1].reshape(x.shape)
    expected = R.log_softmax(xs)
    assert relucore.log_softmax(xs, out=out) is out
    _close(out, expected, dtype)


@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_matches_reference(isa, dtype, shape):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    probs = rng.random(shape).astype(dtype)
    for reduction, eps in itertools.product(("mean", "sum", "none"), (0.0, 0.1, 1.0)):
        for t in (_targets(shape, rng), probs):
            loss, g = relucore.cross_entropy(x, t, reduction=reduction, label_smoothing=eps)
            eloss, eg = R.cross_entropy(x, t, reduction=reduction, label_smoothing=eps)
            if reduction == "none":
                assert isinstance(loss, np.ndarray)
            else:
                assert isinstance(loss, dtype)
            _close(loss, eloss, dtype, 10)
            _close(g, eg, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_large_logits_and_specials(isa, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, -np.inf, 1.0], [np.nan, 0.0, 0.0]], dtype)
    t = np.array([1, 0, 0, 2])
    for eps in (0.0, 0.2):
        loss, g = relucore.cross_entropy(x, t, reduction="none", label_smoothing=eps)
        eloss, eg = R.cross_entropy(x, t, reduction="none", label_smoothing=eps)
        np.testing.assert_array_equal(np.isnan(loss), np.isnan(eloss))
        np.testing.assert_allclose(loss, eloss, rtol=1e-6)
        np.testing.assert_allclose(g, eg, **_tol(dtype))
    np.testing.assert_allclose(relucore.cross_entropy(x[:2], t[:2], reduction="none")[0], [2e4, 2e4 + np.log(2)],
                               rtol=1e-6)
    assert np.isfinite(relucore.cross_entropy(x[2:3], t[2:3])[0])  # a -inf logit of another class


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_one_hot_equals_indices(isa, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 11)).astype(dtype)
    t = rng.integers(0, 11, 6)
    onehot = np.eye(11, dtype=dtype)[t]
    for eps in (0.0, 0.3):
        li, gi = relucore.cross_entropy(x, t, label_smoothing=eps)
        lp, gp = relucore.cross_entropy(x, onehot, label_smoothing=eps)
        _close(lp, li, dtype, 10)
        _close(gp, gi, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_ignore_index(isa, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 4)).astype(dtype)
    t = np.array([0, 7, 2, 7, 3])
    loss, g = relucore.cross_entropy(x, t, ignore_index=7)
    keep = t != 7
    sub_loss, sub_g = R.cross_entropy(x[keep], t[keep])
    _close(loss, sub_loss, dtype, 10)
    _close(g[keep], sub_g, dtype)
    assert not g[~keep].any()
    # everything ignored: a NaN mean and zero gradients (as PyTorch), a zero sum
    loss, g = relucore.cross_entropy(x, np.full(5, -100))
    assert np.isnan(loss) and not g.any()
    assert relucore.cross_entropy(x, np.full(5, -100), reduction="sum")[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["rows", "positions"])
@pytest.mark.parametrize("special", [np.nan, np.inf])
def test_an_ignored_row_with_a_nan_or_inf_logit_is_nan(isa, dtype, layout, special):
    """Its gradient is 0 times its softmax: NaN all along where the softmax is (as PyTorch)."""
    x = np.array([[0.5, special, 1.0], [0.2, 0.1, 0.3], [-np.inf, 0.0, 1.0]], dtype)
    t = np.array([-100, 0, -100])
    if layout == "positions":  # (N, C, L): the class axis strided, positions along the last axis
        x, t = np.ascontiguousarray(np.repeat(x.T[None], 2, axis=0)), np.repeat(t[None], 2, axis=0)
    for eps in (0.0, 0.1):
        loss, g = relucore.cross_entropy(x, t, reduction="none", label_smoothing=eps)
        eloss, eg = R.cross_entropy(x, t, reduction="none", label_smoothing=eps)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(eg))
        assert not loss[t == -100].any()  # ignored positions: 0
        _close(loss, eloss, dtype, 10)
        assert np.isnan(g).sum() == 3 * (2 if layout == "positions" else 1)  # the first row only
        np.testing.assert_allclose(np.nan_to_num(g), np.nan_to_num(eg), **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 6), (3, 5, 7)])
def test_out_may_be_the_probability_target(isa, dtype, shape):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.random(shape).astype(dtype)
    t /= t.sum(axis=1, keepdims=True)
    eloss, eg = R.cross_entropy(x, t)
    loss, g = relucore.cross_entropy(x, t, out=t)
    assert g is t
    _close(g, eg, dtype)
    _close(loss, eloss, dtype, 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_layouts_targets_out(isa, dtype):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((8, 30)).astype(dtype)
    t = rng.integers(0, 15, 8)
    eloss, eg = R.cross_entropy(base[:, ::2], t)
    for x in (base[:, ::2], np.asfortranarray(base[:, ::2])):
        for tt in (t, t.astype(np.int32), t.astype(np.uint8), t[::-1].copy()[::-1], list(t)):
            loss, g = relucore.cross_entropy(x, tt)
            _close(loss, eloss, dtype, 10)
            _close(g, eg, dtype)
    x = base[:, :15].copy()
    eloss, eg = R.cross_entropy(x, t)
    out = np.empty_like(x)
    loss, g = relucore.cross_entropy(x, t, out=out)
    assert g is out
    _close(g, eg, dtype)
    loss, g = relucore.cross_entropy(x, t, out=x)  # the gradient over the logits
    assert g is x
    _close(g, eg, dtype)
    _close(loss, eloss, dtype, 10)


@pytest.mark.parametrize("shape,axis", [((3, 5), 1), ((3, 5), 0), ((2, 3, 4), 1), ((6,), 0)])
def test_softmax_gradients_numeric(isa, shape, axis):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape)  # loss = sum(w * f(x))
    for fwd, bwd in ((relucore.softmax, relucore.softmax_backward),
                     (relucore.log_softmax, relucore.log_softmax_backward)):
        num = numeric_grad(lambda v: float((w * fwd(v, axis)).sum()), x)
        np.testing.assert_allclose(bwd(w, fwd(x, axis), axis), num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(4, 5), (5,), (2, 3, 4)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_cross_entropy_gradients_numeric(isa, shape, reduction, eps, kind):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape) * 2
    t = _targets(shape, rng) if kind == "index" else rng.random(shape)
    loss_of = lambda v: float(np.sum(relucore.cross_entropy(v, t, reduction=reduction,  # noqa: E731
                                                            label_smoothing=eps)[0]))
    _, g = relucore.cross_entropy(x, t, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(g, numeric_grad(loss_of, x), rtol=1e-6, atol=1e-8)


def test_results_do_not_depend_on_thread_count(isa):
    rng = np.random.default_rng(8)
    cases = [rng.standard_normal((512, 300)).astype(np.float32),
             rng.standard_normal((8, 21, 40, 40)).astype(np.float32)]
    before = relucore.get_num_threads()
    try:
        for x in cases:
            t = rng.integers(0, x.shape[1], x.shape[:1] + x.shape[2:])
            results = []
            for n in (1, 2):
                relucore.set_num_threads(n)
                results.append((relucore.softmax(x, 1), relucore.log_softmax_backward(x, x, 1),
                                *relucore.cross_entropy(x, t, label_smoothing=0.1)))
            for a, b in zip(*results):
                np.testing.assert_array_equal(a, b)
    finally:
        relucore.set_num_threads(before)


def test_matches_pytorch():
    torch = pytest.importorskip("torch")  # the optional peer
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    for shape in [(6, 10), (3, 4, 5, 2), (7,)]:
        x = rng.standard_normal(shape)
        for t in (_targets(shape, rng), rng.random(shape)):
            for reduction, eps in itertools.product(("mean", "sum", "none"), (0.0, 0.1)):
                xt = torch.tensor(x, requires_grad=True)
                lt = F.cross_entropy(xt, torch.tensor(t), reduction=reduction, label_smoothing=eps)
                lt.sum().backward()
                loss, g = relucore.cross_entropy(x, t, reduction=reduction, label_smoothing=eps)
                np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
        axis = len(shape) - 1
        np.testing.assert_allclose(relucore.log_softmax(x, axis), F.log_softmax(torch.tensor(x), axis).numpy(),
                                   rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ errors

def _errors(f):
    x = np.zeros((4, 3), np.float32)
    t = np.array([0, 1, 2, 0])
    cases = [
        (TypeError, "float32 and float64", lambda: f.softmax(np.zeros(3, np.int32))),
        (TypeError, "axis", lambda: f.softmax(x, axis=1.0)),
        (ValueError, "axis", lambda: f.log_softmax(x, axis=2)),
        (ValueError, "dy and y", lambda: f.softmax_backward(x, x[:2])),
        (TypeError, "dy and y", lambda: f.log_softmax_backward(x, x.astype(np.float64))),
        (ValueError, "out", lambda: f.softmax(x, out=np.zeros((3, 4), np.float32))),
        (TypeError, "out", lambda: f.softmax(x, out=np.zeros((4, 3)))),
        (TypeError, "logits", lambda: f.cross_entropy(x.astype(np.float16), t)),
        (ValueError, "logits", lambda: f.cross_entropy(np.float32(1.0), np.array(0))),
        (ValueError, "at least one class", lambda: f.cross_entropy(np.zeros((4, 0), np.float32), t)),
        (TypeError, "target", lambda: f.cross_entropy(x, t.astype(np.float32))),
        (TypeError, "target", lambda: f.cross_entropy(x, t.astype(bool))),
        (TypeError, "target", lambda: f.cross_entropy(x, np.ones((4, 3)))),
        (ValueError, "target", lambda: f.cross_entropy(x, np.array([0, 1, 3, 0]))),
        (ValueError, "target", lambda: f.cross_entropy(x, np.array([0, 1, -1, 0]))),
        (ValueError, "target", lambda: f.cross_entropy(x, np.array([0, 1, 2]))),
        (ValueError, "target", lambda: f.cross_entropy(x, np.ones((4, 4), np.float32))),
        (ValueError, "target", lambda: f.cross_entropy(x, np.array([0, 1, 2, 2**63], np.uint64))),
        (ValueError, "reduction", lambda: f.cross_entropy(x, t, reduction="avg")),
        (ValueError, "label_smoothing", lambda: f.cross_entropy(x, t, label_smoothing=1.5)),
        (ValueError, "label_smoothing", lambda: f.cross_entropy(x, t, label_smoothing=float("nan"))),
        (TypeError, "ignore_index", lambda: f.cross_entropy(x, t, ignore_index=True)),
        (TypeError, "ignore_index", lambda: f.cross_entropy(x, t, ignore_index=1.0)),
        (ValueError, "out", lambda: f.cross_entropy(x, t, out=np.zeros((4, 4), np.float32))),
    ]
    return cases


@pytest.mark.parametrize("i", range(len(_errors(R))))
def test_errors_match_reference(i):
    for f in (relucore, R):
        exc, text, call = _errors(f)[i]
        with pytest.raises(exc, match=text):
            call()
