"""relucore.optim: optimizer steps against the update rules written out here, state_dict, parameter
groups, learning-rate schedules, errors; the same numbers through torch.optim when torch is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import relucore.nn as nn
import relucore.optim as optim
from relucore.optim.lr_scheduler import CosineAnnealingLR, StepLR

STEPS = 4


def _grads(seed=0, shape=(3, 4), steps=STEPS):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((steps,) + shape)


def _run(opt_cls, p0, grads, **kw):
    p = nn.Parameter(p0)
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = g.copy()
        opt.step()
    return p.data


@pytest.mark.parametrize("kw", [dict(lr=0.1), dict(lr=0.05, weight_decay=0.1),
                                dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.01),
                                dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.02)],
                         ids=["plain", "wd", "momentum", "dampening", "nesterov"])
def test_sgd_matches_formula(kw, dtype):
    grads = _grads().astype(dtype)
    p0 = _grads(1, steps=1)[0].astype(dtype)
    lr, mu, tau, wd = kw["lr"], kw.get("momentum", 0), kw.get("dampening", 0), kw.get("weight_decay", 0)
    theta, buf = p0.astype(np.float64), None
    for g in grads.astype(np.float64):
        g = g + wd * theta
        if mu:
            buf = g.copy() if buf is None else mu * buf + (1 - tau) * g
            g = g + mu * buf if kw.get("nesterov") else buf
        theta = theta - lr * g
    got = _run(optim.SGD, p0, grads, **kw)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, theta, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


SGD_KWS = [dict(lr=0.1), dict(lr=0.05, weight_decay=0.1), dict(lr=0.1, momentum=0.9),
           dict(lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.01),
           dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.02)]


def raw_bits(a):
    return np.ascontiguousarray(a).view(np.uint8).ravel()


@pytest.mark.parametrize("scalar", [float, np.float64], ids=["float", "np.float64"])
@pytest.mark.parametrize("kw", SGD_KWS, ids=["plain", "wd", "momentum", "dampening", "nesterov"])
def test_sgd_one_native_call_bitwise_as_numpy(kw, dtype, scalar, monkeypatch):
    """On the native backend SGD updates a group's plain parameters in one native call: the same
    bits as the per-parameter NumPy operations (the numpy backend's path), with NaN, ±inf and ±0
    in the gradients, over steps that create and then use the momentum buffers, with Python or
    NumPy scalars as hyper-parameters; a group with a parameter the call cannot take as it is (a
    non-contiguous view) is updated by NumPy."""
    import relucore
    from relucore import _core

    rng = np.random.default_rng(7)
    shapes = [(3, 4), (17,), (2, 3, 5), (), (2000,)]  # 2000: a double rounding shows in float32
    p0 = [rng.standard_normal(s).astype(dtype) for s in shapes] + [rng.standard_normal((4, 6)).astype(dtype)[:, ::2]]
    # arrays of the parameters' dtype (the 0-d one too), as the native call takes them
    grads = [[np.asarray(rng.standard_normal(q.shape) * 10.0 ** rng.integers(-3, 3, q.shape)).astype(dtype)
              for q in p0] for _ in range(STEPS)]
    grads[1][0].flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    native = []
    inner = _core.sgd_step
    monkeypatch.setattr(_core, "sgd_step", lambda *a: native.append(inner(*a)) or native[-1])

    def run(backend):
        ps = [nn.Parameter(q.copy()) for q in p0]
        base = np.zeros((4, 6), dtype)
        base[:, ::2] = p0[-1]
        ps[-1].data = base[:, ::2]  # not C-contiguous: its own group, updated by NumPy
        hyper = {k: scalar(v) if type(v) is float else v for k, v in kw.items()}
        opt = optim.SGD([{"params": ps[:-1]}, {"params": ps[-1:]}], **hyper)
        with relucore.use_backend(backend), np.errstate(invalid="ignore"):  # inf - inf among the updates
            for gs in grads:
                for p, g in zip(ps, gs):
                    p.grad = g.copy()
                opt.step()
        return ps, opt

    got, gopt = run("native")
    assert native == [True, False] * STEPS  # the plain group in one native call, the other refused
    exp, eopt = run("numpy")
    assert not got[-1].data.flags.c_contiguous
    for a, b in zip(got, exp):
        assert a.data.dtype == dtype
        np.testing.assert_array_equal(raw_bits(a.data), raw_bits(b.data))
    if kw.get("momentum"):
        for a, b in zip(gopt.state.values(), eopt.state.values()):
            np.testing.assert_array_equal(a["momentum_buffer"], b["momentum_buffer"])


def test_sgd_native_call_leaves_state_dict_as_numpy():
    """Buffers the native call creates are the state's arrays: state_dict, load_state_dict and a
    continued run agree with the NumPy path."""
    import relucore

    rng = np.random.default_rng(8)
    p0 = rng.standard_normal((5, 3))
    grads = rng.standard_normal((6, 5, 3))
    outs = []
    for backend in ("native", "numpy"):
        p = nn.Parameter(p0.copy())
        opt = optim.SGD([p], lr=0.1, momentum=0.9)
        with relucore.use_backend(backend):
            for g in grads[:3]:
                p.grad = g.copy()
                opt.step()
            saved = opt.state_dict()
            q = nn.Parameter(p.data.copy())
            opt2 = optim.SGD([q], lr=0.1, momentum=0.9)
            opt2.load_state_dict(saved)
            for g in grads[3:]:
                q.grad = g.copy()
                opt2.step()
        outs.append(q.data)
    np.testing.assert_array_equal(outs[0], outs[1])


def _adam_formula(p0, grads, lr, betas, eps, wd, amsgrad, decoupled):
    theta = p0.astype(np.float64)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    vmax = np.zeros_like(theta)
    b1, b2 = betas
    for t, g in enumerate(grads.astype(np.float64), 1):
        if decoupled:
            theta = theta * (1 - lr * wd)
        else:
            g = g + wd * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1**t)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW], ids=["Adam", "AdamW"])
def test_adam_matches_formula(cls, amsgrad, dtype):
    grads = _grads(2).astype(dtype)
    grads[2] *= 0.1  # v shrinks: amsgrad's maximum matters
    p0 = _grads(3, steps=1)[0].astype(dtype)
    kw = dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, amsgrad=amsgrad)
    expected = _adam_formula(p0, grads, kw["lr"], kw["betas"], kw["eps"], kw["weight_decay"], amsgrad,
                             decoupled=cls is optim.AdamW)
    got = _run(cls, p0, grads, **kw)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)


def test_adamw_default_weight_decay_is_pytorchs():
    assert optim.AdamW([nn.Parameter(np.zeros(1))]).defaults["weight_decay"] == 0.01
    assert optim.Adam([nn.Parameter(np.zeros(1))]).defaults["weight_decay"] == 0.0


def test_param_groups_none_grads_and_zero_grad():
    a, b, c = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b, c], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = np.ones(2), np.ones(2)  # c has no gradient: left alone
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.5)
    np.testing.assert_allclose(c.data, 1.0)
    assert opt.param_groups[1]["momentum"] == 0.0
    opt.zero_grad(set_to_none=False)
    assert not a.grad.any()
    opt.zero_grad()
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.01, amsgrad=True))],
                         ids=["SGD", "Adam"])
def test_state_dict_round_trip_continues_identically(cls, kw):
    grads = _grads(4, steps=6)
    p0 = _grads(5, steps=1)[0]
    p = nn.Parameter(p0)
    opt = cls([p], **kw)
    for g in grads[:3]:
        p.grad = g.copy()
        opt.step()
    saved, saved_p = opt.state_dict(), p.data.copy()
    q = nn.Parameter(saved_p)
    opt2 = cls([q], lr=123.0)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    for g in grads[3:]:
        p.grad, q.grad = g.copy(), g.copy()
        opt.step()
        opt2.step()
    np.testing.assert_array_equal(p.data, q.data)
    expected_state = {"momentum_buffer"} if cls is optim.SGD else {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert saved["state"][0].keys() == expected_state


def test_optimizer_errors():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="Parameter"):
        optim.Adam([np.zeros(2)])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == 0.1
    p.grad = np.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        opt.step()
    p.grad = np.zeros(2, np.int64)
    for o in (opt, optim.Adam([p])):
        with pytest.raises(TypeError, match=f"{type(o).__name__}: gradients must be float32 or float64, got int64"):
            o.step()
    # a parameter that changes shape after its state was made: the optimizer says so
    for make in (lambda q: optim.SGD([q], lr=0.1, momentum=0.9), lambda q: optim.Adam([q])):
        q = nn.Parameter(np.zeros(2))
        o = make(q)
        q.grad = np.ones(2)
        o.step()
        q.data, q.grad = np.zeros(3), np.ones(3)
        with pytest.raises(ValueError, match=rf"{type(o).__name__}: a parameter of shape \(3,\) has state"):
            o.step()


# ------------------------------------------------------------------ learning-rate schedules

def _opt(lr=0.1):
    return optim.SGD([nn.Parameter(np.zeros(1))], lr=lr)


def _schedule(make, epochs):
    """The learning rate at epochs 0..epochs of ``make(optimizer)``'s schedule."""
    opt = _opt()
    sched = make(opt)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(epochs):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert sched.get_last_lr() == [lrs[-1]]
    return lrs


def test_step_lr():
    lrs = _schedule(lambda opt: StepLR(opt, step_size=3, gamma=0.5), 10)
    np.testing.assert_allclose(lrs, [0.1 * 0.5 ** (e // 3) for e in range(11)], rtol=1e-15)


def test_cosine_annealing_lr():
    lrs = _schedule(lambda opt: CosineAnnealingLR(opt, T_max=5, eta_min=0.01), 15)
    closed = [0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(16)]
    np.testing.assert_allclose(lrs, closed, rtol=1e-12, atol=1e-15)


def test_step_lr_resumed_decays_where_pytorchs_does():
    """last_epoch=k: the constructor's step is epoch k + 1, which decays when it is a multiple of
    step_size (PyTorch's rule), then the schedule goes on as one never stopped."""
    for k in (2, 4, 5):
        opt = _opt()
        opt.param_groups[0]["initial_lr"] = 0.1
        sched = StepLR(opt, step_size=3, gamma=0.5, last_epoch=k)
        lrs = [opt.param_groups[0]["lr"]]
        for _ in range(6):
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        # from a group at 0.1, each later multiple of 3 halves it
        exp = [0.1 * 0.5 ** sum(1 for e in range(k + 1, k + 2 + i) if e % 3 == 0) for i in range(7)]
        np.testing.assert_allclose(lrs, exp, rtol=1e-15)


@pytest.mark.parametrize("make", [lambda p: optim.SGD([p], lr=0.1, momentum=0.9), lambda p: optim.Adam([p], lr=0.1)])
def test_state_of_a_0d_parameter_survives_a_round_trip(make):
    """Buffers of a 0-d parameter stay arrays updated in place; a resumed run equals one never stopped."""
    def run(resume_at):
        p = nn.Parameter(np.array(1.0))
        opt = make(p)
        for step in range(4):
            if step == resume_at:
                sd = opt.state_dict()
                opt = make(p)
                opt.load_state_dict(sd)
            p.grad = np.array(float(step + 1))
            opt.step()
        return p.data.copy()
    np.testing.assert_array_equal(run(2), run(-1))
    p = nn.Parameter(np.zeros(3))
    opt = make(p)
    p.grad = np.ones(3)
    opt.step()
    sd = opt.state_dict()
    name = next(k for k in sd["state"][0] if k != "step")
    sd["state"][0][name] = np.array(2.0)  # a 0-d buffer for a (3,) parameter
    with pytest.raises(ValueError, match=rf"state '{name}' of parameter 0 has shape \(\), the parameter has \(3,\)"):
        make(p).load_state_dict(sd)


def test_scheduler_state_dict():
    opt = _opt()
    sched = StepLR(opt, 2)
    for _ in range(3):
        sched.step()
    state = sched.state_dict()
    opt2 = _opt()
    sched2 = StepLR(opt2, 2)
    sched2.load_state_dict(state)
    assert sched2.last_epoch == 3 and sched2.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, 0)


# ------------------------------------------------------------------ the same numbers through torch.optim

TORCH_CASES = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.9), amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.2, amsgrad=True)),
]


