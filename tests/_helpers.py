"""Shared helpers: test data with special values, memory layouts, bitwise and ULP checks."""

from __future__ import annotations

import numpy as np

DTYPES = (np.float32, np.float64)

# Tile edges for tiles 8..64 (t-1, t, t+1, 2t+1) plus a few more; the large size is used sparingly.
SIZES = (0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129)
LARGE = 1_000_003

SHAPES = ((), (5,), (2, 3, 4, 5), (3, 1, 1), (4, 7, 9, 9), (0, 3), (2, 0, 4))

# Memory layouts with the same logical values (see `layout`).
LAYOUTS = ("C", "F", "T", "step2", "neg", "negstep2")

_UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def specials(dtype) -> np.ndarray:
    fi = np.finfo(dtype)
    return np.array(
        [-0.0, 0.0, np.nan, np.inf, -np.inf, 1.0, -1.0,
         fi.tiny, -fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal,
         fi.max, -fi.max, 1e-8, -1e-8, 6.0, 20.0, -20.0, 88.0, -88.0, 100.0, -100.0],
        dtype=dtype,
    )


def make_data(rng, shape, dtype, special_frac=0.2, scale=True) -> np.ndarray:
    """Random normal data at mixed scales, with NaN/±inf/±0/tiny/huge and exact zeros mixed in."""
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    a = rng.standard_normal(n)
    if scale:
        a *= rng.choice(np.array([1e-3, 1.0, 10.0, 100.0]), n)
    a = a.astype(dtype)
    if n and special_frac > 0:
        sp = specials(dtype)
        idx = rng.choice(n, size=min(n, max(1, int(n * special_frac))), replace=False)
        a[idx] = rng.choice(sp, size=idx.size)
        if n >= 2 * sp.size:  # every special value at least once
            a[rng.choice(n, size=sp.size, replace=False)] = sp
    return a.reshape(shape)


def layout(a: np.ndarray, kind: str) -> np.ndarray:
    """A view holding the values of ``a`` with the memory layout ``kind``.

    C: contiguous; F: Fortran order; T: a transposed C array; step2: every other element of
    the last axis of a bigger buffer (gaps hold NaN); neg: negative strides on every axis;
    negstep2: both.
    """
    a = np.asarray(a)
    if a.ndim == 0:
        return a.copy()
    if kind == "C":
        return np.ascontiguousarray(a)
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "T":
        return np.ascontiguousarray(a.T).T
    rev = (slice(None, None, -1),) * a.ndim
    if kind == "neg":
        return np.ascontiguousarray(a[rev])[rev]
    if kind in ("step2", "negstep2"):
        if a.ndim == 0:
            return a.copy()
        buf = np.full(a.shape[:-1] + (2 * a.shape[-1],), np.nan, dtype=a.dtype)
        view = buf[..., ::2]
        if kind == "negstep2":
            view = buf[..., ::-2]
        view[...] = a
        return view
    raise ValueError(kind)


def bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(_UINT[a.dtype])


def _check_meta(got, exp):
    assert isinstance(got, np.ndarray), f"expected ndarray, got {type(got).__name__}"
    assert got.dtype == exp.dtype, f"dtype {got.dtype} != {exp.dtype}"
    assert got.shape == exp.shape, f"shape {got.shape} != {exp.shape}"


def assert_bitwise(got, exp, what=""):
    """Same dtype, shape and bits; any NaN matches any NaN."""
    exp = np.asarray(exp)
    _check_meta(got, exp)
    if exp.dtype.kind != "f":
        np.testing.assert_array_equal(got, exp, err_msg=what)
        return
    nan = np.isnan(got) & np.isnan(exp)
    bad = ~nan & (bits(got) != bits(exp))
    if bad.any():
        i = np.flatnonzero(bad.ravel())[:8]
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ bitwise; "
            f"at flat {i.tolist()}: got {got.ravel()[i].tolist()} expected {exp.ravel()[i].tolist()}"
        )


def ulp_error(got, exp) -> np.ndarray:
    """Distance in units of the last place of ``exp.dtype``; matching NaN/inf and ±0 count as 0."""
    got = np.asarray(got)
    exp = np.asarray(exp)
    g = got.astype(np.float64)
    e = exp.astype(np.float64)
    same = (g == e) | (np.isnan(g) & np.isnan(e))
    with np.errstate(all="ignore"):
        diff = np.abs(g - e)
        sp = np.spacing(np.maximum(np.abs(got), np.abs(exp))).astype(np.float64)
        err = diff / sp
    err = np.where(same, 0.0, err)
    return np.where(np.isnan(err), np.inf, err)


