"""relucore.gradcheck: it passes correct gradients, finds the wrong entry of a wrong one, checks
duck-typed layer objects and their parameters, and rejects bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import relucore
from relucore import layers as L
from relucore.gradcheck import GradcheckError, GradcheckReport


def tanh_pair(wrong_at=None, by=0.5):
    """y = tanh(x) * w; the x gradient is off by ``by`` at ``wrong_at`` when given."""
    def fwd(x, w):
        return np.tanh(x) * w

    def bwd(dout):
        dx = dout * w_holder[0] * (1 - np.tanh(x_holder[0]) ** 2)
        if wrong_at is not None:
            dx[wrong_at] += by
        return dx, (dout * np.tanh(x_holder[0])).sum(axis=0)

    x_holder, w_holder = [], []

    def fwd_recording(x, w):
        x_holder[:], w_holder[:] = [x.copy()], [w.copy()]
        return fwd(x, w)

    return fwd_recording, bwd


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 3)), rng.standard_normal(3)


def test_correct_gradients_pass_and_inputs_are_left_alone():
    x, w = data()
    x0, w0 = x.copy(), w.copy()
    report = relucore.gradcheck(tanh_pair(), (x, w))
    assert isinstance(report, GradcheckReport) and report.passed and bool(report)
    assert report.max_rel_error < 1e-8
    assert [c.name for c in report.checks] == ["inputs[0]", "inputs[1]"]
    assert report["inputs[0]"].entries == 12 and report["inputs[1]"].entries == 3
    assert np.array_equal(x, x0) and np.array_equal(w, w0)


def test_a_wrong_entry_is_found_and_reported():
    x, w = data()
    report = relucore.gradcheck(tanh_pair(wrong_at=(2, 1)), (x, w))
    assert not report.passed and not bool(report)
    bad, good = report["inputs[0]"], report["inputs[1]"]
    assert not bad.passed and good.passed
    assert bad.index == (2, 1)
    # the numeric value is the true gradient, the analytic one is off by 0.5
    assert abs(bad.analytic - bad.numeric - 0.5) < 1e-8
    expected = 0.5 / (abs(bad.analytic) + abs(bad.numeric))
    assert bad.max_rel_error == pytest.approx(expected, rel=1e-6)
    assert report.max_rel_error == bad.max_rel_error
    text = repr(report)
    assert "passed=False" in text and "FAILED" in text and "(2, 1)" in text and "inputs[1]: passed" in text


def test_a_subtly_wrong_layer_backward_fails():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((3, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)

    def scaled_w_grad(dout, cache):  # dw off by 0.1%
        dx, dw, db = L.affine_backward(dout, cache)
        return dx, dw * 1.001, db

    report = relucore.gradcheck((L.affine_forward, scaled_w_grad), (x, w, b))
    assert not report.passed and report["inputs[0]"].passed and not report["inputs[1]"].passed


def test_raise_on_failure():
    x, w = data()
    with pytest.raises(GradcheckError, match="FAILED") as info:
        relucore.gradcheck(tanh_pair(wrong_at=(0, 0)), (x, w), raise_on_failure=True)
    assert isinstance(info.value, AssertionError)
    assert relucore.gradcheck(tanh_pair(), (x, w), raise_on_failure=True).passed


def test_tolerances_define_passing():
    # identity forward: the numeric gradient is dout exactly; the analytic one is off by delta
    dout = np.array([1.0, 1e-6, 0.0])
    for delta, atol, passed in ((1e-9, 1e-7, True), (1e-5, 1e-7, False), (5e-8, 1e-7, True), (5e-8, 0.0, False)):
        report = relucore.gradcheck((lambda a: a * 1.0, lambda d: d + delta), np.zeros(3), dout=dout, atol=atol)
        assert report.passed is passed, (delta, atol, report)
        assert (report.max_rel_error <= 1e-5) is passed
    exact = relucore.gradcheck((lambda a: a * 0.0, lambda d: d * 0.0), np.ones(2), atol=0.0)
    assert exact.passed and exact.max_rel_error == 0.0


def test_nan_gradients_fail():
    report = relucore.gradcheck((lambda a: a * 2.0, lambda d: np.full_like(d, np.nan)), np.ones(3))
    assert not report.passed and report.max_rel_error == np.inf


def test_float32_inputs_are_checked_in_float64():
    seen = []

    def fwd(a):
        seen.append(a.dtype)
        return np.sin(a)

    x = np.linspace(-1, 1, 5, dtype=np.float32)
    report = relucore.gradcheck((fwd, lambda d: d * np.cos(x.astype(np.float64))), x)
    assert report.passed and set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32


def test_max_entries_samples_reproducibly():
    x = np.random.default_rng(2).standard_normal((30, 20))
    pair = (lambda a: a ** 2, lambda d: 2 * x * d)
    r1 = relucore.gradcheck(pair, x, max_entries=25, seed=4)
    r2 = relucore.gradcheck(pair, x, max_entries=25, seed=4)
    assert r1.passed and r1.checks[0].entries == 25
    assert r1.checks[0].index == r2.checks[0].index
    assert relucore.gradcheck(pair, x, max_entries=10_000).checks[0].entries == 600


def test_labels_and_params_without_gradients():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    # softmax_loss returns (loss, dx): treated as (out, cache), so backward gets dx as its cache
    report = relucore.gradcheck((L.softmax_loss, lambda d, dx: (d * dx, None)), (x, y))
    assert report.passed and [c.name for c in report.checks] == ["inputs[0]"]
    conv = relucore.gradcheck((L.conv_forward_fast, L.conv_backward_fast),
                              (rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 2, 3, 3)),
                               rng.standard_normal(2), {"stride": 1, "pad": 1}))
    assert conv.passed and len(conv.checks) == 3


class Param:
    def __init__(self, data):
        self.data, self.grad = data, None


class Affine:
    """A duck-typed layer: forward/backward, parameters() with .data/.grad, accumulating grads."""

    def __init__(self, rng, wrong_bias=False):
        self.w, self.b = Param(rng.standard_normal((4, 3))), Param(rng.standard_normal(3))
        self.wrong_bias = wrong_bias

    def parameters(self):
        return [self.w, self.b]

    def forward(self, x):
        self.x = x
        return np.tanh(x @ self.w.data + self.b.data)

    def backward(self, dy):
        dz = dy * (1 - np.tanh(self.x @ self.w.data + self.b.data) ** 2)
        for p, g in ((self.w, self.x.T @ dz), (self.b, dz.sum(0) * (1.1 if self.wrong_bias else 1.0))):
            p.grad = g if p.grad is None else p.grad + g
        return dz @ self.w.data.T


class NamedAffine(Affine):
    def named_parameters(self):
        return [("weight", self.w), ("bias", self.b)]

    def zero_grad(self):
        self.zeroed = True
        for p in self.parameters():
            p.grad = None


def test_layer_objects_and_their_parameters():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 4))
    m = Affine(rng)
    m.w.grad = np.full((4, 3), 100.0)  # stale gradients are cleared before the backward
    w0 = m.w.data.copy()
    report = relucore.gradcheck(m, x)
    assert report.passed, report
    assert [c.name for c in report.checks] == ["input", "parameters[0]", "parameters[1]"]
    assert np.array_equal(m.w.data, w0)
    named = NamedAffine(rng)
    report = relucore.gradcheck(named, [x])
    assert report.passed and named.zeroed
    assert [c.name for c in report.checks] == ["input", "weight", "bias"]
    bad = relucore.gradcheck(Affine(rng, wrong_bias=True), x)
    assert not bad.passed and [c.name for c in bad.checks if not c.passed] == ["parameters[1]"]


def test_layer_object_without_parameters():
    class Square:
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, dy):
            return 2 * self.x * dy

    report = relucore.gradcheck(Square(), np.arange(6.0).reshape(2, 3))
    assert report.passed and len(report.checks) == 1


def test_first_layer_without_dx_and_numpy_tolerances():
    class Bias:  # a first layer may return no input gradient
        def __init__(self):
            self.b = Param(np.arange(3.0))

        def parameters(self):
            return [self.b]

        def forward(self, x):
            return x + self.b.data

        def backward(self, dy):
            self.b.grad = dy.sum(0)

    report = relucore.gradcheck(Bias(), np.ones((2, 3)), rtol=np.float32(1e-5), atol=np.float64(1e-7))
    assert report.passed and [c.name for c in report.checks] == ["parameters[0]"]


def test_bad_arguments():
    x, w = data()
    pair = tanh_pair()
    for f in (None, np.tanh, (np.tanh,), (np.tanh, None), "f", object()):
        with pytest.raises(TypeError, match="f must be"):
            relucore.gradcheck(f, (x, w))
    for kw in (dict(eps=0), dict(eps=-1e-6), dict(eps=np.inf), dict(rtol=0), dict(rtol=True), dict(atol=-1.0),
               dict(atol=np.inf), dict(max_entries=0), dict(max_entries=True), dict(max_entries=2.5)):
        with pytest.raises(ValueError, match=next(iter(kw))):
            relucore.gradcheck(pair, (x, w), **kw)
    for inputs in ((), [], 3.0, None):
        with pytest.raises(ValueError, match="inputs"):
            relucore.gradcheck(pair, inputs)
    with pytest.raises(ValueError, match="dout"):
        relucore.gradcheck(pair, (x, w), dout=np.ones(3))
    with pytest.raises(ValueError, match="3 gradients for 2 inputs"):
        relucore.gradcheck((lambda a, b: a * b, lambda d: (d, d, d)), (x, x))
    with pytest.raises(ValueError, match=r"gradient of inputs\[0\] has shape"):
        relucore.gradcheck((lambda a: a * 2, lambda d: d[:1]), x)
    with pytest.raises(ValueError, match=r"inputs\[1\], which is not a float array"):
        relucore.gradcheck((lambda a, k: a * k, lambda d: (d * 3, d)), (x, 3))
    with pytest.raises(TypeError, match="tuple of 3"):
        relucore.gradcheck((lambda a: (a, a, a), lambda d: d), x)
    with pytest.raises(TypeError, match="real array"):
        relucore.gradcheck((lambda a: "out", lambda d: d), x)
    with pytest.raises(ValueError, match="one input"):
        relucore.gradcheck(Affine(np.random.default_rng(0)), (x, x))
    m32 = Affine(np.random.default_rng(0))
    m32.w.data = m32.w.data.astype(np.float32)
    with pytest.raises(TypeError, match="float64"):
        relucore.gradcheck(m32, np.ones((2, 4)))
    strided = Affine(np.random.default_rng(0))
    strided.w.data = np.ones((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        relucore.gradcheck(strided, np.ones((2, 4)))


def test_exported_from_relucore():
    assert "gradcheck" in relucore.__all__ and callable(relucore.gradcheck)
    import importlib

    importlib.import_module("relucore.gradcheck")  # the submodule is loaded: the name stays the function
    from relucore import gradcheck

    assert gradcheck is relucore.gradcheck and callable(relucore.gradcheck)
    for section in ("Args:", "Returns:", "Raises:", "Example::"):
        assert section in gradcheck.__doc__


def test_docs_example_runs(capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    section = text[text.index("### Gradient checks"):]
    code = re.search(r"^```python\n(.*?)^```$", section, re.M | re.S).group(1)
    exec(compile(code, "docs/api.md", "exec"), {})
    assert "GradcheckReport(passed=True" in capsys.readouterr().out
