"""max_pool2d / avg_pool2d and their backward: PyTorch facts as literals (ties, NaN, padding,
count_include_pad), numeric gradients, and the native functions against the reference on every ISA."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import numpy as np
import pytest
import relucore.reference as R
from _conv_helpers import KINDS, assert_grad, assert_terms_close, numeric_grad, pair, view
from _helpers import assert_bitwise, make_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAN, INF = np.nan, np.inf
IntOrPair = Union[int, Tuple[int, int]]


def img(rows, dtype=np.float64):
    """A (1, 1, H, W) image from nested lists."""
    return np.array(rows, dtype=dtype).reshape((1, 1) + np.shape(rows))


# --------------------------------------------------------------------------- reference: literals
# The values below were produced by torch 2.13 (CPU), float32 and float64.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
class TestMaxPoolFacts:
    def test_ties_take_the_first(self, dtype):
        y, i = R.max_pool2d(img([[1.0, 3.0], [3.0, 2.0]], dtype), 2)
        assert_bitwise(y, img([[3.0]], dtype))
        assert_bitwise(i, img([[1]], np.int64))
        y, i = R.max_pool2d(img([[2.0, 5.0, 5.0, 1.0]], dtype), (1, 4))
        assert_bitwise(i, img([[1]], np.int64))

    def test_signed_zeros_tie(self, dtype):
        y, i = R.max_pool2d(img([[-0.0, 0.0]], dtype), (1, 2))
        assert np.signbit(y).all() and i.item() == 0
        y, i = R.max_pool2d(img([[0.0, -0.0]], dtype), (1, 2))
        assert not np.signbit(y).any() and i.item() == 0

    def test_nan_wins_last_nan_index(self, dtype):
        y, i = R.max_pool2d(img([[1.0, NAN, 3.0, NAN]], dtype), (1, 4))
        assert np.isnan(y).all() and i.item() == 3
        y, i = R.max_pool2d(img([[NAN, 1.0, NAN, 2.0]], dtype), (1, 2), stride=1)
        assert np.isnan(y).all()
        assert_bitwise(i, img([[0, 2, 2]], np.int64))
        y, i = R.max_pool2d(img([[NAN, INF], [INF, 1.0]], dtype), 2)
        assert np.isnan(y).all() and i.item() == 0
        y, i = R.max_pool2d(img([[INF, NAN]], dtype), (1, 2))
        assert np.isnan(y).all() and i.item() == 1

    def test_all_minus_inf_returns_first_real_pixel(self, dtype):
        y, i = R.max_pool2d(img([[-INF, -INF, -INF]], dtype), (1, 3), stride=1, padding=(0, 1))
        assert_bitwise(y, img([[-INF, -INF, -INF]], dtype))
        assert_bitwise(i, img([[0, 0, 1]], np.int64))

    def test_padding_never_wins(self, dtype):
        # 2x2 windows, stride 2, padding 1 on a 2x2 image of negatives: each window holds one pixel
        y, i = R.max_pool2d(img([[-1.0, -2.0], [-3.0, -4.0]], dtype), 2, padding=1)
        assert_bitwise(y, img([[-1.0, -2.0], [-3.0, -4.0]], dtype))
        assert_bitwise(i, img([[0, 1], [2, 3]], np.int64))
        y, i = R.max_pool2d(img([[-5.0, -1.0, -7.0]], dtype), 3, stride=1, padding=1)
        assert_bitwise(y, img([[-1.0, -1.0, -1.0]], dtype))
        assert_bitwise(i, img([[1, 1, 1]], np.int64))

    def test_stride_defaults_to_kernel(self, dtype):
        x = np.arange(36, dtype=dtype).reshape(1, 1, 6, 6)
        y, i = R.max_pool2d(x, (2, 3))
        assert_bitwise(y, img([[8.0, 11.0], [20.0, 23.0], [32.0, 35.0]], dtype))
        assert_bitwise(i, img([[8, 11], [20, 23], [32, 35]], np.int64))
        assert R.max_pool2d(x, 2, stride=1)[0].shape == (1, 1, 5, 5)

    def test_backward_scatter_adds(self, dtype):
        # overlapping windows sharing one maximum: its gradient is the sum
        x = img([[0.0, 5.0, 0.0]], dtype)
        y, i = R.max_pool2d(x, (1, 2), stride=1)
        assert_bitwise(i, img([[1, 1]], np.int64))
        dx = R.max_pool2d_backward(img([[2.0, 3.0]], dtype), i, x.shape)
        assert_bitwise(dx, img([[0.0, 5.0, 0.0]], dtype))

    def test_backward_literal(self, dtype):
        dx = R.max_pool2d_backward(img([[5.0]], dtype), img([[1]], np.int64), (1, 1, 2, 2))
        assert_bitwise(dx, img([[0.0, 5.0], [0.0, 0.0]], dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
class TestAvgPoolFacts:
    def test_count_include_pad(self, dtype):
        x = np.ones((1, 1, 3, 3), dtype)
        y = R.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=True)
        expect = [[0.25, 0.5, 0.5, 0.25], [0.5, 1, 1, 0.5], [0.5, 1, 1, 0.5], [0.25, 0.5, 0.5, 0.25]]
        assert_bitwise(y, img(expect, dtype))
        y = R.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False)
        assert_bitwise(y, np.ones((1, 1, 4, 4), dtype))

    def test_values(self, dtype):
        x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
        assert_bitwise(R.avg_pool2d(x, 2), img([[2.5, 4.5], [10.5, 12.5]], dtype))
        assert_bitwise(R.avg_pool2d(x, (1, 4)), img([[1.5], [5.5], [9.5], [13.5]], dtype))
        assert_bitwise(R.avg_pool2d(x, 3, stride=1), img([[5.0, 6.0], [9.0, 10.0]], dtype))

    def test_nan_propagates(self, dtype):
        y = R.avg_pool2d(img([[1.0, NAN, 2.0, 3.0]], dtype), (1, 2))
        assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 2.5

    def test_backward(self, dtype):
        assert_bitwise(R.avg_pool2d_backward(np.ones((1, 1, 1, 1), dtype), (1, 1, 2, 2), 2),
                       np.full((1, 1, 2, 2), 0.25, dtype))
        dy = np.ones((1, 1, 2, 2), dtype)
        # 2x2 kernel, stride 2, padding 1 on 2x2: each window holds one real pixel
        assert_bitwise(R.avg_pool2d_backward(dy, (1, 1, 2, 2), 2, padding=1), np.full((1, 1, 2, 2), 0.25, dtype))
        assert_bitwise(R.avg_pool2d_backward(dy, (1, 1, 2, 2), 2, padding=1, count_include_pad=False),
                       np.ones((1, 1, 2, 2), dtype))
        # overlapping windows sum: 2x2 kernel, stride 1 on 3x3
        got = R.avg_pool2d_backward(np.full((1, 1, 2, 2), 4.0, dtype), (1, 1, 3, 3), 2, stride=1)
        assert_bitwise(got, img([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]], dtype))


# --------------------------------------------------------------------------- configurations


class Pool(NamedTuple):
    n: int
    c: int
    h: int
    w: int
    kernel: IntOrPair
    stride: Optional[IntOrPair] = None
    padding: IntOrPair = 0

    @property
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def args(self):
        return self.kernel, self.stride, self.padding

    @property
    def overlapping(self):
        k, s = pair(self.kernel), pair(self.kernel if self.stride is None else self.stride)
        return s[0] < k[0] or s[1] < k[1]

    def __str__(self):
        return f"x{self.x_shape} k{self.kernel} s{self.stride} p{self.padding}"


def pool_id(p):
    return f"n{p.n}c{p.c}h{p.h}w{p.w}k{p.kernel}s{p.stride}p{p.padding}".replace(" ", "")


POOLS = [
    Pool(2, 3, 8, 8, 2),                          # the usual 2x2/2
    Pool(2, 3, 7, 9, 2),                          # odd sizes: the last row/column dropped
    Pool(2, 3, 7, 7, 3, 2, 1),                    # ResNet stem pool
    Pool(2, 3, 6, 6, 3, 1, 1),                    # overlapping, padded
    Pool(2, 2, 6, 7, (2, 3), (1, 2), (1, 1)),     # rectangular everything
    Pool(2, 2, 5, 6, (3, 2), None, (1, 0)),
    Pool(1, 4, 5, 5, 1),                          # 1x1
    Pool(1, 4, 5, 5, 1, 2),                       # 1x1 stride 2
    Pool(2, 3, 5, 4, (5, 4)),                     # kernel == input size
    Pool(1, 2, 3, 3, 4, 1, 2),                    # kernel larger than the image, padding k/2
    Pool(1, 5, 9, 8, 4, 3, 2),                    # batch 1, stride < kernel, padding k/2
    Pool(2, 16, 12, 12, 2, 2),                    # more channels (threads)
    Pool(3, 1, 1, 1, 1),                          # 1 pixel
    Pool(2, 3, 6, 70, 2),                         # 2x2/2 rows of 35 outputs: whole vectors and a remainder
    Pool(1, 2, 7, 67, 2),                         # odd width and height: the last column/row unused
    Pool(2, 3, 24, 24, 2),                        # 2x2/2 rows narrower than a vector: masked stores
    Pool(2, 2, 9, 13, 2),                         # narrow rows, odd width and height
    Pool(1, 3, 4, 3, 2),                          # one output per row
]


def tie_data(rng, shape, dtype):
    """Small integers (many ties) with NaN, +-inf, +-0 mixed in."""
    x = rng.integers(-3, 4, shape).astype(dtype)
    r = rng.random(shape)
    x[r < 0.05] = NAN
    x[(r >= 0.05) & (r < 0.1)] = -INF
    x[(r >= 0.1) & (r < 0.12)] = INF
    x[(r >= 0.12) & (r < 0.2)] = -0.0
    return x


def distinct_data(rng, shape):
    """float64 values at least 0.01 apart: no finite-difference step changes an argmax."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.01 - 0.5 * n * 0.01 + rng.uniform(0, 0.001)).reshape(shape)


