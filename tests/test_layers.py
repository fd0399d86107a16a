"""relucore.layers against plain-NumPy versions of the CS231n assignment conventions written here
from the course's docstrings (naive loops on small shapes), and every backward against numeric
gradients. Native calls run on every usable ISA."""

from __future__ import annotations

import numpy as np
import pytest

import relucore
from relucore import layers as L

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}
CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def close(actual, expected, dtype):
    assert np.asarray(actual).dtype == dtype  # results keep the input's dtype
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- the course's conventions

def ref_affine(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b


def ref_affine_backward(dout, x, w):
    x2 = x.reshape(x.shape[0], -1)
    return (dout @ w.T).reshape(x.shape), x2.T @ dout, dout.sum(axis=0)


def ref_batchnorm(x, gamma, beta, bn_param):
    """Per feature (axis 1, over every other axis), with the course's running averages."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    shape = [1] * x.ndim
    shape[1] = -1
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    rm = bn_param.get("running_mean", np.zeros(x.shape[1]))
    rv = bn_param.get("running_var", np.zeros(x.shape[1]))
    if bn_param["mode"] == "train":
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        bn_param["running_mean"] = momentum * rm + (1 - momentum) * mu
        bn_param["running_var"] = momentum * rv + (1 - momentum) * var
    else:
        mu, var = rm, rv
    xhat = (x - mu.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return gamma.reshape(shape) * xhat + beta.reshape(shape)


def ref_batchnorm_backward(dout, x, gamma, eps=1e-5):
    """The staged (computational graph) form, feature by feature."""
    dx, dgamma, dbeta = np.zeros_like(x), np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for c in range(x.shape[1]):
        xc, dc = x[:, c].ravel(), dout[:, c].ravel()
        n = xc.size
        mu = xc.mean()
        xmu = xc - mu
        var = (xmu ** 2).mean()
        ivar = 1 / np.sqrt(var + eps)
        xhat = xmu * ivar
        dbeta[c], dgamma[c] = dc.sum(), (dc * xhat).sum()
        dxhat = dc * gamma[c]
        divar = (dxhat * xmu).sum()
        dxmu = dxhat * ivar
        dvar = divar * -0.5 * (var + eps) ** -1.5
        dxmu += 2 * xmu * dvar / n
        dx[:, c] = (dxmu - dxmu.sum() / n).reshape(dx[:, c].shape)
    return dx, dgamma, dbeta


def ref_groupnorm(x, gamma, beta, groups, eps=1e-5):
    """Layer norm for (N, D) with groups=1, group norm for (N, C, H, W): row by row, group by group."""
    out = np.empty_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        for g, part in enumerate(np.split(x[i], groups)):
            sl = slice(g * part.shape[0], (g + 1) * part.shape[0])
            out[i, sl] = (part - part.mean()) / np.sqrt(part.var() + eps)
    return out * gamma + beta


def ref_conv(x, w, b, conv_param):
    s, p = conv_param["stride"], conv_param["pad"]
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = 1 + (h + 2 * p - hh) // s, 1 + (wd + 2 * p - ww) // s
    out = np.zeros((n, f, ho, wo))
    for i in range(n):
        for k in range(f):
            for r in range(ho):
                for c in range(wo):
                    out[i, k, r, c] = (xp[i, :, r * s:r * s + hh, c * s:c * s + ww] * w[k]).sum() + b[k]
    return out


def ref_conv_backward(dout, x, w, conv_param):
    s, p = conv_param["stride"], conv_param["pad"]
    _, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    n, f, ho, wo = dout.shape
    for i in range(n):
        for k in range(f):
            for r in range(ho):
                for c in range(wo):
                    win = (i, slice(None), slice(r * s, r * s + hh), slice(c * s, c * s + ww))
                    dw[k] += xp[win] * dout[i, k, r, c]
                    dxp[win] += w[k] * dout[i, k, r, c]
    return dxp[:, :, p:p + x.shape[2], p:p + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))


def ref_max_pool(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, h, w = x.shape
    ho, wo = 1 + (h - ph) // s, 1 + (w - pw) // s
    out = np.zeros((n, c, ho, wo))
    for i in range(n):
        for k in range(c):
            for r in range(ho):
                for q in range(wo):
                    out[i, k, r, q] = x[i, k, r * s:r * s + ph, q * s:q * s + pw].max()
    return out


def ref_max_pool_backward(dout, x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x, dtype=np.float64)
    n, c, ho, wo = dout.shape
    for i in range(n):
        for k in range(c):
            for r in range(ho):
                for q in range(wo):
                    win = x[i, k, r * s:r * s + ph, q * s:q * s + pw]
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    dx[i, k, r * s + a, q * s + b] += dout[i, k, r, q]
    return dx


def ref_softmax_loss(x, y):
    n = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    dx = np.exp(logp)
    dx[np.arange(n), y] -= 1
    return -logp[np.arange(n), y].mean(), dx / n


def ref_svm_loss(x, y):
    n, classes = x.shape
    loss, dx = 0.0, np.zeros_like(x, dtype=np.float64)
    for i in range(n):
        for j in range(classes):
            if j == y[i]:
                continue
            margin = x[i, j] - x[i, y[i]] + 1
            if margin > 0:
                loss += margin
                dx[i, j] += 1
                dx[i, y[i]] -= 1
    return loss / n, dx / n


def numeric_grad(f, a, dout, h=1e-6):
    """An independent central difference of sum(f() * dout) with respect to a (perturbed in place)."""
    g = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        keep = a[i]
        a[i] = keep + h
        plus = np.sum(f() * dout)
        a[i] = keep - h
        minus = np.sum(f() * dout)
        a[i] = keep
        g[i] = (plus - minus) / (2 * h)
    return g


# --------------------------------------------------------------------------- forward and backward vs the conventions

def test_affine(isa, dtype, rng):
    x, w, b = randn(rng, (4, 3, 5), dtype), randn(rng, (15, 6), dtype), randn(rng, 6, dtype)
    out, cache = L.affine_forward(x, w, b)
    close(out, ref_affine(x.astype(float), w.astype(float), b.astype(float)), dtype)
    dout = randn(rng, out.shape, dtype)
    for got, want in zip(L.affine_backward(dout, cache), ref_affine_backward(dout.astype(float), x.astype(float),
                                                                             w.astype(float))):
        assert got.shape == want.shape
        close(got, want, dtype)


def test_affine_noncontiguous_and_empty_batch(isa, rng):
    x = rng.standard_normal((5, 8, 3))[:, ::2]            # (5, 4, 3), strided
    w = np.asfortranarray(rng.standard_normal((12, 7)))
    b = rng.standard_normal(7)
    out, cache = L.affine_forward(x, w, b)
    close(out, ref_affine(x, w, b), np.float64)
    dx, dw, db = L.affine_backward(np.ones_like(out), cache)
    close(dx, ref_affine_backward(np.ones_like(out), x, w)[0], np.float64)
    out0, cache0 = L.affine_forward(np.zeros((0, 4, 3)), w, b)
    assert out0.shape == (0, 7)
    dx0, dw0, db0 = L.affine_backward(out0, cache0)
    assert dx0.shape == (0, 4, 3) and not dw0.any() and not db0.any()


def test_relu_keeps_the_mask_not_x(isa, dtype, rng):
    x = randn(rng, (3, 4, 5), dtype)
    out, cache = L.relu_forward(x)
    close(out, np.maximum(x, 0), dtype)
    mask, shape = cache
    assert mask.dtype == np.uint8 and mask.nbytes == (x.size + 7) // 8 and shape == x.shape
    dout = randn(rng, x.shape, dtype)
    close(L.relu_backward(dout, cache), dout * (x > 0), dtype)
    # a dout of another shape, even one the mask's bytes would cover, is refused
    for bad in (dout[:, :, :4], dout.reshape(5, 4, 3), np.ones(61, dtype)):
        with pytest.raises(ValueError, match=r"dout must have the forward input's shape \(3, 4, 5\)"):
            L.relu_backward(bad, cache)


def test_norm_layers_check_gamma_beta_and_dout(dtype, rng):
    x = randn(rng, (4, 5), dtype)
    g, b = np.ones(5, dtype), np.zeros(5, dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    with pytest.raises(TypeError, match="gamma has dtype"):
        L.layernorm_forward(x, g.astype(other), b, {})
    with pytest.raises(TypeError, match="beta has dtype int64"):
        L.layernorm_forward(x, g, np.zeros(5, np.int64), {})
    for bad in (np.ones((4, 1), dtype), np.ones(6, dtype)):
        with pytest.raises(ValueError, match=r"gamma must have shape \(5,\)"):
            L.layernorm_forward(x, bad, b, {})
    out, cache = L.layernorm_forward(x, g, b, {})
    with pytest.raises(TypeError, match="dout has dtype"):
        L.layernorm_backward(np.ones((4, 5), other), cache)
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(4, 5\)"):
        L.layernorm_backward(np.ones((5, 4), dtype), cache)
    xs = randn(rng, (2, 6, 3, 4), dtype)
    with pytest.raises(ValueError, match=r"gamma must have shape \(1, 6, 1, 1\)"):
        L.spatial_groupnorm_forward(xs, np.ones(6, dtype), np.zeros((1, 6, 1, 1), dtype), 2, {})


def test_affine_relu(isa, dtype, rng):
    x, w, b = randn(rng, (6, 10), dtype), randn(rng, (10, 4), dtype), randn(rng, 4, dtype)
    out, cache = L.affine_relu_forward(x, w, b)
    a = ref_affine(x.astype(float), w.astype(float), b.astype(float))
    close(out, np.maximum(a, 0), dtype)
    dout = randn(rng, out.shape, dtype)
    want = ref_affine_backward(dout * (a > 0), x.astype(float), w.astype(float))
    for got, exp in zip(L.affine_relu_backward(dout, cache), want):
        close(got, exp, dtype)


@pytest.mark.parametrize("spatial", [False, True], ids=["2d", "spatial"])
def test_batchnorm_running_averages_over_calls_then_test_mode(isa, dtype, rng, spatial):
    shape = (6, 3, 4, 5) if spatial else (10, 4)
    fwd = L.spatial_batchnorm_forward if spatial else L.batchnorm_forward
    gamma, beta = randn(rng, shape[1], dtype), randn(rng, shape[1], dtype)
    bn_param, ref_param = {"mode": "train", "momentum": 0.8}, {"mode": "train", "momentum": 0.8}
    for step in range(4):
        x = (randn(rng, shape, dtype) * (step + 1) + step).astype(dtype)
        out, _ = fwd(x, gamma, beta, bn_param)
        close(out, ref_batchnorm(x.astype(float), gamma.astype(float), beta.astype(float), ref_param), dtype)
        for key in ("running_mean", "running_var"):
            close(bn_param[key], ref_param[key], dtype)  # created in x's dtype, biased variance
    bn_param["mode"] = ref_param["mode"] = "test"
    x = randn(rng, shape, dtype)
    before = bn_param["running_mean"].copy()
    out, cache = fwd(x, gamma, beta, bn_param)
    close(out, ref_batchnorm(x.astype(float), gamma.astype(float), beta.astype(float), ref_param), dtype)
    np.testing.assert_array_equal(bn_param["running_mean"], before)


def test_batchnorm_defaults_eps_and_given_buffers(isa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 3)) * 1e-3  # small variance: eps matters
    gamma, beta = np.ones(3), np.zeros(3)
    for param in ({"mode": "train"}, {"mode": "train", "eps": 1e-2, "running_mean": np.ones(3),
                                      "running_var": np.full(3, 2.0)}):
        ref_param = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in param.items()}
        out, _ = L.batchnorm_forward(x, gamma, beta, param)
        close(out, ref_batchnorm(x, gamma, beta, ref_param), np.float64)
        close(param["running_mean"], ref_param["running_mean"], np.float64)
        close(param["running_var"], ref_param["running_var"], np.float64)


@pytest.mark.parametrize("spatial", [False, True], ids=["2d", "spatial"])
def test_batchnorm_backward_both_forms(isa, dtype, rng, spatial):
    shape = (4, 3, 3, 2) if spatial else (9, 5)
    fwd, bwds = ((L.spatial_batchnorm_forward, (L.spatial_batchnorm_backward,)) if spatial
                 else (L.batchnorm_forward, (L.batchnorm_backward, L.batchnorm_backward_alt)))
    x, gamma, beta = randn(rng, shape, dtype), randn(rng, shape[1], dtype), randn(rng, shape[1], dtype)
    _, cache = fwd(x, gamma, beta, {"mode": "train"})
    dout = randn(rng, shape, dtype)
    want = ref_batchnorm_backward(dout.astype(float), x.astype(float), gamma.astype(float))
    for bwd in bwds:
        for got, exp in zip(bwd(dout, cache), want):
            close(got, exp, dtype)


def test_batchnorm_test_mode_backward(isa):
    rng = np.random.default_rng(2)
    x, gamma, beta = rng.standard_normal((5, 3)), rng.standard_normal(3), rng.standard_normal(3)
    param = {"mode": "test", "running_mean": rng.standard_normal(3), "running_var": rng.random(3) + 0.5}
    _, cache = L.batchnorm_forward(x, gamma, beta, param)
    dout = rng.standard_normal(x.shape)
    dx, dgamma, dbeta = L.batchnorm_backward(dout, cache)
    close(dx, dout * gamma / np.sqrt(param["running_var"] + 1e-5), np.float64)
    close(dbeta, dout.sum(0), np.float64)
    close(dgamma, (dout * (x - param["running_mean"]) / np.sqrt(param["running_var"] + 1e-5)).sum(0), np.float64)


@pytest.mark.parametrize("kind", ["layernorm", "groupnorm"])
def test_layernorm_and_groupnorm(isa, dtype, rng, kind):
    if kind == "layernorm":
        x, gamma, beta = randn(rng, (5, 8), dtype), randn(rng, 8, dtype), randn(rng, 8, dtype)
        out, cache = L.layernorm_forward(x, gamma, beta, {"eps": 1e-4})
        want = ref_groupnorm(x.astype(float), gamma.astype(float), beta.astype(float), 1, eps=1e-4)
        grads = L.layernorm_backward
    else:
        x = randn(rng, (3, 6, 4, 5), dtype)
        gamma, beta = randn(rng, (1, 6, 1, 1), dtype), randn(rng, (1, 6, 1, 1), dtype)
        out, cache = L.spatial_groupnorm_forward(x, gamma, beta, 2, {})
        want = ref_groupnorm(x.astype(float), gamma.astype(float), beta.astype(float), 2)
        grads = L.spatial_groupnorm_backward
    close(out, want, dtype)
    dout = randn(rng, x.shape, dtype)
    dx, dgamma, dbeta = grads(dout, cache)
    axes = 0 if kind == "layernorm" else (0, 2, 3)
    xhat = (want - beta.astype(float)) / gamma.astype(float)
    close(dgamma, np.sum(dout * xhat, axis=axes).reshape(gamma.shape), dtype)
    close(dbeta, np.sum(dout, axis=axes).reshape(gamma.shape), dtype)
    assert dx.shape == x.shape and dx.dtype == dtype  # dx: numeric gradients below


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 1), (1, 0), (2, 2)])
def test_conv(isa, dtype, rng, stride, pad):
    x, w, b = randn(rng, (2, 3, 7, 7), dtype), randn(rng, (4, 3, 3, 3), dtype), randn(rng, 4, dtype)
    conv_param = {"stride": stride, "pad": pad}
    out, cache = L.conv_forward_fast(x, w, b, conv_param)
    xd, wd = x.astype(float), w.astype(float)
    close(out, ref_conv(xd, wd, b.astype(float), conv_param), dtype)
    dout = randn(rng, out.shape, dtype)
    for got, exp in zip(L.conv_backward_fast(dout, cache), ref_conv_backward(dout.astype(float), xd, wd, conv_param)):
        close(got, exp, dtype)


def test_course_names_are_aliases():
    assert L.conv_forward_naive is L.conv_forward_im2col is L.conv_forward_strides is L.conv_forward_fast
    assert L.conv_backward_naive is L.conv_backward_im2col is L.conv_backward_strides is L.conv_backward_fast
    assert L.max_pool_forward_naive is L.max_pool_forward_reshape is L.max_pool_forward_im2col
    assert L.max_pool_forward_naive is L.max_pool_forward_fast
    assert L.max_pool_backward_naive is L.max_pool_backward_reshape is L.max_pool_backward_im2col
    assert L.max_pool_backward_naive is L.max_pool_backward_fast
    assert L.batchnorm_backward_alt is L.batchnorm_backward
    for name in L.__all__:
        doc = getattr(L, name).__doc__
        for section in ("Args:", "Returns:", "Shape:", "Example::"):
            assert section in doc, (name, section)


@pytest.mark.parametrize("pool_param", [POOL, {"pool_height": 3, "pool_width": 2, "stride": 1}])
def test_max_pool(isa, dtype, rng, pool_param):
    x = randn(rng, (2, 3, 6, 7), dtype)
    out, cache = L.max_pool_forward_fast(x, pool_param)
    close(out, ref_max_pool(x.astype(float), pool_param), dtype)
    dout = randn(rng, out.shape, dtype)
    close(L.max_pool_backward_fast(dout, cache), ref_max_pool_backward(dout.astype(float), x, pool_param), dtype)


def test_conv_relu_and_conv_relu_pool(isa, dtype, rng):
    x, w, b = randn(rng, (2, 3, 6, 6), dtype), randn(rng, (4, 3, 3, 3), dtype), randn(rng, 4, dtype)
    xd, wd = x.astype(float), w.astype(float)
    a = ref_conv(xd, wd, b.astype(float), CONV)
    r = np.maximum(a, 0)
    out, cache = L.conv_relu_forward(x, w, b, CONV)
    close(out, r, dtype)
    dout = randn(rng, out.shape, dtype)
    for got, exp in zip(L.conv_relu_backward(dout, cache), ref_conv_backward(dout * (a > 0), xd, wd, CONV)):
        close(got, exp, dtype)
    out, cache = L.conv_relu_pool_forward(x, w, b, CONV, POOL)
    close(out, ref_max_pool(r, POOL), dtype)
    dout = randn(rng, out.shape, dtype)
    dr = ref_max_pool_backward(dout.astype(float), r, POOL)
    for got, exp in zip(L.conv_relu_pool_backward(dout, cache), ref_conv_backward(dr * (a > 0), xd, wd, CONV)):
        close(got, exp, dtype)


@pytest.mark.parametrize("pool_param", [POOL, {"pool_height": 3, "pool_width": 3, "stride": 2},
                                        {"pool_height": 2, "pool_width": 3, "stride": 1}])
def test_conv_relu_pool_equals_its_parts_bitwise(isa, dtype, rng, pool_param):
    """The sandwich fuses the ReLU into the convolution and masks dout by out > 0 before the pool's
    scatter: the same bits as the parts run one by one, with ties, exact zeros, -0.0, NaN and inf in
    x (so in the convolution's output) and in dout, and with overlapping windows."""
    x, w, b = randn(rng, (3, 2, 9, 9), dtype), randn(rng, (4, 2, 3, 3), dtype), randn(rng, 4, dtype)
    x[0, :, :3, :3] = 0.0  # windows of exact-zero outputs (ties at the bias)
    b[1] = 0.0
    x[1, 0, 2, 2], x[1, 1, 5, 5], x[2, 0, 7, 1] = np.nan, np.inf, -np.inf
    w[2] = -0.0
    out, cache = L.conv_relu_pool_forward(x, w, b, CONV, pool_param)
    a, c1 = L.conv_relu_forward(x, w, b, CONV)
    exp_out, c2 = L.max_pool_forward_fast(a, pool_param)
    np.testing.assert_array_equal(out, exp_out)
    assert out.tobytes() == exp_out.tobytes()
    dout = randn(rng, out.shape, dtype)
    dout[0, 0, 0, 0], dout[1, 1, 0, 1], dout[2, 3, 1, 0] = np.nan, np.inf, -0.0
    got = L.conv_relu_pool_backward(dout, cache)
    exp = L.conv_relu_backward(L.max_pool_backward_fast(dout, c2), c1)
    for g, e, name in zip(got, exp, ("dx", "dw", "db")):
        assert g.dtype == dtype and g.shape == e.shape
        assert g.tobytes() == e.tobytes(), name


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_losses(isa, dtype, rng, loss):
    x, y = randn(rng, (12, 7), dtype), rng.integers(0, 7, 12)
    f, ref = (L.softmax_loss, ref_softmax_loss) if loss == "softmax" else (L.svm_loss, ref_svm_loss)
    got_loss, got_dx = f(x, y)
    want_loss, want_dx = ref(x.astype(float), y)
    close(got_loss, want_loss, dtype)
    close(got_dx, want_dx, dtype)
    got_loss32, _ = f(x, y.astype(np.int32))  # any integer label dtype
    close(got_loss32, want_loss, dtype)


def test_svm_loss_at_exact_margin():
    # margins of exactly 0 count as inactive (subgradient 0), as the course's max(0, .) > 0 does
    x, y = np.array([[1.0, 0.0, 0.5]]), np.array([0])
    loss, dx = L.svm_loss(x, y)
    assert loss == 0.5 and np.array_equal(dx, [[-1.0, 0.0, 1.0]])


@pytest.mark.parametrize("p", [0.25, 0.5, 0.9, 1.0])
def test_dropout_keeps_with_probability_p_like_the_course(dtype, p):
    x = np.random.default_rng(3).standard_normal((50, 40)).astype(dtype)
    state = np.random.get_state()
    out, cache = L.dropout_forward(x, {"p": p, "mode": "train", "seed": 123})
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # the global state is left alone
    np.random.seed(123)
    mask = (np.random.rand(*x.shape) < p) / p  # the course's inverted dropout
    close(out, x * mask.astype(dtype), dtype)
    dout = np.random.default_rng(4).standard_normal(x.shape).astype(dtype)
    close(L.dropout_backward(dout, cache), dout * mask.astype(dtype), dtype)
    kept = (out != 0).mean()
    assert abs(kept - p) < 0.05 and abs(out.mean() - x.mean()) < 0.1


def test_dropout_seed_and_modes():
    x = np.random.default_rng(5).standard_normal((20, 30))
    a, _ = L.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 7})
    b, _ = L.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 7})
    c, _ = L.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 8})
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    np.random.seed(11)
    d, _ = L.dropout_forward(x, {"p": 0.5, "mode": "train"})  # no seed: NumPy's global state
    np.random.seed(11)
    assert np.array_equal(d, x * ((np.random.rand(*x.shape) < 0.5) / 0.5))
    out, cache = L.dropout_forward(x, {"p": 0.5, "mode": "test", "seed": 7})
    assert out is x
    dout = np.ones_like(x)
    assert L.dropout_backward(dout, cache) is dout