def assert_ulp(got, exp, ulps=4, atol=None, what=""):
    """|got - exp| <= ulps ULP (or <= atol elementwise when given); NaN/inf must match."""
    exp = np.asarray(exp)
    _check_meta(got, exp)
    err = ulp_error(got, exp)
    ok = err <= ulps
    if atol is not None:
        with np.errstate(all="ignore"):
            ok |= np.abs(got.astype(np.float64) - exp.astype(np.float64)) <= atol
    if not ok.all():
        bad = ~ok
        i = np.flatnonzero(bad.ravel())[:8]
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements beyond {ulps} ulp "
            f"(max {err.max():.3g}); at flat {i.tolist()}: got {got.ravel()[i].tolist()} "
            f"expected {exp.ravel()[i].tolist()}"
        )


def assert_sum_close(got, exp, abs_terms, what=""):
    """For reductions: |got - exp| <= rtol * sum|terms| (+ a few ulp of exp)."""
    exp = np.asarray(exp)
    _check_meta(got, exp)
    rtol = 1e-5 if exp.dtype == np.float32 else 1e-12
    with np.errstate(all="ignore"):
        bound = rtol * np.asarray(abs_terms, dtype=np.float64) + 4 * np.spacing(np.abs(exp)).astype(np.float64)
        diff = np.abs(got.astype(np.float64) - exp.astype(np.float64))
    same = (got == exp) | (np.isnan(got) & np.isnan(exp))
    ok = same | (diff <= bound)
    assert ok.all(), f"{what}: got {got} expected {exp} (bound {bound})"


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


# --------------------------------------------------------------------------- the op table
# Each op: how to call it on a module (native `relucore` or `relucore.reference`), which array
# inputs it takes (call(module, *inputs, **keywords), e.g. out=), and how its first result is
# compared ("exact", "ulp", "sig_bw", "tanh_bw").


class Op:
    def __init__(self, name, inputs, call, tol="exact"):
        self.name, self.inputs, self.call, self.tol = name, inputs, call, tol

    def __repr__(self):
        return self.name


def _mask_of(x):
    import relucore.reference as ref

    return ref.relu(x, return_mask=True)[1]


def _relu6_mask_of(x):
    import relucore.reference as ref

    return ref.relu6(x, return_mask=True)[1]


def _leaky_mask_of(x):
    import relucore.reference as ref

    return ref.leaky_relu(x, 0.2, return_mask=True)[1]


OPS = [
    Op("relu", ("x",), lambda m, x, **kw: m.relu(x, **kw)),
    Op("relu_mask_counts", ("x",), lambda m, x, **kw: m.relu(x, return_mask=True, return_counts=True, **kw)),
    Op("relu_backward", ("dy", "x"), lambda m, dy, x, **kw: m.relu_backward(dy, x, **kw)),
    Op("relu_backward_g0.5", ("dy", "x"), lambda m, dy, x, **kw: m.relu_backward(dy, x, grad_at_zero=0.5, **kw)),
    Op("relu_backward_g1", ("dy", "x"), lambda m, dy, x, **kw: m.relu_backward(dy, x, grad_at_zero=1.0, **kw)),
    Op("relu_backward_mask", ("dy", "x"), lambda m, dy, x, **kw: m.relu_backward(dy, mask=_mask_of(x), **kw)),
    Op("leaky_relu", ("x",), lambda m, x, **kw: m.leaky_relu(x, **kw)),
    Op("leaky_relu_neg_mask_counts", ("x",),
       lambda m, x, **kw: m.leaky_relu(x, -0.5, return_mask=True, return_counts=True, **kw)),
    Op("leaky_relu_backward", ("dy", "x"), lambda m, dy, x, **kw: m.leaky_relu_backward(dy, x, 0.2, **kw)),
    Op("leaky_relu_backward_mask", ("dy", "x"),
       lambda m, dy, x, **kw: m.leaky_relu_backward(dy, negative_slope=0.2, mask=_leaky_mask_of(x), **kw)),
    Op("elu", ("x",), lambda m, x, **kw: m.elu(x, **kw), "ulp"),
    Op("elu_a0.5_counts", ("x",), lambda m, x, **kw: m.elu(x, 0.5, return_counts=True, **kw), "ulp"),
    Op("elu_backward", ("dy", "x"), lambda m, dy, x, **kw: m.elu_backward(dy, x, **kw), "elu_bw"),
    Op("elu_backward_a0.5", ("dy", "x"), lambda m, dy, x, **kw: m.elu_backward(dy, x, 0.5, **kw), "elu_bw"),
    Op("prelu", ("x", "weight"), lambda m, x, w, **kw: m.prelu(x, w, **kw)),
    Op("prelu_backward", ("dy", "x", "weight"), lambda m, dy, x, w, **kw: m.prelu_backward(dy, x, w, **kw)),
    Op("sigmoid", ("x",), lambda m, x, **kw: m.sigmoid(x, **kw), "ulp"),
    Op("sigmoid_backward", ("dy", "ys"), lambda m, dy, y, **kw: m.sigmoid_backward(dy, y, **kw), "sig_bw"),
    Op("tanh", ("x",), lambda m, x, **kw: m.tanh(x, **kw), "ulp"),
    Op("tanh_backward", ("dy", "yt"), lambda m, dy, y, **kw: m.tanh_backward(dy, y, **kw), "tanh_bw"),
    Op("relu6", ("x",), lambda m, x, **kw: m.relu6(x, **kw)),
    Op("relu6_mask_counts", ("x",), lambda m, x, **kw: m.relu6(x, return_mask=True, return_counts=True, **kw)),
    Op("relu6_backward", ("dy", "x"), lambda m, dy, x, **kw: m.relu6_backward(dy, x, **kw)),
    Op("relu6_backward_mask", ("dy", "x"), lambda m, dy, x, **kw: m.relu6_backward(dy, mask=_relu6_mask_of(x), **kw)),
]
OPS_BY_NAME = {op.name: op for op in OPS}


