"""conv2d(..., activation=): the fused native convolution against the reference convolution followed
by the reference activation, and bitwise against the native convolution followed by the native
activation, on every ISA, GEMM backend and 3x3 algorithm; the reference's own activation; and the
batch-norm errors for bad spellings."""

from __future__ import annotations

import numpy as np
import pytest
import relucore.reference as R
from _conv_helpers import KINDS, SPECIAL, Conv, assert_terms_close, conv_id, normal, view
from _helpers import assert_bitwise

#: Every spelling: the bare names take the default parameter (leaky_relu 0.01, elu 1.0).
ACTIVATIONS = [None, "relu", "leaky_relu", ("leaky_relu", 0.2), ("leaky_relu", -1.5), "elu", ("elu", 0.5)]


def act_id(act) -> str:
    return "none" if act is None else act if isinstance(act, str) else f"{act[0]}{act[1]}"


def ref_activation(y, act, m=R):
    """The activation the spelling names, of module ``m`` (the reference or relucore), applied to ``y``."""
    name, param = (act, None) if act is None or isinstance(act, str) else act
    if name is None:
        return y
    if name == "relu":
        return m.relu(y)
    if name == "leaky_relu":
        return m.leaky_relu(y, 0.01 if param is None else param)
    return m.elu(y, 1.0 if param is None else param)


def lipschitz(act) -> float:
    """A bound on |act'|: rounding differences of the convolution grow by at most this."""
    if act is None or isinstance(act, str):
        return 1.0
    return max(1.0, abs(act[1]))


# Each output-writing path: depth blocks of the GEMM (C*kh*kw > 256 and > 512: the activation
# follows the last one), planes wider than a column block (> 480 columns), 1x1 layers (GEMM on x
# as is, activated after the call), depthwise (stride 1 and 2, edge columns), groups, dilation,
# padding, and 3x3 stride-1 layers that Winograd takes (odd output sizes: partial tiles).
DEPTH2, DEPTH3 = Conv(2, 32, 6, 6, 8, 3, 1, 1), Conv(1, 64, 5, 5, 10, 3, 1, 1)  # 288 and 576 deep
WIDE = Conv(1, 2, 25, 27, 9, 3, 1, 1)                          # 675 columns
POINTWISE = Conv(1, 4, 24, 24, 64, 1)                          # 1x1, 576 columns
COLUMNS = Conv(1, 3, 24, 24, 64, 3, 1, 1)                      # im2col + GEMM, 576 columns
DW_STRIDE2 = Conv(2, 8, 9, 9, 16, 3, 2, 1, 1, 8)               # depthwise (multiplier 2), stride 2
DW_STRIDE1 = Conv(2, 8, 9, 10, 8, (3, 5), 1, (1, 2), 1, 8)     # depthwise, stride 1, edge columns
GROUPS = Conv(2, 6, 9, 9, 4, 3, 1, 2, 2, 2)                    # groups, dilation
WINO = Conv(3, 16, 9, 7, 16, 3, 1, 1)                          # Winograd-eligible, partial tiles
WINO_BATCH1 = Conv(1, 20, 15, 15, 24, 3, 1, 0)                 # Winograd-eligible, batch 1, no padding
WINO_GROUPS = Conv(2, 18, 8, 8, 16, 3, 1, 1, 1, 2)             # Winograd-eligible, 2 groups
STRIDE2 = Conv(1, 4, 7, 7, 6, 3, 2, 1)
SHAPES = SPECIAL + [DEPTH2, DEPTH3, WIDE, POINTWISE, COLUMNS, DW_STRIDE2, DW_STRIDE1, GROUPS, WINO, WINO_BATCH1,
                    WINO_GROUPS, STRIDE2]


