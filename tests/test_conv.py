"""im2col, col2im, conv2d and conv2d_backward: the reference by hand and by definition, its
gradients by central differences, the im2col/col2im adjoint identity, and the native functions
against the reference on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
import relucore.reference as R
from _conv_helpers import (
    CONFIGS,
    KINDS,
    Conv,
    assert_grad,
    assert_terms_close,
    conv_id,
    normal,
    numeric_grad,
    pair,
    view,
)
from _helpers import assert_bitwise, make_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HYPO = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- definitions (loops)


def im2col_by_definition(x, kernel, stride, padding, dilation):
    """docs/api.md, literally: row c*kh*kw + i*kw + j, column oh*OW + ow."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel, stride, padding, dilation))
    n, c, h, w = x.shape
    oh_n = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow_n = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n, c * kh * kw, oh_n * ow_n), x.dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(oh_n):
                        for ow in range(ow_n):
                            r, q = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                            if 0 <= r < h and 0 <= q < w:
                                cols[b, ch * kh * kw + i * kw + j, oh * ow_n + ow] = x[b, ch, r, q]
    return cols


def conv2d_by_definition(x, weight, bias, stride, padding, dilation, groups):
    """y[n, f] = bias[f] + sum over the group's channels and taps, in float64 loops."""
    (sh, sw), (ph, pw), (dh, dw) = map(pair, (stride, padding, dilation))
    n, c, h, w = x.shape
    f, cg, kh, kw = weight.shape
    fg = f // groups
    oh_n = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow_n = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, f, oh_n, ow_n))
    for b in range(n):
        for fi in range(f):
            g = fi // fg
            for oh in range(oh_n):
                for ow in range(ow_n):
                    acc = 0.0 if bias is None else float(bias[fi])
                    for cc in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                r, q = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                                if 0 <= r < h and 0 <= q < w:
                                    acc += float(weight[fi, cc, i, j]) * float(x[b, g * cg + cc, r, q])
                    y[b, fi, oh, ow] = acc
    return y


# --------------------------------------------------------------------------- reference: literals