# --------------------------------------------------------------------------- gradients (float64)


MAX_GRAD = [POOLS[2], POOLS[4], POOLS[5], POOLS[8]]
AVG_GRAD = [POOLS[2], POOLS[4], POOLS[5], POOLS[9]]


@pytest.mark.parametrize("cfg", MAX_GRAD, ids=pool_id)
def test_max_pool2d_backward_numeric(cfg):
    _max_numeric(R, cfg)


@pytest.mark.parametrize("cfg", MAX_GRAD, ids=pool_id)
def test_max_pool2d_backward_numeric_native(rc, cfg):
    _max_numeric(rc, cfg)


@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("cfg", AVG_GRAD, ids=pool_id)
def test_avg_pool2d_backward_numeric(cfg, cip):
    _avg_numeric(R, cfg, cip)


@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("cfg", AVG_GRAD, ids=pool_id)
def test_avg_pool2d_backward_numeric_native(rc, cfg, cip):
    _avg_numeric(rc, cfg, cip)


def _max_numeric(m, cfg):
    fwd, back = m.max_pool2d, m.max_pool2d_backward
    rng = np.random.default_rng(5)
    x = distinct_data(rng, cfg.x_shape)
    y, idx = fwd(x, *cfg.args)
    dy = rng.standard_normal(y.shape)
    num = numeric_grad(lambda v: np.sum(dy * fwd(v, *cfg.args)[0]), x)
    assert_grad(back(dy, idx, x.shape), num, str(cfg))