@pytest.mark.parametrize("cls,kw", TORCH_CASES, ids=[f"{c.__name__}{i}" for i, (c, _) in enumerate(TORCH_CASES)])
@pytest.mark.parametrize("sched", ["step", "cosine"])
def test_against_torch_optim(cls, kw, sched, dtype):
    torch = pytest.importorskip("torch")
    grads = _grads(6, steps=8).astype(dtype)
    p0 = _grads(7, steps=1)[0].astype(dtype)
    p, tp = nn.Parameter(p0), torch.nn.Parameter(torch.tensor(p0))
    opt, topt = cls([p], **kw), getattr(torch.optim, cls.__name__)([tp], **kw)
    if sched == "step":
        s, ts = StepLR(opt, 3, 0.5), torch.optim.lr_scheduler.StepLR(topt, 3, 0.5)
    else:
        s, ts = CosineAnnealingLR(opt, 3, 1e-3), torch.optim.lr_scheduler.CosineAnnealingLR(topt, 3, 1e-3)
    for g in grads:
        p.grad, tp.grad = g.copy(), torch.tensor(g)
        opt.step()
        topt.step()
        s.step()
        ts.step()
        assert s.get_last_lr() == ts.get_last_lr()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-7)


def test_a_subclass_with_scalar_state_and_numpy_hyper_parameters():
    """A custom optimizer keeping a number per parameter steps and round-trips its state; an lr a
    schedule assigns from a NumPy array gives SGD's native and NumPy updates the same bits."""
    import relucore

    class Decaying(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def _update(self, p, grad, group, state):
            state["factor"] = state.get("factor", 1.0) * 0.9
            p.data -= group["lr"] * state["factor"] * grad

    p = nn.Parameter(np.zeros(3))
    opt = Decaying([p])
    for _ in range(2):
        p.grad = np.ones(3)
        opt.step()
    again = Decaying([p])
    again.load_state_dict(opt.state_dict())
    p.grad = np.ones(3)
    again.step()
    assert again.state[p]["factor"] == pytest.approx(0.729)

    rng = np.random.default_rng(0)
    p0, g = rng.standard_normal(2000).astype(np.float32), rng.standard_normal(2000).astype(np.float32)
    lrs = np.array([0.1, 0.05, 0.02])

    def run(backend):
        q = nn.Parameter(p0.copy())
        o = optim.SGD([q], lr=0.1, momentum=0.9)
        with relucore.use_backend(backend):
            for lr in lrs:
                o.param_groups[0]["lr"] = lr  # an np.float64
                q.grad = g.copy()
                o.step()
        return q.data

    np.testing.assert_array_equal(raw_bits(run("native")), raw_bits(run("numpy")))