def test_im2col_literal():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    expect = np.array([[[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]], dtype=float)
    assert_bitwise(R.im2col(x, 2), expect)
    # dilation 2: the four corners
    assert_bitwise(R.im2col(x, 2, dilation=2), np.array([[[0.0], [2.0], [6.0], [8.0]]]))
    # padding 1, stride 2, 2x2 kernel: windows start at (-1, -1), (-1, 1), (1, -1), (1, 1)
    expect = np.array([[[0, 0, 0, 4], [0, 0, 3, 5], [0, 1, 0, 7], [0, 2, 6, 8]]], dtype=float)
    assert_bitwise(R.im2col(x, 2, stride=2, padding=1), expect)
    # rows are channel-major: C=2, 1x1 kernel
    x2 = np.stack([np.zeros((2, 2)), np.ones((2, 2))])[None]
    assert_bitwise(R.im2col(x2, 1), np.array([[[0.0] * 4, [1.0] * 4]]))
    # rectangular kernel and pair arguments
    assert_bitwise(R.im2col(x, (1, 3), stride=(2, 1)), np.array([[[0.0, 6.0], [1.0, 7.0], [2.0, 8.0]]]))


def test_col2im_literal():
    # each pixel receives one term per window covering it
    got = R.col2im(np.ones((1, 4, 4)), (1, 1, 3, 3), 2)
    assert_bitwise(got, np.array([[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]))
    # padded positions are dropped: 3x3 kernel, padding 1 on a 2x2 image: 4 windows, all cover all
    assert_bitwise(R.col2im(np.ones((1, 9, 4)), (1, 1, 2, 2), 3, padding=1), np.full((1, 1, 2, 2), 4.0))
    # stride 2 with a 1x1 kernel: holes stay zero
    got = R.col2im(np.array([[[1.0, 2.0, 3.0, 4.0]]]), (1, 1, 3, 3), 1, stride=2)
    assert_bitwise(got, np.array([[[[1.0, 0, 2.0], [0, 0, 0], [3.0, 0, 4.0]]]]))


def test_conv2d_literal():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    assert_bitwise(R.conv2d(x, w), np.full((1, 1, 3, 3), -5.0))
    assert_bitwise(R.conv2d(x, w, np.array([1.0])), np.full((1, 1, 3, 3), -4.0))
    ones = np.ones((1, 1, 3, 3))
    k = np.ones((1, 1, 3, 3))
    assert_bitwise(R.conv2d(ones, k, padding=1), np.array([[[[4.0, 6, 4], [6, 9, 6], [4, 6, 4]]]]))
    assert_bitwise(R.conv2d(ones, k, stride=2, padding=1), np.array([[[[4.0, 4], [4, 4]]]]))
    assert_bitwise(R.conv2d(np.ones((1, 1, 5, 5)), k, dilation=2), np.array([[[[9.0]]]]))


def test_conv2d_groups_literal():
    x = np.stack([np.ones((2, 2)), 10 * np.ones((2, 2))])[None]          # channels 1 and 10
    # groups=2, one filter per group: filter f sees channel f only
    y = R.conv2d(x, np.array([3.0, 5.0]).reshape(2, 1, 1, 1), groups=2)
    assert_bitwise(y, np.stack([3 * np.ones((2, 2)), 50 * np.ones((2, 2))])[None])
    # groups=1 sums both channels
    assert_bitwise(R.conv2d(x, np.ones((1, 2, 1, 1))), np.full((1, 1, 2, 2), 11.0))
    # depthwise with multiplier 2: filters 0, 1 see channel 0; filters 2, 3 see channel 1
    y = R.conv2d(x, np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1, 1), groups=2)
    assert_bitwise(y[0, :, 0, 0], np.array([1.0, 2.0, 30.0, 40.0]))


def test_conv2d_backward_literal():
    dy = np.ones((1, 1, 2, 2))
    dx, dw, db = R.conv2d_backward(dy, np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2)))
    assert_bitwise(dx, np.array([[[[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]]]))
    # dweight[i, j] = sum of the 2x2 block of x starting at (i, j)
    assert_bitwise(dw, np.array([[[[8.0, 12.0], [20.0, 24.0]]]]))
    assert_bitwise(db, np.array([4.0]))


SMALL = [
    Conv(2, 4, 5, 6, 4, 3, 1, 1, 1, 2),
    Conv(1, 3, 6, 5, 6, (2, 3), 2, (1, 2), 2, 3),
    Conv(2, 2, 4, 4, 3, (3, 2), (2, 1), 0, (1, 2), 1),
    Conv(1, 4, 3, 3, 8, 3, 1, 1, 1, 4),
]


@pytest.mark.parametrize("cfg", SMALL, ids=conv_id)
def test_reference_by_definition(cfg, rng):
    x, w, b = normal(rng, cfg.x_shape, np.float64), normal(rng, cfg.w_shape, np.float64), normal(rng, cfg.f, np.float64)
    k = pair(cfg.kernel)
    assert_bitwise(R.im2col(x, k, cfg.stride, cfg.padding, cfg.dilation),
                   im2col_by_definition(x, k, cfg.stride, cfg.padding, cfg.dilation))
    np.testing.assert_allclose(R.conv2d(x, w, b, *cfg.args), conv2d_by_definition(x, w, b, *cfg.args),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype_", [np.float32, np.float64])
def test_dtype_and_layout_of_results(dtype_, rng):
    cfg = Conv(2, 4, 5, 5, 4, 3, 1, 1, 1, 2)
    x, w, b = (normal(rng, s, dtype_) for s in (cfg.x_shape, cfg.w_shape, cfg.f))
    dy = normal(rng, cfg.y_shape, dtype_)
    saved = [a.copy() for a in (x, w, b, dy)]
    outs = [R.conv2d(x, w, b, *cfg.args), *R.conv2d_backward(dy, x, w, *cfg.args),
            R.im2col(x, 3, padding=1), R.col2im(R.im2col(x, 3), x.shape, 3)]
    for o in outs:
        assert o.dtype == dtype_ and o.flags.c_contiguous
    for a, s in zip((x, w, b, dy), saved):
        assert_bitwise(a, s, "input modified")
    assert R.conv2d_backward(dy, x, w, *cfg.args)[2].shape == (cfg.f,)


def test_empty_batch_reference():
    cfg = Conv(0, 4, 5, 5, 6, 3, 1, 1, 1, 2)
    x, w = np.zeros(cfg.x_shape), np.ones(cfg.w_shape)
    assert R.conv2d(x, w, np.ones(6), *cfg.args).shape == (0, 6, 5, 5)
    dx, dw, db = R.conv2d_backward(np.zeros(cfg.y_shape), x, w, *cfg.args)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (6,)
    assert not dw.any() and not db.any()
    assert R.im2col(x, 3).shape == (0, 36, 9)


# --------------------------------------------------------------------------- gradients (float64)


GRAD_CONFIGS = [
    Conv(2, 4, 5, 4, 4, 3, 1, 1, 1, 2),
    Conv(1, 3, 6, 5, 3, (2, 3), 2, (1, 2), (2, 1), 3),
    Conv(2, 2, 4, 4, 3, 1, 2, 1),
    Conv(1, 2, 3, 3, 2, 3),
]


@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=conv_id)
def test_conv2d_backward_numeric(cfg):
    _conv_numeric(R, cfg)


@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=conv_id)
def test_conv2d_backward_numeric_native(rc, cfg):
    _conv_numeric(rc, cfg)


def _conv_numeric(m, cfg):
    conv, back = m.conv2d, m.conv2d_backward
    rng = np.random.default_rng(3)
    x, w, b = normal(rng, cfg.x_shape, np.float64), normal(rng, cfg.w_shape, np.float64), normal(rng, cfg.f, np.float64)
    dy = normal(rng, cfg.y_shape, np.float64)
    dx, dw, db = back(dy, x, w, *cfg.args)
    assert_grad(dx, numeric_grad(lambda v: np.sum(dy * conv(v, w, b, *cfg.args)), x), "dx")
    assert_grad(dw, numeric_grad(lambda v: np.sum(dy * conv(x, v, b, *cfg.args)), w), "dweight")
    assert_grad(db, numeric_grad(lambda v: np.sum(dy * conv(x, w, v, *cfg.args)), b), "dbias")


# --------------------------------------------------------------------------- adjoint identity


@st.composite
def conv_configs(draw, max_n=3):
    """Random valid conv configurations (groups 1..3, depthwise when C == groups)."""
    g = draw(st.integers(1, 3))
    c = g * draw(st.integers(1, 3))
    f = g * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 9))
    n = draw(st.integers(1, max_n))
    return Conv(n, c, h, w, f, (kh, kw), (sh, sw), (ph, pw), (dh, dw), g)