def _avg_numeric(m, cfg, cip):
    fwd, back = m.avg_pool2d, m.avg_pool2d_backward
    rng = np.random.default_rng(6)
    x = rng.standard_normal(cfg.x_shape)
    dy = rng.standard_normal(fwd(x, *cfg.args, count_include_pad=cip).shape)
    num = numeric_grad(lambda v: np.sum(dy * fwd(v, *cfg.args, count_include_pad=cip)), x)
    assert_grad(back(dy, x.shape, *cfg.args, count_include_pad=cip), num, str(cfg))


# --------------------------------------------------------------------------- native vs reference


def check_max(m, cfg, x, dy_seed=0, what=""):
    y, idx = m.max_pool2d(x, *cfg.args)
    ey, eidx = R.max_pool2d(x, *cfg.args)
    assert_bitwise(y, ey, f"max_pool2d y {cfg} {what}")
    assert_bitwise(idx, eidx, f"max_pool2d indices {cfg} {what}")
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(x.dtype)
    got = m.max_pool2d_backward(dy, idx, x.shape)
    exp = R.max_pool2d_backward(dy, eidx, x.shape)
    if cfg.overlapping:  # a pixel may collect several dy: the order of the sum may differ
        terms = R.max_pool2d_backward(np.abs(dy.astype(np.float64)), eidx, x.shape)
        assert_terms_close(got, exp, terms, f"max_pool2d_backward {cfg} {what}", rtol=8 * np.finfo(x.dtype).eps)
    else:
        assert_bitwise(got, exp, f"max_pool2d_backward {cfg} {what}")


