"""Bad arguments to the convolution path: the reference and the native functions raise the same
documented errors (docs/api.md), naming the argument; both use relucore._checks, so the messages
are identical too."""

from __future__ import annotations

import numpy as np
import pytest
import relucore.reference as reference

F32 = np.float32


def arrays(dtype=F32):
    """Valid arrays for every function: x (2, 4, 5, 5), groups 2, 3x3 kernels, 2x2 pools."""
    return {
        "x": np.ones((2, 4, 5, 5), dtype),
        "weight": np.ones((6, 2, 3, 3), dtype),
        "bias": np.ones(6, dtype),
        "dy_conv": np.ones((2, 6, 3, 3), dtype),
        "cols": np.ones((2, 36, 9), dtype),
        "dy_pool": np.ones((2, 4, 2, 2), dtype),
        "indices": np.zeros((2, 4, 2, 2), np.int64),
        "lx": np.ones((3, 5), dtype),
        "lw": np.ones((4, 5), dtype),
        "lb": np.ones(4, dtype),
        "ldy": np.ones((3, 4), dtype),
    }


SHAPE = (2, 4, 5, 5)

# name -> (call(module, arrays), [(argument name in the API, key in arrays)] of the float operands)
FUNCS = {
    "im2col": (lambda m, a: m.im2col(a["x"], 3), [("x", "x")]),
    "col2im": (lambda m, a: m.col2im(a["cols"], SHAPE, 3), [("cols", "cols")]),
    "conv2d": (lambda m, a: m.conv2d(a["x"], a["weight"], a["bias"], groups=2),
               [("x", "x"), ("weight", "weight"), ("bias", "bias")]),
    "conv2d_backward": (lambda m, a: m.conv2d_backward(a["dy_conv"], a["x"], a["weight"], groups=2),
                        [("dy", "dy_conv"), ("x", "x"), ("weight", "weight")]),
    "max_pool2d": (lambda m, a: m.max_pool2d(a["x"], 2), [("x", "x")]),
    "max_pool2d_backward": (lambda m, a: m.max_pool2d_backward(a["dy_pool"], a["indices"], SHAPE),
                            [("dy", "dy_pool")]),
    "avg_pool2d": (lambda m, a: m.avg_pool2d(a["x"], 2), [("x", "x")]),
    "avg_pool2d_backward": (lambda m, a: m.avg_pool2d_backward(a["dy_pool"], SHAPE, 2), [("dy", "dy_pool")]),
    "linear": (lambda m, a: m.linear(a["lx"], a["lw"], a["lb"]), [("x", "lx"), ("weight", "lw"), ("bias", "lb")]),
    "linear_backward": (lambda m, a: m.linear_backward(a["ldy"], a["lx"], a["lw"]),
                        [("dy", "ldy"), ("x", "lx"), ("weight", "lw")]),
}

BAD_DTYPES = [np.int32, np.int64, np.uint8, np.float16, np.complex64, np.bool_, object]
if np.dtype(np.longdouble) != np.dtype(np.float64):
    BAD_DTYPES.append(np.longdouble)


@pytest.fixture(params=["ref", "native"])
def m(request):
    if request.param == "ref":
        return reference
    return request.getfixturevalue("rc")


@pytest.fixture
def rc():  # errors come from Python-side checks: one ISA is enough (overrides conftest's rc)
    import relucore

    return relucore


def call(m, name, a):
    return FUNCS[name][0](m, a)


@pytest.mark.parametrize("name", FUNCS)
def test_valid_arguments_pass(m, name):
    for dtype in (np.float32, np.float64):
        call(m, name, arrays(dtype))


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCS)
def test_unsupported_dtype(m, name, bad):
    for arg, key in FUNCS[name][1]:
        a = arrays()
        a[key] = a[key].astype(bad)
        with pytest.raises(TypeError, match="float32 and float64") as info:
            call(m, name, a)
        assert arg in str(info.value), f"{name}: the message should name {arg!r}: {info.value}"


@pytest.mark.parametrize("name", [n for n in FUNCS if len(FUNCS[n][1]) > 1])
def test_mixed_dtypes(m, name):
    for arg, key in FUNCS[name][1][1:]:
        a = arrays()
        a[key] = a[key].astype(np.float64)
        with pytest.raises(TypeError, match=arg) as info:
            call(m, name, a)
        assert "float32" in str(info.value) and "float64" in str(info.value)