def _adjoint(m, cfg, seed):
    rng = np.random.default_rng(seed)
    k = pair(cfg.kernel)
    x = normal(rng, cfg.x_shape, np.float64)
    cols = m.im2col(x, k, cfg.stride, cfg.padding, cfg.dilation)
    c = normal(rng, cols.shape, np.float64)
    back = m.col2im(c, x.shape, k, cfg.stride, cfg.padding, cfg.dilation)
    lhs, rhs = np.vdot(cols, c), np.vdot(x, back)
    scale = np.vdot(np.abs(cols), np.abs(c))
    assert abs(lhs - rhs) <= 1e-12 * scale + 1e-300, f"{cfg}: <im2col x, c> = {lhs} != <x, col2im c> = {rhs}"


@HYPO
@given(cfg=conv_configs(), seed=st.integers(0, 2**32 - 1))
def test_adjoint_reference(cfg, seed):
    _adjoint(R, cfg, seed)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=conv_configs(), seed=st.integers(0, 2**32 - 1))
def test_adjoint_native(rc, cfg, seed):
    _adjoint(rc, cfg, seed)


# --------------------------------------------------------------------------- native vs reference


def _inputs(cfg, dtype, rng, bias=True):
    x = normal(rng, cfg.x_shape, dtype)
    w = normal(rng, cfg.w_shape, dtype)
    b = normal(rng, cfg.f, dtype) if bias else None
    dy = normal(rng, cfg.y_shape, dtype)
    return x, w, b, dy


def _abs64(*arrays):
    return [None if a is None else np.abs(a.astype(np.float64)) for a in arrays]


def check_forward(conv, cfg, x, w, b, what=""):
    got = conv(x, w, b, *cfg.args)
    exp = R.conv2d(x, w, b, *cfg.args)
    ax, aw, ab = _abs64(x, w, b)
    assert_terms_close(got, exp, R.conv2d(ax, aw, ab, *cfg.args), f"conv2d {cfg} {what}")
    return got


def check_backward(back, cfg, dy, x, w, what=""):
    got = back(dy, x, w, *cfg.args)
    assert isinstance(got, tuple) and len(got) == 3, f"conv2d_backward returned {type(got).__name__}"
    exp = R.conv2d_backward(dy, x, w, *cfg.args)
    terms = R.conv2d_backward(*_abs64(dy, x, w), *cfg.args)
    for name, g, e, t in zip(("dx", "dweight", "dbias"), got, exp, terms):
        assert_terms_close(g, e, t, f"conv2d_backward {name} {cfg} {what}")
    return got


@pytest.mark.parametrize("cfg", CONFIGS, ids=conv_id)
def test_conv2d_native(rc, gemm, conv_algo, cfg, dtype, rng):
    conv, back = rc.conv2d, rc.conv2d_backward
    x, w, b, dy = _inputs(cfg, dtype, rng, bias=CONFIGS.index(cfg) % 2 == 0)
    saved = [None if a is None else a.copy() for a in (x, w, b, dy)]
    check_forward(conv, cfg, x, w, b)
    check_forward(conv, cfg, x, w, None, "no bias")
    check_backward(back, cfg, dy, x, w)
    for a, s in zip((x, w, b, dy), saved):
        if a is not None:
            assert_bitwise(a, s, "input modified")


# Planes wider than the GEMM's column blocks (480 float columns, 256 deep), so the fused im2col
# builds partial blocks that start and end inside output rows; "same" padding takes the
# shifted-row copy, the others the per-row runs. Special values show any entry read from the
# wrong place (a neighbouring row or channel).
BIG_PLANES = [Conv(2, 3, 23, 23, 10, 3, 1, 1), Conv(1, 2, 25, 21, 9, 3, 1, (2, 1), (2, 1)),
              Conv(1, 2, 24, 26, 7, 5, 1, 2), Conv(1, 3, 23, 23, 10, 3, 1, 0), Conv(1, 2, 30, 30, 5, (1, 3), 1, (0, 1)),
              Conv(1, 4, 33, 33, 6, 3, 2, 1), Conv(1, 1, 40, 40, 3, 3, 1, 1)]


@pytest.mark.parametrize("cfg", BIG_PLANES, ids=conv_id)
def test_conv2d_big_planes_native(rc, gemm, conv_algo, cfg, dtype, rng):
    conv, back = rc.conv2d, rc.conv2d_backward
    x = normal(rng, cfg.x_shape, dtype)
    flat = x.reshape(-1)  # order-independent specials (no finite overflow, whose sums depend on the order)
    at = rng.choice(flat.size, size=max(1, flat.size // 50), replace=False)
    flat[at] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype), size=at.size)
    w, b, dy = normal(rng, cfg.w_shape, dtype), normal(rng, cfg.f, dtype), normal(rng, cfg.y_shape, dtype)
    check_forward(conv, cfg, x, w, b)
    x = normal(rng, cfg.x_shape, dtype)  # finite x for the gradients (NaN would fill whole rows of dweight)
    check_backward(back, cfg, dy, x, w)