def check_fused(m, cfg, x, w, b, acts, what=""):
    """m.conv2d(..., activation=act) for each act against the reference activation of the reference
    convolution, within the convolution's rounding bound times the activation's slope, and bitwise
    against m's own activation of m's own convolution."""
    pre = R.conv2d(x, w, b, *cfg.args)
    plain = m.conv2d(x, w, b, *cfg.args)
    ab = None if b is None else np.abs(b.astype(np.float64))
    terms = R.conv2d(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), ab, *cfg.args)
    for act in acts:
        got = m.conv2d(x, w, b, *cfg.args, activation=act)
        what_ = f"conv2d {cfg} activation={act!r} {what}"
        assert_terms_close(got, ref_activation(pre, act), terms * lipschitz(act), what_)
        assert_bitwise(got, ref_activation(plain, act, m), what_ + " (fused vs separate)")


@pytest.mark.parametrize("cfg", SHAPES, ids=conv_id)
def test_fused_activation_native(rc, gemm, conv_algo, cfg, dtype, rng):
    x, w, b = normal(rng, cfg.x_shape, dtype), normal(rng, cfg.w_shape, dtype), normal(rng, cfg.f, dtype)
    saved = [a.copy() for a in (x, w, b)]
    check_fused(rc, cfg, x, w, b, ACTIVATIONS)
    check_fused(rc, cfg, x, w, None, ["relu", "elu"], "no bias")
    for a, s in zip((x, w, b), saved):
        assert_bitwise(a, s, "input modified")


@pytest.mark.parametrize("cfg", [COLUMNS, POINTWISE, DW_STRIDE1, DW_STRIDE2, WINO, SPECIAL[2]], ids=conv_id)
def test_fused_activation_special_values(rc, gemm, conv_algo, cfg, dtype, rng):
    """NaN, +-inf and -0.0 in x reach the outputs as the reference gives them (relu(NaN) is NaN,
    elu(-inf) is -alpha; Winograd declines such data and the GEMM path runs); an input of -0.0
    alone gives zeros."""
    x = normal(rng, cfg.x_shape, dtype)
    flat = x.reshape(-1)
    at = rng.choice(flat.size, size=max(4, flat.size // 40), replace=False)
    flat[at] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0], dtype), size=at.size)
    w, b = normal(rng, cfg.w_shape, dtype), normal(rng, cfg.f, dtype)
    check_fused(rc, cfg, x, w, b, ACTIVATIONS[1:])
    check_fused(rc, cfg, np.full(cfg.x_shape, -0.0, dtype), w, None, ACTIVATIONS[1:], "x = -0.0")


@pytest.mark.parametrize("kind", KINDS)
def test_fused_activation_layouts(rc, kind, dtype, rng):
    cfg = Conv(2, 4, 7, 6, 6, 3, 1, 1, 1, 2)
    x, w, b = normal(rng, cfg.x_shape, dtype), normal(rng, cfg.w_shape, dtype), normal(rng, cfg.f, dtype)
    check_fused(rc, cfg, view(x, kind), view(w, kind), view(b, kind), [("elu", 0.7)], kind)


EXTREME = [("leaky_relu", 2.0**100), ("leaky_relu", 1e-320), ("leaky_relu", np.nan), ("elu", np.inf), ("elu", -2.0),
           ("elu", 1e308), ("leaky_relu", 0.0)]


@pytest.mark.parametrize("act", EXTREME, ids=act_id)
def test_extreme_parameters(rc, act, dtype, rng):
    """Parameters beyond the dtype's range round to it (1e308 is inf in float32), as the
    reference's activation does."""
    cfg = Conv(2, 3, 6, 6, 4, 3, 1, 1)
    x, w, b = normal(rng, cfg.x_shape, dtype), normal(rng, cfg.w_shape, dtype), normal(rng, cfg.f, dtype)
    with np.errstate(all="ignore"):
        check_fused(rc, cfg, x, w, b, [act])


def test_activation_none_is_the_plain_convolution(rc, dtype, rng):
    cfg = Conv(2, 16, 9, 9, 16, 3, 1, 1)
    x, w, b = normal(rng, cfg.x_shape, dtype), normal(rng, cfg.w_shape, dtype), normal(rng, cfg.f, dtype)
    assert_bitwise(rc.conv2d(x, w, b, *cfg.args, activation=None), rc.conv2d(x, w, b, *cfg.args))
    assert_bitwise(R.conv2d(x, w, b, *cfg.args, activation=None), R.conv2d(x, w, b, *cfg.args))