@pytest.mark.parametrize("bad", [np.int32, np.float64, np.uint64])
def test_indices_dtype(m, bad):
    a = arrays()
    a["indices"] = a["indices"].astype(bad)
    with pytest.raises(TypeError, match="indices.*int64"):
        call(m, "max_pool2d_backward", a)


# (id, function, call(m, arrays), exception, a regex the message must match: the argument's name)
X, W = "x", "weight"
BAD = [
    # conv2d
    ("conv x 3-D", "conv2d", lambda m, a: m.conv2d(a[X][0], a[W], groups=2), ValueError, r"\bx\b.*4-D"),
    ("conv x 5-D", "conv2d", lambda m, a: m.conv2d(a[X][None], a[W], groups=2), ValueError, r"\bx\b.*4-D"),
    ("conv weight 3-D", "conv2d", lambda m, a: m.conv2d(a[X], a[W][0], groups=2), ValueError, r"weight.*4-D"),
    ("groups !| C", "conv2d", lambda m, a: m.conv2d(a[X], np.ones((6, 1, 3, 3), F32), groups=3), ValueError, r"groups"),
    ("groups !| F", "conv2d", lambda m, a: m.conv2d(a[X], np.ones((5, 2, 3, 3), F32), groups=2), ValueError, r"groups"),
    ("weight.shape[1]", "conv2d", lambda m, a: m.conv2d(a[X], np.ones((6, 4, 3, 3), F32), groups=2), ValueError, r"weight"),
    ("weight.shape[1] g1", "conv2d", lambda m, a: m.conv2d(a[X], a[W]), ValueError, r"weight"),
    ("bias size", "conv2d", lambda m, a: m.conv2d(a[X], a[W], np.ones(5, F32), groups=2), ValueError, r"bias"),
    ("bias 2-D", "conv2d", lambda m, a: m.conv2d(a[X], a[W], np.ones((6, 1), F32), groups=2), ValueError, r"bias"),
    ("kernel > input", "conv2d", lambda m, a: m.conv2d(a[X], np.ones((6, 2, 6, 3), F32), groups=2), ValueError, r"weight"),
    ("dilated kernel > input", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=2, dilation=3), ValueError, r"weight"),
    ("kernel > padded input", "conv2d", lambda m, a: m.conv2d(a[X], np.ones((6, 2, 8, 3), F32), padding=1, groups=2),
     ValueError, r"weight"),
    ("stride 0", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=2, stride=0), ValueError, r"stride"),
    ("stride -1", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=2, stride=(1, -1)), ValueError, r"stride"),
    ("dilation 0", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=2, dilation=0), ValueError, r"dilation"),
    ("padding -1", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=2, padding=-1), ValueError, r"padding"),
    ("groups 0", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=0), ValueError, r"groups"),
    ("groups float", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=2.0), TypeError, r"groups"),
    ("stride float", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=2, stride=1.5), TypeError, r"stride"),
    ("padding triple", "conv2d", lambda m, a: m.conv2d(a[X], a[W], groups=2, padding=(1, 1, 1)), ValueError, r"padding"),
    # conv2d_backward
    ("dy shape", "conv2d_backward", lambda m, a: m.conv2d_backward(np.ones((2, 6, 3, 4), F32), a[X], a[W], groups=2),
     ValueError, r"\bdy\b"),
    ("dy channels", "conv2d_backward", lambda m, a: m.conv2d_backward(np.ones((2, 5, 3, 3), F32), a[X], a[W], groups=2),
     ValueError, r"\bdy\b"),
    ("dy for other stride", "conv2d_backward",
     lambda m, a: m.conv2d_backward(a["dy_conv"], a[X], a[W], stride=2, groups=2), ValueError, r"\bdy\b"),
    ("bwd groups", "conv2d_backward", lambda m, a: m.conv2d_backward(a["dy_conv"], a[X], a[W], groups=3),
     ValueError, r"groups"),
    ("bwd x 3-D", "conv2d_backward", lambda m, a: m.conv2d_backward(a["dy_conv"], a[X][0], a[W], groups=2),
     ValueError, r"\bx\b"),
    # im2col / col2im
    ("im2col x 3-D", "im2col", lambda m, a: m.im2col(a[X][0], 3), ValueError, r"\bx\b.*4-D"),
    ("im2col kernel 0", "im2col", lambda m, a: m.im2col(a[X], 0), ValueError, r"kernel_size"),
    ("im2col kernel > input", "im2col", lambda m, a: m.im2col(a[X], (2, 6)), ValueError, r"kernel_size"),
    ("im2col stride 0", "im2col", lambda m, a: m.im2col(a[X], 3, stride=0), ValueError, r"stride"),
    ("im2col padding -1", "im2col", lambda m, a: m.im2col(a[X], 3, padding=(0, -1)), ValueError, r"padding"),
    ("im2col dilation 0", "im2col", lambda m, a: m.im2col(a[X], 3, dilation=0), ValueError, r"dilation"),
    ("im2col kernel str", "im2col", lambda m, a: m.im2col(a[X], "3"), TypeError, r"kernel_size"),
    ("cols shape", "col2im", lambda m, a: m.col2im(np.ones((2, 36, 8), F32), SHAPE, 3), ValueError, r"cols"),
    ("cols rows", "col2im", lambda m, a: m.col2im(np.ones((2, 35, 9), F32), SHAPE, 3), ValueError, r"cols"),
    ("cols 2-D", "col2im", lambda m, a: m.col2im(np.ones((36, 9), F32), SHAPE, 3), ValueError, r"cols"),
    ("input_shape 3", "col2im", lambda m, a: m.col2im(a["cols"], (2, 4, 5), 3), ValueError, r"input_shape"),
    ("input_shape neg", "col2im", lambda m, a: m.col2im(a["cols"], (2, 4, -5, 5), 3), ValueError, r"input_shape"),
    ("col2im kernel > input", "col2im", lambda m, a: m.col2im(a["cols"], (2, 4, 2, 2), 3), ValueError, r"kernel_size"),
    # pooling
    ("pool x 3-D", "max_pool2d", lambda m, a: m.max_pool2d(a[X][0], 2), ValueError, r"\bx\b.*4-D"),
    ("pool padding > k/2", "max_pool2d", lambda m, a: m.max_pool2d(a[X], 3, padding=2), ValueError, r"padding"),
    ("pool padding > k/2 w", "max_pool2d", lambda m, a: m.max_pool2d(a[X], (3, 1), padding=(1, 1)), ValueError,
     r"padding"),
    ("pool stride 0", "max_pool2d", lambda m, a: m.max_pool2d(a[X], 2, stride=0), ValueError, r"stride"),
    ("pool kernel 0", "max_pool2d", lambda m, a: m.max_pool2d(a[X], 0), ValueError, r"kernel_size"),
    ("pool kernel > input", "max_pool2d", lambda m, a: m.max_pool2d(a[X], (6, 2)), ValueError, r"kernel_size"),
    ("pool padding -1", "max_pool2d", lambda m, a: m.max_pool2d(a[X], 2, padding=-1), ValueError, r"padding"),
    ("avg padding > k/2", "avg_pool2d", lambda m, a: m.avg_pool2d(a[X], 2, padding=2), ValueError, r"padding"),
    ("avg x 2-D", "avg_pool2d", lambda m, a: m.avg_pool2d(a[X][0, 0], 2), ValueError, r"\bx\b.*4-D"),
    ("avg kernel > input", "avg_pool2d", lambda m, a: m.avg_pool2d(a[X], 8, padding=1), ValueError, r"kernel_size"),
    ("indices shape", "max_pool2d_backward",
     lambda m, a: m.max_pool2d_backward(a["dy_pool"], a["indices"][:, :, :1], SHAPE), ValueError, r"indices"),
    ("indices range", "max_pool2d_backward",
     lambda m, a: m.max_pool2d_backward(a["dy_pool"], a["indices"] + 25, SHAPE), ValueError, r"indices"),
    ("indices negative", "max_pool2d_backward",
     lambda m, a: m.max_pool2d_backward(a["dy_pool"], a["indices"] - 1, SHAPE), ValueError, r"indices"),
    ("maxbwd input_shape N", "max_pool2d_backward",
     lambda m, a: m.max_pool2d_backward(a["dy_pool"], a["indices"], (3, 4, 5, 5)), ValueError, r"input_shape"),
    ("maxbwd input_shape C", "max_pool2d_backward",
     lambda m, a: m.max_pool2d_backward(a["dy_pool"], a["indices"], (2, 3, 5, 5)), ValueError, r"input_shape"),
    ("maxbwd input_shape 3", "max_pool2d_backward",
     lambda m, a: m.max_pool2d_backward(a["dy_pool"], a["indices"], (2, 4, 25)), ValueError, r"input_shape"),
    ("maxbwd dy 3-D", "max_pool2d_backward",
     lambda m, a: m.max_pool2d_backward(a["dy_pool"][0], a["indices"][0], SHAPE), ValueError, r"\bdy\b"),
    ("avgbwd dy shape", "avg_pool2d_backward",
     lambda m, a: m.avg_pool2d_backward(np.ones((2, 4, 3, 2), F32), SHAPE, 2), ValueError, r"\bdy\b"),
    ("avgbwd dy for other stride", "avg_pool2d_backward",
     lambda m, a: m.avg_pool2d_backward(a["dy_pool"], SHAPE, 2, stride=1), ValueError, r"\bdy\b"),
    ("avgbwd input_shape", "avg_pool2d_backward",
     lambda m, a: m.avg_pool2d_backward(a["dy_pool"], (2, 5, 5, 5), 2), ValueError, r"\bdy\b|input_shape"),
    ("avgbwd padding > k/2", "avg_pool2d_backward",
     lambda m, a: m.avg_pool2d_backward(a["dy_pool"], SHAPE, 2, padding=2), ValueError, r"padding"),
    # linear
    ("linear x 0-d", "linear", lambda m, a: m.linear(np.float32(1.0), a["lw"]), ValueError, r"\bx\b"),
    ("linear weight 1-D", "linear", lambda m, a: m.linear(a["lx"], a["lw"][0]), ValueError, r"weight"),
    ("linear weight 3-D", "linear", lambda m, a: m.linear(a["lx"], a["lw"][None]), ValueError, r"weight"),
    ("linear in_features", "linear", lambda m, a: m.linear(a["lx"], np.ones((4, 6), F32)), ValueError, r"weight"),
    ("linear bias", "linear", lambda m, a: m.linear(a["lx"], a["lw"], np.ones(5, F32)), ValueError, r"bias"),
    ("linbwd dy shape", "linear_backward", lambda m, a: m.linear_backward(np.ones((3, 5), F32), a["lx"], a["lw"]),
     ValueError, r"\bdy\b"),
    ("linbwd dy lead", "linear_backward", lambda m, a: m.linear_backward(np.ones((2, 4), F32), a["lx"], a["lw"]),
     ValueError, r"\bdy\b"),
    ("linbwd in_features", "linear_backward",
     lambda m, a: m.linear_backward(a["ldy"], np.ones((3, 6), F32), a["lw"]), ValueError, r"weight"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments(m, case):
    _, name, f, exc, pattern = case
    with pytest.raises(exc, match=pattern):
        f(m, arrays())


def _message(m, f, a):
    try:
        f(m, a)
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    return None


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_native_and_reference_say_the_same(rc, case):
    _, name, f, exc, pattern = case
    assert _message(rc, f, arrays()) == _message(reference, f, arrays())


def test_pool_padding_at_half_kernel_is_fine(m):
    x = np.ones((1, 1, 4, 4), F32)
    for k, p in ((2, 1), (3, 1), (4, 2), ((2, 4), (1, 2))):
        m.max_pool2d(x, k, padding=p)
        m.avg_pool2d(x, k, padding=p)


def test_kernel_equal_to_padded_input_is_fine(m):
    y = m.conv2d(np.ones((1, 2, 3, 3), F32), np.ones((1, 2, 5, 5), F32), padding=1)
    assert y.shape == (1, 1, 1, 1)
    assert m.im2col(np.ones((1, 2, 3, 3), F32), 5, padding=1).shape == (1, 50, 1)


def test_pairs_and_numpy_ints_accepted(m):
    a = arrays()
    y = m.conv2d(a[X], a[W], None, (np.int64(1), 1), [1, np.int32(1)], np.array([1, 1]), np.int64(2))
    assert y.shape == (2, 6, 5, 5)


def test_inputs_as_lists(m):
    assert m.linear([1.0, 2.0], [[1.0, 1.0]]).tolist() == [3.0]