# --------------------------------------------------------------------------- numeric gradients

def _pair(fwd, bwd, *params):
    """(forward over the arrays only, backward) for relucore.gradcheck."""
    return (lambda *arrays: fwd(*arrays, *params)), bwd


GRAD_CASES = {
    "affine": (L.affine_forward, L.affine_backward, [(3, 2, 4), (8, 5), (5,)], ()),
    "relu": (L.relu_forward, L.relu_backward, [(4, 6)], ()),
    "affine_relu": (L.affine_relu_forward, L.affine_relu_backward, [(3, 6), (6, 5), (5,)], ()),
    "batchnorm": (L.batchnorm_forward, L.batchnorm_backward, [(6, 4), (4,), (4,)], ({"mode": "train"},)),
    "batchnorm_alt": (L.batchnorm_forward, L.batchnorm_backward_alt, [(5, 3), (3,), (3,)], ({"mode": "train"},)),
    "spatial_batchnorm": (L.spatial_batchnorm_forward, L.spatial_batchnorm_backward, [(3, 2, 3, 3), (2,), (2,)],
                          ({"mode": "train"},)),
    "layernorm": (L.layernorm_forward, L.layernorm_backward, [(4, 6), (6,), (6,)], ({},)),
    "groupnorm": (lambda x, g, b: L.spatial_groupnorm_forward(x, g, b, 2, {}), L.spatial_groupnorm_backward,
                  [(2, 4, 3, 3), (1, 4, 1, 1), (1, 4, 1, 1)], ()),
    "conv": (L.conv_forward_fast, L.conv_backward_fast, [(2, 2, 5, 5), (3, 2, 3, 3), (3,)],
             ({"stride": 2, "pad": 1},)),
    "conv_relu": (L.conv_relu_forward, L.conv_relu_backward, [(2, 2, 4, 4), (3, 2, 3, 3), (3,)], (CONV,)),
    "conv_relu_pool": (L.conv_relu_pool_forward, L.conv_relu_pool_backward, [(2, 2, 4, 4), (3, 2, 3, 3), (3,)],
                       (CONV, POOL)),
    "max_pool": (L.max_pool_forward_fast, L.max_pool_backward_fast, [(2, 2, 4, 6)], (POOL,)),
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_backward_matches_numeric_gradient(isa, case):
    fwd, bwd, shapes, params = GRAD_CASES[case]
    rng = np.random.default_rng(len(case))
    arrays = [rng.standard_normal(s) for s in shapes]
    report = relucore.gradcheck(_pair(fwd, bwd, *params), arrays)
    assert report.passed, report
    assert report.max_rel_error < 1e-6 and len(report.checks) == len(arrays)


@pytest.mark.parametrize("loss", [L.softmax_loss, L.svm_loss])
def test_loss_gradients_match_numeric(isa, loss):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    report = relucore.gradcheck((lambda x: loss(x, y)[0], lambda d: loss(x, y)[1] * d), [x], dout=np.array(1.0))
    assert report.passed, report


def test_dropout_gradient_matches_numeric(isa):
    x = np.random.default_rng(7).standard_normal((6, 5))
    param = {"p": 0.6, "mode": "train", "seed": 2}  # a seed makes every forward draw the same mask
    report = relucore.gradcheck((lambda a: L.dropout_forward(a, param), L.dropout_backward), x)
    assert report.passed, report


def test_gradcheck_agrees_with_an_independent_central_difference(isa):
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2)
    out, cache = L.conv_relu_pool_forward(x, w, b, CONV, POOL)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = L.conv_relu_pool_backward(dout, cache)
    for a, analytic in ((x, dx), (w, dw), (b, db)):
        numeric = numeric_grad(lambda: L.conv_relu_pool_forward(x, w, b, CONV, POOL)[0], a, dout)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    report = relucore.gradcheck(_pair(L.conv_relu_pool_forward, L.conv_relu_pool_backward, CONV, POOL), (x, w, b),
                                dout=dout)
    assert report.passed, report