def make_inputs(op, rng, shape, dtype, special_frac=0.2, weight_size=None):
    """Arrays for ``op``: random data with specials; y of sigmoid/tanh; one prelu slope per channel."""
    import relucore.reference as ref

    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    out = []
    for name in op.inputs:
        if name == "weight":
            c = weight_size or (shape[1] if len(shape) >= 2 else 1)
            w = rng.standard_normal(c).astype(dtype)
            w[rng.random(c) < 0.2] = 0.0
            out.append(w)
        elif name == "ys":
            out.append(ref.sigmoid(make_data(rng, shape, dtype, special_frac)))
        elif name == "yt":
            out.append(ref.tanh(make_data(rng, shape, dtype, special_frac)))
        else:
            out.append(make_data(rng, shape, dtype, special_frac))
    return out


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def compare(op, got, exp, inputs, what="", zero_sign=False):
    """Check a native result against the reference result under ``op``'s tolerance."""
    what = f"{what} {op.name}"
    assert isinstance(got, tuple) == isinstance(exp, tuple), f"{what}: tuple-ness differs"
    got, exp = _as_tuple(got), _as_tuple(exp)
    assert len(got) == len(exp), f"{what}: {len(got)} results, expected {len(exp)}"
    if op.name == "prelu_backward":
        dy, x, w = inputs
        assert_bitwise(got[0], exp[0], what + " dx")
        with np.errstate(all="ignore"):
            terms = np.abs(np.where(x > 0, 0, x * dy)).astype(np.float64)
            if w.shape[0] == 1 or x.ndim < 2:
                abs_sum = np.sum(terms).reshape(1)
            else:
                abs_sum = np.sum(terms, axis=(0,) + tuple(range(2, x.ndim)))
        _check_meta(got[1], exp[1])
        finite = np.isfinite(abs_sum)  # non-finite sums depend on the order: nothing to compare
        assert_sum_close(got[1][finite], exp[1][finite], abs_sum[finite], what + " dweight")
        return
    g, e = got[0], exp[0]
    dt = np.asarray(e).dtype
    if op.tol == "exact":
        assert_bitwise(g, e, what)
    elif op.tol == "ulp":
        assert_ulp(g, e, 4, what=what)
    elif op.tol == "elu_bw":
        # exp(x) may underflow into the subnormals before it is scaled by dy * alpha: allow the
        # rounding of that intermediate, magnified by |dy * alpha| (the reference has it too)
        dy, x = inputs
        alpha = 0.5 if op.name.endswith("a0.5") else 1.0
        with np.errstate(all="ignore"):
            extra = 2 * np.abs(dy.astype(np.float64)) * alpha * np.spacing(np.exp(x)).astype(np.float64)
        assert_ulp(g, e, 4, atol=extra, what=what)
    else:
        dy, y = (a.astype(np.float64) for a in inputs)
        with np.errstate(all="ignore"):
            extra = np.abs(dy * y) if op.tol == "sig_bw" else np.abs(dy) * y * y
        assert_ulp(g, e, 4, atol=4 * eps(dt) * extra, what=what)
    if zero_sign:
        gz = (np.asarray(g) == 0) & (np.asarray(e) == 0)
        bad = gz & (np.signbit(g) != np.signbit(e))
        assert not bad.any(), f"{what}: sign of zero differs at {np.flatnonzero(bad.ravel())[:8].tolist()}"
    for i in range(1, len(exp)):  # masks and counts: always exact
        assert_bitwise(got[i], exp[i], f"{what} result[{i}]")