@pytest.mark.parametrize("act", ACTIVATIONS, ids=act_id)
def test_reference_activation_is_the_activation_of_the_convolution(act, dtype, rng):
    cfg = Conv(2, 4, 6, 5, 6, 3, 1, 1, 1, 2)
    x, w, b = normal(rng, cfg.x_shape, dtype), normal(rng, cfg.w_shape, dtype), normal(rng, cfg.f, dtype)
    y = R.conv2d(x, w, b, *cfg.args, activation=act)
    assert_bitwise(y, ref_activation(R.conv2d(x, w, b, *cfg.args), act))


def test_literal():
    x = np.array([[[[1.0, -2.0], [3.0, -4.0]]]])
    w = np.ones((1, 1, 1, 1))
    for m in (R, __import__("relucore")):
        assert_bitwise(m.conv2d(x, w, activation="relu"), np.array([[[[1.0, 0.0], [3.0, 0.0]]]]))
        assert_bitwise(m.conv2d(x, w, np.array([1.0]), activation=("leaky_relu", 0.5)),
                       np.array([[[[2.0, -0.5], [4.0, -1.5]]]]))
        assert_bitwise(m.conv2d(x, -w, activation="leaky_relu"), np.array([[[[-0.01, 2.0], [-0.03, 4.0]]]]))
        np.testing.assert_allclose(m.conv2d(x, w, activation=("elu", 2.0)),
                                   np.array([[[[1.0, 2 * np.expm1(-2.0)], [3.0, 2 * np.expm1(-4.0)]]]]), rtol=1e-15)


def test_empty_output_with_activation(rc):
    x, w = np.zeros((0, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    for m in (rc, R):
        y = m.conv2d(x, w, activation="elu")
        assert y.shape == (0, 3, 3, 3) and y.dtype == np.float32


BAD = ["gelu", "ReLU", ("relu", 0.1), ("leaky_relu", "x"), ("elu", None, 1.0), ("elu",), 3, ["relu", 0.1],
       ("leaky_relu", [0.1]), (1.0, "elu"), b"relu", ("elu", 1j)]


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bad_activation_raises_the_batch_norm_error(rc, bad):
    x, w = np.ones((1, 2, 3, 3), np.float32), np.ones((2, 2, 1, 1), np.float32)
    with pytest.raises((TypeError, ValueError)) as bn:
        R.batch_norm(x, None, None, training=True, activation=bad)
    for conv in (rc.conv2d, R.conv2d):
        with pytest.raises(bn.type) as e:
            conv(x, w, activation=bad)
        assert str(e.value) == str(bn.value) and "activation" in str(e.value)


@pytest.mark.parametrize("act", ["relu", ("leaky_relu", 0.1)], ids=act_id)
def test_backward_from_the_fused_output(rc, act, dtype, rng):
    """docs/api.md: relu_backward and leaky_relu_backward (positive slope) give the same gradient
    from the fused output y as from the pre-activation."""
    cfg = Conv(2, 3, 8, 8, 4, 3, 1, 1)
    x, w, dy = normal(rng, cfg.x_shape, dtype), normal(rng, cfg.w_shape, dtype), normal(rng, cfg.y_shape, dtype)
    x.reshape(-1)[:5] = [np.nan, -0.0, 0.0, np.inf, -np.inf]
    z, y = rc.conv2d(x, w, None, *cfg.args), rc.conv2d(x, w, None, *cfg.args, activation=act)
    if act == "relu":
        assert_bitwise(rc.relu_backward(dy, y), rc.relu_backward(dy, z))
    else:
        assert_bitwise(rc.leaky_relu_backward(dy, y, act[1]), rc.leaky_relu_backward(dy, z, act[1]))