# --------------------------------------------------------------------------- bad arguments

def test_bad_dtypes_raise_type_error():
    x = np.ones((2, 3), np.int64)
    with pytest.raises(TypeError, match="float32 and float64"):
        L.affine_forward(x, np.ones((3, 2)), np.ones(2))
    with pytest.raises(TypeError, match="float32 and float64"):
        L.relu_forward(x)
    with pytest.raises(TypeError, match="float32 and float64"):
        L.svm_loss(x, np.zeros(2, int))
    with pytest.raises(TypeError, match="float32 and float64"):
        L.dropout_forward(x, {"p": 0.5, "mode": "train"})
    with pytest.raises(TypeError, match="float32 and float64"):
        L.max_pool_forward_fast(np.ones((1, 1, 2, 2), np.int32), POOL)
    with pytest.raises(TypeError, match="integer"):
        L.softmax_loss(np.ones((2, 3)), np.zeros(2))


def test_bad_shapes_and_params_raise_value_error():
    x = np.ones((4, 3))
    g = np.ones(3)
    with pytest.raises(ValueError, match="w must be 2-D"):
        L.affine_forward(x, np.ones(3), np.ones(1))
    with pytest.raises(ValueError, match="mode"):
        L.batchnorm_forward(x, g, g, {"mode": "eval"})
    with pytest.raises(ValueError, match="no 'mode'"):
        L.batchnorm_forward(x, g, g, {})
    with pytest.raises(ValueError, match="2-D"):
        L.batchnorm_forward(np.ones((2, 3, 4, 4)), g, g, {"mode": "train"})
    with pytest.raises(ValueError, match="4-D"):
        L.spatial_batchnorm_forward(x, g, g, {"mode": "train"})
    with pytest.raises(ValueError, match="running_mean"):
        L.batchnorm_forward(x, g, g, {"mode": "test", "running_mean": np.zeros(2), "running_var": np.ones(3)})
    with pytest.raises(ValueError, match="2-D"):
        L.layernorm_forward(np.ones((2, 3, 4)), np.ones(4), np.ones(4), {})
    with pytest.raises(ValueError, match="one value per normalized group"):
        L.layernorm_forward(np.ones((3, 1)), np.ones(1), np.ones(1), {})
    gn = np.ones((1, 6, 1, 1))
    for groups in (4, 0, 2.0, True):
        with pytest.raises(ValueError, match="G must"):
            L.spatial_groupnorm_forward(np.ones((2, 6, 2, 2)), gn, gn, groups, {})
    with pytest.raises(ValueError, match="4-D"):
        L.spatial_groupnorm_forward(np.ones((2, 6)), gn, gn, 2, {})
    with pytest.raises(ValueError, match="no 'pad'"):
        L.conv_forward_fast(np.ones((1, 3, 4, 4)), np.ones((2, 3, 3, 3)), np.ones(2), {"stride": 1})
    with pytest.raises(TypeError, match="conv_param must be a dict"):
        L.conv_forward_fast(np.ones((1, 3, 4, 4)), np.ones((2, 3, 3, 3)), np.ones(2), None)
    with pytest.raises(ValueError, match="no 'pool_width'"):
        L.max_pool_forward_fast(np.ones((1, 1, 4, 4)), {"pool_height": 2, "stride": 2})
    for y in (np.array([0, 1, 2, 3]), np.array([0, -1, 0, 0]), np.zeros(3, int)):
        with pytest.raises(ValueError, match="y must"):
            L.softmax_loss(x, y)
        with pytest.raises(ValueError, match="y must"):
            L.svm_loss(x, y)
    for p in (0, 1.5, -0.1, True, "0.5", None):
        with pytest.raises(ValueError, match="keep probability"):
            L.dropout_forward(x, {"p": p, "mode": "train"})
    with pytest.raises(ValueError, match="mode"):
        L.dropout_forward(x, {"p": 0.5, "mode": "eval"})
    _, cache = L.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 0})
    with pytest.raises(ValueError, match="dout"):
        L.dropout_backward(np.ones((3, 4)), cache)