def check_avg(m, cfg, x, cip, dy_seed=0, what=""):
    rtol = 8 * np.finfo(x.dtype).eps
    y = m.avg_pool2d(x, *cfg.args, count_include_pad=cip)
    ey = R.avg_pool2d(x, *cfg.args, count_include_pad=cip)
    terms = R.avg_pool2d(np.abs(x.astype(np.float64)), *cfg.args, count_include_pad=cip)
    assert_terms_close(y, ey, terms, f"avg_pool2d {cfg} cip={cip} {what}", rtol=rtol)
    dy = np.random.default_rng(dy_seed).standard_normal(ey.shape).astype(x.dtype)
    got = m.avg_pool2d_backward(dy, x.shape, *cfg.args, count_include_pad=cip)
    exp = R.avg_pool2d_backward(dy, x.shape, *cfg.args, count_include_pad=cip)
    terms = R.avg_pool2d_backward(np.abs(dy.astype(np.float64)), x.shape, *cfg.args, count_include_pad=cip)
    assert_terms_close(got, exp, terms, f"avg_pool2d_backward {cfg} cip={cip} {what}", rtol=rtol)


@pytest.mark.parametrize("cfg", POOLS, ids=pool_id)
def test_max_pool2d_native(rc, cfg, dtype, rng):
    x = tie_data(rng, cfg.x_shape, dtype)
    saved = x.copy()
    check_max(rc, cfg, x)
    check_max(rc, cfg, make_data(rng, cfg.x_shape, dtype), what="specials")
    check_max(rc, cfg, np.full(cfg.x_shape, -INF, dtype), what="all -inf")
    assert_bitwise(x, saved, "input modified")


@pytest.mark.parametrize("cip", [True, False], ids=["include_pad", "exclude_pad"])
@pytest.mark.parametrize("cfg", POOLS, ids=pool_id)
def test_avg_pool2d_native(rc, cfg, cip, dtype, rng):
    x = rng.standard_normal(cfg.x_shape).astype(dtype)
    check_avg(rc, cfg, x, cip)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cfg", [POOLS[2], POOLS[4]], ids=pool_id)
def test_layouts_native(rc, cfg, kind, dtype, rng):
    x = view(tie_data(rng, cfg.x_shape, dtype), kind)
    check_max(rc, cfg, x, what=kind)
    check_avg(rc, cfg, view(rng.standard_normal(cfg.x_shape).astype(dtype), kind), True, what=kind)
    # dy and indices in that layout for the backward functions
    y, idx = R.max_pool2d(x, *cfg.args)
    dy = view(rng.standard_normal(y.shape).astype(dtype), kind)
    got = rc.max_pool2d_backward(dy, view(idx, kind), x.shape)
    terms = R.max_pool2d_backward(np.abs(dy.astype(np.float64)), idx, x.shape)
    assert_terms_close(got, R.max_pool2d_backward(dy, idx, x.shape), terms, kind, rtol=8 * np.finfo(dtype).eps)
    got = rc.avg_pool2d_backward(dy, x.shape, *cfg.args)
    terms = R.avg_pool2d_backward(np.abs(dy.astype(np.float64)), x.shape, *cfg.args)
    assert_terms_close(got, R.avg_pool2d_backward(dy, x.shape, *cfg.args), terms, kind, rtol=8 * np.finfo(dtype).eps)


@st.composite
def pool_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    return Pool(draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w, (kh, kw), stride, (ph, pw))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=pool_configs(), seed=st.integers(0, 2**32 - 1), f64=st.booleans(), cip=st.booleans())
def test_random_configs_native(rc, cfg, seed, f64, cip):
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(seed)
    check_max(rc, cfg, tie_data(rng, cfg.x_shape, dtype), seed)
    check_avg(rc, cfg, rng.standard_normal(cfg.x_shape).astype(dtype), cip, seed)


def test_empty_batch(rc, dtype):
    x = np.zeros((0, 3, 4, 4), dtype)
    for m in (R, rc):
        y, idx = m.max_pool2d(x, 2)
        assert y.shape == idx.shape == (0, 3, 2, 2) and y.dtype == dtype and idx.dtype == np.int64
        assert m.max_pool2d_backward(y, idx, x.shape).shape == x.shape
        assert m.avg_pool2d(x, 2).shape == (0, 3, 2, 2)
        assert m.avg_pool2d_backward(y, x.shape, 2).shape == x.shape


def test_threads_native(rc, dtype, rng):
    cfg = Pool(4, 16, 16, 16, 3, 1, 1)
    x = rng.standard_normal(cfg.x_shape).astype(dtype)
    before = rc.get_num_threads()
    res = []
    try:
        for t in (1, 2):
            rc.set_num_threads(t)
            y, idx = rc.max_pool2d(x, *cfg.args)
            res.append((y, idx, rc.max_pool2d_backward(y, idx, x.shape), rc.avg_pool2d(x, *cfg.args),
                        rc.avg_pool2d_backward(y, x.shape, *cfg.args)))
    finally:
        rc.set_num_threads(before)
    for a, b in zip(*res):  # no reductions across threads: identical
        assert_bitwise(b, a, "2 threads vs 1")