@pytest.mark.parametrize("cfg", CONFIGS, ids=conv_id)
def test_im2col_col2im_native(rc, cfg, dtype, rng):
    im2col, col2im = rc.im2col, rc.col2im
    k = pair(cfg.kernel)
    geo = (cfg.stride, cfg.padding, cfg.dilation)
    x = make_data(rng, cfg.x_shape, dtype)                   # NaN, inf, -0.0 ... are copied as they are
    assert_bitwise(im2col(x, k, *geo), R.im2col(x, k, *geo), f"im2col {cfg}")
    cols = normal(rng, R.im2col(x, k, *geo).shape, dtype)
    # col2im sums overlapping windows: the order may differ
    terms = R.col2im(np.abs(cols.astype(np.float64)), x.shape, k, *geo)
    assert_terms_close(col2im(cols, x.shape, k, *geo), R.col2im(cols, x.shape, k, *geo), terms,
                       f"col2im {cfg}", rtol=8 * np.finfo(dtype).eps)


LAYOUT_CONFIGS = [CONFIGS[5], CONFIGS[22], Conv(2, 4, 6, 5, 4, (3, 2), 2, 1, 1, 4), Conv(2, 3, 5, 5, 4, 1)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cfg", LAYOUT_CONFIGS, ids=conv_id)
def test_layouts_native(rc, cfg, kind, dtype, rng):
    conv, back, im2col = rc.conv2d, rc.conv2d_backward, rc.im2col
    x, w, b, dy = _inputs(cfg, dtype, rng)
    xv, wv, dyv, bv = view(x, kind), view(w, kind), view(dy, kind), view(b, kind)
    check_forward(conv, cfg, xv, wv, bv, kind)
    check_backward(back, cfg, dyv, xv, wv, kind)
    k = pair(cfg.kernel)
    geo = (cfg.stride, cfg.padding, cfg.dilation)
    assert_bitwise(im2col(xv, k, *geo), R.im2col(x, k, *geo), f"im2col {kind}")
    cols = normal(rng, R.im2col(x, k, *geo).shape, dtype)
    terms = R.col2im(np.abs(cols.astype(np.float64)), x.shape, k, *geo)
    assert_terms_close(rc.col2im(view(cols, kind), x.shape, k, *geo), R.col2im(cols, x.shape, k, *geo),
                       terms, f"col2im {kind}", rtol=8 * np.finfo(dtype).eps)


@HYPO
@given(cfg=conv_configs(), seed=st.integers(0, 2**32 - 1), f64=st.booleans())
def test_random_configs_native(rc, cfg, seed, f64):
    conv, back = rc.conv2d, rc.conv2d_backward
    dtype = np.float64 if f64 else np.float32
    x, w, b, dy = _inputs(cfg, dtype, np.random.default_rng(seed))
    check_forward(conv, cfg, x, w, b)
    check_backward(back, cfg, dy, x, w)


def test_empty_batch_native(rc, dtype):
    conv, back = rc.conv2d, rc.conv2d_backward
    cfg = Conv(0, 4, 5, 5, 6, 3, 1, 1, 1, 2)
    x, w, b = np.zeros(cfg.x_shape, dtype), np.ones(cfg.w_shape, dtype), np.ones(6, dtype)
    assert_bitwise(conv(x, w, b, *cfg.args), R.conv2d(x, w, b, *cfg.args))
    for g, e in zip(back(np.zeros(cfg.y_shape, dtype), x, w, *cfg.args),
                    R.conv2d_backward(np.zeros(cfg.y_shape, dtype), x, w, *cfg.args)):
        assert_bitwise(g, e)


@pytest.mark.parametrize("cfg", [Conv(4, 8, 12, 12, 16, 3, 1, 1), Conv(3, 8, 10, 9, 8, 3, 2, 1, 1, 8),
                                 Conv(5, 6, 8, 8, 4, 1)], ids=conv_id)
def test_threads_native(rc, cfg, dtype, rng):
    conv, back = rc.conv2d, rc.conv2d_backward
    x, w, b, dy = _inputs(cfg, dtype, rng)
    before = rc.get_num_threads()
    results = []
    try:
        for t in (1, 2):
            rc.set_num_threads(t)
            results.append((conv(x, w, b, *cfg.args), *back(dy, x, w, *cfg.args)))
    finally:
        rc.set_num_threads(before)
    ax, aw, ab, ady = _abs64(x, w, b, dy)
    terms = (R.conv2d(ax, aw, ab, *cfg.args), *R.conv2d_backward(ady, ax, aw, *cfg.args))
    for name, one, two, t in zip(("y", "dx", "dweight", "dbias"), *results, terms):
        assert_terms_close(two, one, t, f"{name}: 2 threads vs 1 {cfg}")


# --------------------------------------------------------------------------- Winograd F(2x2), F(4x4) and F(7x7)

# The batch's tiles are cut in blocks of 96 that start mid-row and span images (49 tiles an image
# for 14 x 14; 225 and 300 for the large planes): a block's outputs must not spill into the next
# block's part of a row or image. 20 and 33 kernels: a last register tile of fewer rows (tiles in
# the lanes) or a last vector of fewer kernels (channels in the lanes); 5 x 49 tiles: a last block
# of fewer columns than a register tile. Most layers run with channels in the lanes; these take
# tiles in the lanes: 130 channels both ways (a transformed kernel matrix over 64 KiB), float32 16
# channels on rows of 17 tiles, and 260 -> 80 (more than one GEMM depth block, so the transformed
# kernels are not packed once ahead: the unfused products). float64 layers with channels in the
# lanes run F(4x4, 3x3) or F(7x7, 3x3), whichever runs fewer products: 4x4 tiles on the 9x11 output
# (a tie), 7x7 on the 6x6, 14x14, 30x30, 30x40 and 34x34 outputs and several dx planes (overhanging
# all but 14x14; 32-tile blocks across images), except 64 -> 64 on 6x6 (as many products either
# way, and 36 transformed kernel matrices over 1 MiB): F(2x2) there.
WINO = [Conv(2, 16, 9, 11, 16, 3, 1, 1), Conv(1, 17, 8, 8, 20, 3, 1, 0), Conv(3, 32, 6, 7, 32, 3, 1, 2, 1, 2),
        Conv(2, 16, 5, 5, 16, 3, 1, (1, 0)), Conv(1, 16, 30, 30, 16, 3, 1, 1), Conv(1, 40, 30, 40, 40, 3, 1, 1),
        Conv(1, 260, 5, 6, 20, 3, 1, 1), Conv(5, 16, 14, 14, 33, 3, 1, 1), Conv(1, 130, 6, 6, 130, 3, 1, 1),
        Conv(2, 16, 34, 34, 16, 3, 1, 1), Conv(1, 260, 4, 4, 80, 3, 1, 1), Conv(3, 64, 6, 6, 64, 3, 1, 1)]


@pytest.mark.parametrize("cfg", WINO, ids=conv_id)
def test_winograd_is_taken_and_close(rc, gemm, cfg, dtype, rng):
    """Winograd (forced: "auto" leaves most of these small layers to the GEMM) on finite data: the
    results match the reference within the GEMM tolerance but are not bitwise the GEMM path's."""
    x, w, b, dy = _inputs(cfg, dtype, rng)
    with rc.use_conv_algorithm("winograd"):
        fast = check_forward(rc.conv2d, cfg, x, w, b)
        fast_back = check_backward(rc.conv2d_backward, cfg, dy, x, w)
    with rc.use_conv_algorithm("gemm"):
        slow = rc.conv2d(x, w, b, *cfg.args)
        slow_back = rc.conv2d_backward(dy, x, w, *cfg.args)
    assert fast.tobytes() != slow.tobytes(), "Winograd was not taken"
    assert fast_back[0].tobytes() != slow_back[0].tobytes(), "Winograd was not taken for dx"
    assert fast_back[1].tobytes() != slow_back[1].tobytes(), "Winograd was not taken for dweight"


@pytest.mark.parametrize("cfg", [WINO[0], Conv(2, 16, 14, 14, 16, 3, 1, 1)], ids=["9x11", "14x14"])
@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
def test_winograd_falls_back_on_non_finite(rc, conv_algo, special, cfg, dtype, rng):
    """inf - inf inside the transforms would turn the direct sum's +-inf into NaN: any non-finite or
    huge input or weight takes the GEMM path, whose results are the reference's (4x4 tiles in
    float64 on the 9x11 output, 7x7 on 14x14)."""
    x, w, b, dy = _inputs(cfg, dtype, rng)
    x[0, 3, 4, 5] = special
    y = check_forward(rc.conv2d, cfg, x, w, b)
    if not np.isnan(special):
        assert np.isinf(y).any() and not np.isnan(y[0]).any()
    x[0, 3, 4, 5] = np.finfo(dtype).max / 4  # finite but too close to overflow for the transforms
    check_forward(rc.conv2d, cfg, x, w, b)
    # Every value finite and modest, but the products overflow: the direct sum is +inf everywhere,
    # the transformed products would be +-inf (then NaN). The product bound sends it to the GEMM.
    big = 1e20 if dtype == np.float32 else 1e160
    xb = (np.abs(normal(rng, cfg.x_shape, dtype)) + 1) * dtype(big)
    wb = (np.abs(normal(rng, cfg.w_shape, dtype)) + 1) * dtype(big / 10)
    yb = rc.conv2d(xb, wb, None, *cfg.args)
    assert np.isposinf(yb).all(), "the direct sum overflows to +inf everywhere"
    w2 = w.copy()
    w2[1, 2, 0, 0] = special
    check_forward(rc.conv2d, cfg, normal(rng, cfg.x_shape, dtype), w2, b)
    check_backward(rc.conv2d_backward, cfg, normal(rng, cfg.y_shape, dtype), normal(rng, cfg.x_shape, dtype),
                   w2)
    dy[1, 0, 2, 2] = special
    check_backward(rc.conv2d_backward, cfg, dy, normal(rng, cfg.x_shape, dtype), w)
    xs = normal(rng, cfg.x_shape, dtype)  # dweight reads x: a special there takes the GEMM path too
    xs[1, 2, 3, 3] = special
    _, dws, _ = check_backward(rc.conv2d_backward, cfg, normal(rng, cfg.y_shape, dtype), xs, w)
    if not np.isnan(special):
        assert np.isinf(dws).any()
    # dweight's products overflow (x and dy finite): the direct sum is +inf in every entry, the
    # transformed products would mix signs (then NaN)
    dyb = (np.abs(normal(rng, cfg.y_shape, dtype)) + 1) * dtype(big / 10)
    _, dwb, _ = rc.conv2d_backward(dyb, xb, w, *cfg.args)
    assert np.isposinf(dwb).all(), "the direct sum overflows to +inf everywhere"


@pytest.mark.parametrize("side", [14, 13, 15])
@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("special", [np.inf, np.nan], ids=["inf", "nan"])
def test_winograd_scans_as_it_transforms(rc, special, where, side, dtype, rng):
    """With channels in the lanes, the transforms check the data they read and the GEMM path redoes
    a layer whose data are not tame: a special value at the batch's first or last element or a
    finite value too large gives the GEMM's result, bit for bit, in the forward, dx and dweight.
    float64 runs 7x7 tiles on 14x14 planes (no overhang) and 13x13 (the last tile overhangs), 4x4
    tiles on 15x15 (overhanging); float32 2x2 tiles."""
    cfg = Conv(5, 16, side, side, 33, 3, 1, 1)
    x, w, b, dy = _inputs(cfg, dtype, rng)
    at = (0, 0, 0, 0) if where == "first" else (-1, -1, -1, -1)
    for name, value in (("special", special), ("huge", np.finfo(dtype).max / 8)):
        for target in ("x", "dy"):
            xs, dys = x.copy(), dy.copy()
            (xs if target == "x" else dys)[at] = value
            with rc.use_conv_algorithm("winograd"):
                got = [rc.conv2d(xs, w, b, *cfg.args), *rc.conv2d_backward(dys, xs, w, *cfg.args)]
            with rc.use_conv_algorithm("gemm"):
                exp = [rc.conv2d(xs, w, b, *cfg.args), *rc.conv2d_backward(dys, xs, w, *cfg.args)]
            # dy only enters dx and dweight; x only the forward and dweight
            for k in ((1, 2) if target == "dy" else (0, 2)):
                assert_bitwise(got[k], exp[k], f"{name} in {target} {where}: {('y', 'dx', 'dweight')[k]}")


@pytest.mark.parametrize("side", [8, 14])
@pytest.mark.parametrize("operand", ["x", "dy"])
def test_winograd_each_transform_far_from_overflow(rc, dtype, operand, side):
    """One operand large, the other tiny: the bound on the products passes, but the large operand's
    own transform would overflow (|B^T x B| grows up to 100x and |A dy A^T| 225x in 4x4 tiles, 254x
    and 16129x in float64's 7x7 tiles on 14x14, 4x in 2x2 tiles); the gradients come from the GEMM
    path, bit for bit."""
    cfg = Conv(1, 16, side, side, 16, 3, 1, 1)
    big = np.finfo(dtype).max / (50 if dtype == np.float64 else 10)
    s = np.array([1, 0, -1, 0] * (side // 4 + 1), dtype)[:side]  # a patch whose transform adds up its magnitudes
    pattern = np.broadcast_to(big * np.outer(s, s), (1, 16, side, side)).astype(dtype)
    tiny = np.full((1, 16, side, side), 1e-300 if dtype == np.float64 else 1e-30, dtype)
    x, dy = (pattern, tiny) if operand == "x" else (tiny, pattern)
    w = np.ones(cfg.w_shape, dtype)
    with rc.use_conv_algorithm("winograd"):
        got = rc.conv2d_backward(dy, x, w, *cfg.args)
    with rc.use_conv_algorithm("gemm"):
        exp = rc.conv2d_backward(dy, x, w, *cfg.args)
    assert_bitwise(got[1], exp[1], "dweight")
    assert np.isfinite(got[1]).all()


def test_depthwise_skips_padded_taps_as_pytorch(rc, dtype):
    """Depthwise layers skip the taps in the zero padding (PyTorch's depthwise kernel does too): a
    non-finite weight or dy meets no padded zero, so no 0 * inf = NaN at the border; inside, the
    specials propagate as in a direct sum."""
    x = np.ones((1, 2, 4, 4), dtype)
    w = np.ones((2, 1, 3, 3), dtype)
    w[0, 0, 0, 0] = np.inf
    y = rc.conv2d(x, w, None, 1, 1, 1, 2)
    np.testing.assert_array_equal(y[0, 0], [[4, 6, 6, 4], [6, np.inf, np.inf, np.inf],
                                            [6, np.inf, np.inf, np.inf], [4, np.inf, np.inf, np.inf]])
    np.testing.assert_array_equal(y[0, 1], R.conv2d(x, np.ones_like(w), None, 1, 1, 1, 2)[0, 1])
    dy = np.ones((1, 2, 4, 4), dtype)
    dy[0, 0, 0, 0] = np.nan
    _, dw, _ = rc.conv2d_backward(dy, x, np.ones_like(w), 1, 1, 1, 2)
    np.testing.assert_array_equal(dw[0, 0], [[9, 12, 9], [12, np.nan, np.nan], [9, np.nan, np.nan]])


# (layer, whether "auto" takes Winograd for the forward, for the gradients): enough channels, tiles
# and work; a small layer (64 x 14 x 14: 7.2M multiply-adds); few tiles (2 x 7 x 7 outputs: 32
# tiles); 16 channels of small images (the GEMMs' depth is 16): the gradients of each of these
# three measured faster on the GEMM path, their forwards 0.30-0.97x its time on Winograd; a tiny
# layer (5 x 5 outputs, 0.06M multiply-adds), faster on the GEMM path both ways in float64.
AUTO = [(Conv(1, 64, 28, 28, 64, 3, 1, 1), True, True), (Conv(1, 64, 14, 14, 64, 3, 1, 1), True, False),
        (Conv(2, 128, 7, 7, 128, 3, 1, 1), True, False), (Conv(16, 16, 14, 14, 16, 3, 1, 1), True, False),
        (Conv(1, 16, 5, 5, 16, 3, 1, 1), False, False)]


@pytest.mark.parametrize("cfg,forward,gradients", AUTO, ids=[conv_id(c) for c, _, _ in AUTO])
def test_auto_takes_winograd_where_it_pays(rc, cfg, forward, gradients, dtype, rng):
    x, w, b, dy = _inputs(cfg, dtype, rng)
    with rc.use_conv_algorithm("auto"):
        auto = [rc.conv2d(x, w, b, *cfg.args), *rc.conv2d_backward(dy, x, w, *cfg.args)]
    with rc.use_conv_algorithm("gemm"):
        gemm = [rc.conv2d(x, w, b, *cfg.args), *rc.conv2d_backward(dy, x, w, *cfg.args)]
    for name, a, g, wino in zip(("y", "dx", "dweight"), auto, gemm, (forward, gradients, gradients)):
        assert (a.tobytes() != g.tobytes()) == wino, f"{name}: Winograd {'not ' if wino else ''}taken"


def test_empty_input_planes_with_padding(rc, conv_algo, dtype):
    """H = 0 with padding 2 still has outputs (bias only); dx is empty and has no tiles to run
    (Winograd's dx used to divide by its tile count there)."""
    x = np.zeros((1, 16, 0, 5), dtype)
    w = np.ones((16, 16, 3, 3), dtype)
    y = rc.conv2d(x, w, None, 1, 2)
    assert y.shape == (1, 16, 2, 7) and not y.any()
    dx, dw, db = rc.conv2d_backward(np.ones(y.shape, dtype), x, w, 1, 2)
    assert dx.shape == x.shape and not dw.any() and np.array_equal(db, np.full(16, 14, dtype))


def test_conv_algo_setting(rc):
    with pytest.raises(ValueError, match="winograd"):
        rc.use_conv_algorithm("direct")
    assert rc.runtime_info()["conv_algo"] == rc.get_conv_algorithm()


def _winograd_tile_bound(x, w, padding, m=2):
    """Winograd F(m x m, 3x3)'s error scale for each output: sum over input channels of (sum of |x|
    over the (m+2) x (m+2) input patch of the output's m x m tile) x (sum of |w| over the 3x3
    kernel). The transforms mix a whole patch, so this is the tile's scale, not the output's own
    window (float64)."""
    n, c, h, wd = x.shape
    (ph, pw) = pair(padding)
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    th, tw = -(-oh // m), -(-ow // m)
    xp = np.zeros((n, c, m * th + 2, m * tw + 2))
    xp[:, :, ph:ph + h, pw:pw + wd] = np.abs(x.astype(np.float64))[:, :, :m * th + 2 - ph, :m * tw + 2 - pw]
    patch = np.zeros((n, c, th, tw))
    for i in range(m + 2):
        for j in range(m + 2):
            patch += xp[:, :, i:i + m * th:m, j:j + m * tw:m]
    tile = np.einsum("ncyx,fc->nfyx", patch, np.abs(w.astype(np.float64)).sum(axis=(2, 3)))
    return np.repeat(np.repeat(tile, m, axis=2), m, axis=3)[:, :, :oh, :ow]


def test_winograd_error_model_on_exact_zeros(rc, dtype, rng):
    """Outputs that are exactly zero in a direct sum (here: a zero kernel row meets the only nonzero
    input row; pruned weights do this) stay exactly zero on the GEMM path, and on the Winograd path
    come out within float rounding of the tile's scale (docs/api.md: 2x2 tiles in float32, 4x4 in
    float64), not exactly zero."""
    x = np.zeros((1, 16, 8, 8), dtype)
    x[:, :, 2, :] = rng.standard_normal((1, 16, 8))
    w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    w[:, :, 0, :] = 0
    w[rng.random(w.shape) < 0.1] = -0.0
    exact = R.conv2d(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
    zeros = exact == 0
    assert zeros.any()
    with rc.use_conv_algorithm("gemm"):
        assert (rc.conv2d(x, w, None, 1, 1)[zeros] == 0).all()
    with rc.use_conv_algorithm("winograd"):
        y = rc.conv2d(x, w, None, 1, 1).astype(np.float64)
    bound = 16 * np.finfo(dtype).eps * _winograd_tile_bound(x, w, 1, 4 if dtype == np.float64 else 2)
    assert (np.abs(y - exact) <= bound + 4 * np.spacing(np.abs(exact))).all()


@pytest.mark.parametrize("channels,dtype,side,tile", [(16, np.float64, 8, 4), (16, np.float64, 14, 7),
                                                      (16, np.float64, 13, 7), (24, np.float64, 20, 7),
                                                      (16, np.float32, 8, 2), (16, np.float32, 14, 2),
                                                      (64, np.float64, 8, 2), (48, np.float64, 14, 4)],
                         ids=["f64-16-8", "f64-16-14", "f64-16-13", "f64-24-20", "f32-16-8", "f32-16-14", "f64-64-8",
                              "f64-48-14"])
def test_winograd_tile_size(rc, channels, dtype, side, tile, rng):
    """The tile size shows in where rounding can reach: with only input row 3 nonzero and padding 1,
    only output rows 2-4 are nonzero in a direct sum. The rows with rounding residue besides them
    tell the tile: none for 2x2 tiles; 0-1 for 4x4 (tile 0-3 reads input rows -1..4; tile 4-7 reads
    row 3 as its patch's first row, which B^T passes to its first transform alone, and A^T that to
    output row 4 alone); 0-1 and 5-6 for 7x7 (tile 0-6 reads rows -1..7). float64 runs 7x7 tiles
    where they take the fewest products (14, 13 and 20-wide planes), else 4x4 (8-wide); float32 2x2
    (its rounding would grow ~30x with 4x4); float64 64 -> 64 channels 2x2 on 8x8 (36 transformed
    64x64 kernel matrices pass 1 MiB) and 48 -> 48 4x4 on 14x14 (81 48x48 matrices would pass it)."""
    x = np.zeros((2, channels, side, side), dtype)
    x[:, :, 3, :] = rng.standard_normal((2, channels, side))
    w = rng.standard_normal((channels, channels, 3, 3)).astype(dtype)
    with rc.use_conv_algorithm("winograd"):
        y = rc.conv2d(x, w, None, 1, 1)
    assert (R.conv2d(x, w, None, 1, 1)[:, :, [r for r in range(side) if r not in (2, 3, 4)]] == 0).all()
    residue = {2: [], 4: [0, 1], 7: [0, 1, 5, 6]}[tile]
    assert [r for r in range(side) if y[:, :, r].any()] == sorted(residue + [2, 3, 4])
    exact = R.conv2d(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
    bound = 16 * np.finfo(dtype).eps * _winograd_tile_bound(x, w, 1, tile)
    assert (np.abs(y - exact) <= bound + 4 * np.spacing(np.abs(exact))).all()


@pytest.mark.parametrize("dtype,side,tile", [(np.float64, 16, 7), (np.float64, 10, 4), (np.float32, 6, 2)],
                         ids=["f64-7x7", "f64-4x4", "f32-2x2"])
def test_winograd_one_dominant_value_within_the_transforms_amplification(rc, dtype, side, tile, rng):
    """The worst case of the tile error model (docs/api.md): one nonzero input in a tile's patch (at
    each of its (m + 2)^2 places, one image each) and one nonzero tap (each of the 9): the error
    stays within k eps of the patch scale, k = 4, 114 and 2663 for 2x2, 4x4 and 7x7 tiles."""
    k = {2: 4, 4: 114, 7: 2663}[tile]
    a = tile + 2
    x = np.zeros((a * a, 16, side, side), dtype)  # 16 channels (15 zero): channels in the lanes on every ISA
    for n in range(a * a):  # tile (1, 1) of the valid convolution reads rows and columns m .. 2m + 1
        x[n, 0, tile + n // a, tile + n % a] = rng.uniform(1, 2)
    residue = False
    for tap in range(9):
        w = np.zeros((1, 16, 3, 3), dtype)
        w[0, 0, tap // 3, tap % 3] = rng.uniform(1, 2)
        with rc.use_conv_algorithm("winograd"):
            y = rc.conv2d(x, w, None, 1, 0)
        exact = R.conv2d(x.astype(np.float64), w.astype(np.float64), None, 1, 0)
        bound = k * np.finfo(dtype).eps * _winograd_tile_bound(x, w, 0, tile)
        assert (np.abs(y - exact) <= bound + 4 * np.spacing(np.abs(exact))).all(), f"tap {tap}"
        residue |= bool((y[exact == 0] != 0).any())
    assert residue == (tile > 2)  # rounding residue where the direct sum is exactly 0: the large tiles ran


@pytest.mark.parametrize("n,c,side,f", [(2, 16, 14, 16), (9, 16, 14, 20), (20, 16, 13, 16), (1, 16, 20, 24),
                                        (3, 24, 28, 16)], ids=lambda v: str(v))
def test_winograd_7x7_error_model(rc, n, c, side, f, rng):
    """float64 layers on 7x7 tiles (one block of 32 tiles with a remainder, blocks across images,
    tiles overhanging 13 and 20-wide planes): on these dense data of 16 channels or more the forward
    and dx within 16 eps of their tiles' scale (docs/api.md), dweight within the GEMM tolerance,
    none of them the GEMM path's bits."""
    x, w, b, dy = (normal(rng, s, np.float64) for s in ((n, c, side, side), (f, c, 3, 3), (f,), (n, f, side, side)))
    with rc.use_conv_algorithm("winograd"):
        y = rc.conv2d(x, w, b, 1, 1)
        dx, dw, _ = rc.conv2d_backward(dy, x, w, 1, 1)
    with rc.use_conv_algorithm("gemm"):
        gy = rc.conv2d(x, w, b, 1, 1)
        gdx, gdw, _ = rc.conv2d_backward(dy, x, w, 1, 1)
    eps = np.finfo(np.float64).eps
    ey, edx, edw = R.conv2d(x, w, b, 1, 1), *R.conv2d_backward(dy, x, w, 1, 1)[:2]
    assert (np.abs(y - ey) <= 16 * eps * _winograd_tile_bound(x, w, 1, 7) + 4 * np.spacing(np.abs(ey))).all()
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # dx: dy correlated with these, padding 1
    assert (np.abs(dx - edx) <= 16 * eps * _winograd_tile_bound(dy, flipped, 1, 7) + 4 * np.spacing(np.abs(edx))).all()
    terms = R.conv2d_backward(np.abs(dy), np.abs(x), np.ones_like(w), 1, 1)[1]
    assert_terms_close(dw, edw, terms, "dweight")
    for got, gemm_result, name in ((y, gy, "y"), (dx, gdx, "dx"), (dw, gdw, "dweight")):
        assert got.tobytes() != gemm_result.tobytes(), f"Winograd was not taken for {name}"


def test_an_output_past_the_blas_size_names_the_padding():
    import relucore

    x, w = np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"OH\*OW = \d+ \(x's 4x4 planes with padding \(40000, 40000\)"):
        relucore.conv2d(x, w, padding=40000)