def test_layers_is_a_lazy_submodule():
    import subprocess
    import sys

    code = ("import sys, relucore; assert 'relucore.layers' not in sys.modules; "
            "from relucore import layers; import relucore.layers as l2; assert layers is l2 is relucore.layers; "
            "assert 'layers' in relucore.__all__ and 'layers' in dir(relucore)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_course_style_network_end_to_end(isa):
    """affine - batchnorm - relu - dropout - affine - softmax loss, composed as coursework does; the
    whole loss's gradients against numeric ones, then a few SGD steps lower the loss."""
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)

    def net(w1, b1, gamma, beta, w2, b2):
        h, c1 = L.affine_forward(x, w1, b1)
        h, c2 = L.batchnorm_forward(h, gamma, beta, {"mode": "train"})
        h, c3 = L.relu_forward(h)
        h, c4 = L.dropout_forward(h, {"p": 0.75, "mode": "train", "seed": 5})
        scores, c5 = L.affine_forward(h, w2, b2)
        loss, dscores = L.softmax_loss(scores, y)
        return loss, (dscores, c1, c2, c3, c4, c5)

    def grads(dloss, cache):
        dscores, c1, c2, c3, c4, c5 = cache
        dh, dw2, db2 = L.affine_backward(dscores * dloss, c5)
        dh, dgamma, dbeta = L.batchnorm_backward(L.relu_backward(L.dropout_backward(dh, c4), c3), c2)
        _, dw1, db1 = L.affine_backward(dh, c1)
        return dw1, db1, dgamma, dbeta, dw2, db2

    params = [rng.standard_normal((6, 5)), rng.standard_normal(5), np.ones(5), np.zeros(5),
              rng.standard_normal((5, 3)), rng.standard_normal(3)]
    report = relucore.gradcheck((net, grads), params, dout=np.array(1.0))
    assert report.passed, report
    first = net(*params)[0]
    for _ in range(20):
        loss, cache = net(*params)
        for p, g in zip(params, grads(1.0, cache)):
            p -= 0.1 * g
    assert net(*params)[0] < 0.8 * first
