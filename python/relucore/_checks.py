"""Argument validation shared by the native layer and the NumPy reference.

Pure Python (NumPy's Python API only, never the compiled extension). Every
function raises the error the API spec (docs/api.md) prescribes:

* unsupported dtype, or operands of one call with different dtypes -> TypeError
* shape mismatch, bad size, read-only ``out``                        -> ValueError

and names the offending argument(s) in the message.

Integer arguments (sizes, strides, paddings, dilations, groups, ``input_shape``) are Python or
NumPy integers (``operator.index``; a bool or a float is a TypeError: a flag or a fraction where a
size belongs is a mistake) that fit in int64. Output sizes and the arrays a call needs (the padded
input, the column matrix) are computed with Python ints before any work starts; one of more than
:data:`MAX_BYTES` is a ValueError naming the arguments that make it so, never an overflow, a hang
or an internal error.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple, Optional, Tuple

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "check_float",
    "check_same",
    "check_out",
    "check_weight",
    "check_mask",
    "check_scalar",
    "check_x_or_mask",
    "channels_of",
    "mask_nbytes",
    # convolution path
    "check_dtypes",
    "check_4d",
    "pair",
    "check_groups",
    "check_input_shape",
    "conv_output_size",
    "output_hw",
    "check_im2col_args",
    "check_col2im_args",
    "ConvArgs",
    "check_conv_args",
    "check_conv_backward_args",
    "check_pool_args",
    "check_max_pool_backward_args",
    "check_avg_pool_backward_args",
    "check_linear_args",
    "check_linear_backward_args",
    "MAX_BYTES",
    "check_nbytes",
    "check_padded",
    # batch norm
    "BN_ACTIVATIONS",
    "BatchNormArgs",
    "BatchNormBackwardArgs",
    "check_activation",
    "check_batch_norm_args",
    "check_batch_norm_backward_args",
    "check_num_batches_tracked",
    # losses
    "REDUCTIONS",
    "check_axis",
    "check_softmax_backward_args",
    "CrossEntropyArgs",
    "check_cross_entropy_args",
]

#: The dtypes relucore computes in; anything else is rejected, never cast.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: The largest array (output, padded input, column matrix) a call may need, in bytes: far beyond
#: any memory, and small enough that every size derived from it fits in int64 with room to spare.
MAX_BYTES = 2**62

_INT64_MAX = 2**63 - 1


def check_float(name: str, a) -> np.ndarray:
    """Return ``a`` as an ndarray; TypeError unless its dtype is float32/float64."""
    a = np.asarray(a)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {a.dtype}; relucore supports float32 and float64 "
            f"only (no implicit casting)"
        )
    return a


def check_same(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """TypeError if ``a`` and ``b`` differ in dtype, ValueError if in shape."""
    if a.dtype != b.dtype:
        raise TypeError(
            f"{name_a} and {name_b} must have the same dtype, "
            f"got {a.dtype} and {b.dtype}"
        )
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {a.shape} and {b.shape}"
        )


def check_out(out, shape: tuple, dtype: np.dtype):
    """Validate an ``out=`` argument for a result of ``shape`` and ``dtype``.

    Returns ``out`` unchanged (``None`` stays ``None``).
    """
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}, the result has dtype {np.dtype(dtype)}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, the result has shape {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def channels_of(x: np.ndarray) -> int:
    """Number of channels: ``x.shape[1]`` for ``x.ndim >= 2``, else 1."""
    return x.shape[1] if x.ndim >= 2 else 1


def check_weight(weight, x: np.ndarray) -> np.ndarray:
    """PReLU weight: 1-D, 1 or ``channels_of(x)`` elements, dtype of ``x``."""
    weight = check_float("weight", weight)
    if weight.dtype != x.dtype:
        raise TypeError(
            f"weight and x must have the same dtype, got {weight.dtype} and {x.dtype}"
        )
    c = channels_of(x)
    if weight.ndim != 1 or weight.shape[0] not in (1, c):
        raise ValueError(
            f"weight must be 1-D with 1 or {c} (channels of x) elements, "
            f"got shape {weight.shape}"
        )
    return weight


def mask_nbytes(size: int) -> int:
    """Bytes of a bit mask for ``size`` elements: ``ceil(size / 8)``."""
    return (size + 7) // 8


def check_mask(mask, size: int) -> np.ndarray:
    """Bit mask: uint8 (TypeError) and 1-D of ``ceil(size / 8)`` bytes (ValueError)."""
    mask = np.asarray(mask)
    if mask.dtype != np.uint8:
        raise TypeError(f"mask must have dtype uint8, got {mask.dtype}")
    n = mask_nbytes(size)
    if mask.ndim != 1 or mask.shape[0] != n:
        raise ValueError(
            f"mask must be 1-D with {n} bytes (ceil(dy.size / 8)), got shape {mask.shape}"
        )
    return mask


def check_scalar(name: str, v) -> float:
    """A real scalar parameter (slope, alpha, grad_at_zero) as a Python float.

    Accepts what ``float()`` accepts except text (the same rule as the native binding's
    conversion): Python and NumPy numbers, bools, 0-d arrays, Fraction, Decimal.
    """
    if not isinstance(v, (str, bytes)):
        try:
            return float(v)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"{name} must be a real number, got {type(v).__name__}")


def check_x_or_mask(x, mask) -> None:
    """ValueError unless exactly one of ``x`` and ``mask`` is given."""
    if (x is None) == (mask is None):
        raise ValueError("pass exactly one of x and mask")


# --------------------------------------------------------------------------- convolution path
# Shared by relucore.reference.conv and the native conv/pool/linear wrappers, so both raise the same
# errors (docs/api.md, "Convolution path"). Each returns the parsed arguments; none computes anything.

Pair = Tuple[int, int]


def check_dtypes(*named) -> np.dtype:
    """``check_dtypes(("x", x), ("weight", w), ...)``: TypeError unless all share one dtype.

    Each array must already have passed :func:`check_float`; ``None`` entries are skipped.
    Returns the common dtype.
    """
    named = [(n, a) for n, a in named if a is not None]
    name0, a0 = named[0]
    for name, a in named[1:]:
        if a.dtype != a0.dtype:
            raise TypeError(
                f"{name0} and {name} must have the same dtype, got {a0.dtype} and {a.dtype}"
            )
    return a0.dtype


def check_4d(name: str, a: np.ndarray, what: str = "(N, C, H, W)") -> np.ndarray:
    """ValueError unless ``a`` is 4-D."""
    if a.ndim != 4:
        raise ValueError(f"{name} must be 4-D {what}, got shape {a.shape}")
    return a


def _int(name: str, v, what: str = "an int or a pair of ints", shown=None) -> int:
    """``v`` as a Python int (bools and floats rejected); TypeError "{name} must be {what}";
    ValueError if it does not fit in int64."""
    if type(v) is int and -_INT64_MAX - 1 <= v <= _INT64_MAX:  # the common case, without the generic tests
        return v
    if not isinstance(v, (bool, np.bool_)):
        try:
            i = operator.index(v)
        except TypeError:
            pass
        else:
            if -_INT64_MAX - 1 <= i <= _INT64_MAX:
                return i
            raise ValueError(f"{name} must fit in int64, got {v if shown is None else shown}")
    raise TypeError(f"{name} must be {what}, got {type(v).__name__ if shown is None else shown}")


def check_nbytes(what, shape, itemsize: int) -> None:
    """ValueError naming ``what`` (a string, or a function returning it: formatted only for the
    error) if an array of ``shape`` would exceed :data:`MAX_BYTES`.

    Zero dimensions count as 1, as in NumPy (an empty array's other dimensions must still fit).
    """
    n = itemsize
    for d in shape:
        n *= max(d, 1)
    if n > MAX_BYTES:
        what = what() if callable(what) else what
        raise ValueError(f"{what}: needs an array of shape {tuple(shape)} (about 2**{n.bit_length() - 1} "
                         f"bytes), more than 2**62 bytes")


def pair(name: str, v, minimum: int = 1) -> Pair:
    """An int or a pair ``(h, w)`` of ints as a pair of Python ints, each ``>= minimum``.

    TypeError for non-integers (floats, bools, strings), ValueError for a sequence that is
    not of length 2 or a value below ``minimum`` (1 for kernel_size, stride, dilation; 0 for
    padding).
    """
    if isinstance(v, (tuple, list)) or (isinstance(v, np.ndarray) and v.ndim == 1):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {len(v)} values: {v!r}")
        h, w = _int(name, v[0]), _int(name, v[1])
    else:
        h = w = _int(name, v)
    if h < minimum or w < minimum:
        what = "non-negative" if minimum == 0 else "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {what}, got {v!r}")
    return h, w


def check_groups(groups) -> int:
    """``groups`` as a positive Python int."""
    g = _int("groups", groups, "an int")
    if g < 1:
        raise ValueError(f"groups must be positive, got {g}")
    return g


def check_input_shape(input_shape) -> Tuple[int, int, int, int]:
    """``input_shape`` as a 4-tuple of non-negative Python ints ``(N, C, H, W)``."""
    try:
        dims = tuple(input_shape)
    except TypeError:
        raise TypeError(
            f"input_shape must be a sequence (N, C, H, W), got {type(input_shape).__name__}"
        ) from None
    if len(dims) != 4:
        raise ValueError(f"input_shape must have 4 entries (N, C, H, W), got {input_shape!r}")
    out = []
    for d in dims:
        d = _int("input_shape", d, "a sequence of ints", shown=repr(input_shape))
        if d < 0:
            raise ValueError(f"input_shape must be non-negative, got {input_shape!r}")
        out.append(d)
    return tuple(out)


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """``(size + 2*padding - dilation*(kernel-1) - 1) // stride + 1`` (may be < 1; no check)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_hw(hw, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
              kernel_name: str = "kernel_size", x_name: str = "x") -> Pair:
    """Output ``(OH, OW)``; ValueError naming ``kernel_name`` if the (dilated) kernel is
    larger than the padded input, i.e. an output size would be < 1."""
    oh = conv_output_size(hw[0], kernel[0], stride[0], padding[0], dilation[0])
    ow = conv_output_size(hw[1], kernel[1], stride[1], padding[1], dilation[1])
    if oh < 1 or ow < 1:
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        padded = tuple(s + 2 * p for s, p in zip(hw, padding))
        raise ValueError(
            f"{kernel_name}: the kernel {tuple(kernel)} (dilation {tuple(dilation)}, span {span}) "
            f"is larger than the padded input {padded} of {x_name} (size {tuple(hw)}, "
            f"padding {tuple(padding)}); the output size would be {(oh, ow)}"
        )
    return oh, ow


def check_padded(shape, padding: Pair, itemsize: int, x_name: str = "x") -> None:
    """ValueError naming ``padding`` if the zero-padded input ``(N, C, H+2ph, W+2pw)`` would
    exceed :data:`MAX_BYTES` (the reference builds it; every window lies inside it)."""
    n, c, h, w = shape
    padded = (n, c, h + 2 * padding[0], w + 2 * padding[1])
    check_nbytes(lambda: f"padding {tuple(padding)} of {x_name} {tuple(shape)}", padded, itemsize)


def check_im2col_args(x, kernel_size, stride, padding, dilation):
    """im2col: returns ``(x, kernel, stride, padding, dilation, (OH, OW))``."""
    x = check_4d("x", check_float("x", x))
    k = pair("kernel_size", kernel_size)
    s = pair("stride", stride)
    p = pair("padding", padding, minimum=0)
    d = pair("dilation", dilation)
    check_padded(x.shape, p, x.itemsize)
    ohw = output_hw(x.shape[2:], k, s, p, d)
    check_nbytes(lambda: f"im2col output for kernel_size {k}, stride {s}, padding {p}, dilation {d}",
                 (x.shape[0], x.shape[1] * k[0] * k[1], ohw[0] * ohw[1]), x.itemsize)
    return x, k, s, p, d, ohw


def check_col2im_args(cols, input_shape, kernel_size, stride, padding, dilation):
    """col2im: ``cols`` must be ``(N, C*kh*kw, OH*OW)`` for ``input_shape = (N, C, H, W)``.

    Returns ``(cols, input_shape, kernel, stride, padding, dilation, (OH, OW))``.
    """
    cols = check_float("cols", cols)
    shape = check_input_shape(input_shape)
    k = pair("kernel_size", kernel_size)
    s = pair("stride", stride)
    p = pair("padding", padding, minimum=0)
    d = pair("dilation", dilation)
    n, c, h, w = shape
    check_nbytes("input_shape", shape, cols.itemsize)
    check_padded(shape, p, cols.itemsize, "input_shape")
    oh, ow = output_hw((h, w), k, s, p, d, x_name="input_shape")
    expect = (n, c * k[0] * k[1], oh * ow)
    if cols.shape != expect:
        raise ValueError(
            f"cols has shape {cols.shape}; input_shape {shape} with kernel_size {k}, stride {s}, "
            f"padding {p}, dilation {d} needs (N, C*kh*kw, OH*OW) = {expect}"
        )
    return cols, shape, k, s, p, d, (oh, ow)


class ConvArgs(NamedTuple):
    """Parsed conv2d arguments (all sizes plain Python ints)."""

    x: np.ndarray
    weight: np.ndarray
    bias: Optional[np.ndarray]
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int
    kernel: Pair       # (kh, kw) = weight.shape[2:]
    out_hw: Pair       # (OH, OW)

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        return (self.x.shape[0], self.weight.shape[0]) + tuple(self.out_hw)


def check_conv_args(x, weight, bias, stride, padding, dilation, groups) -> ConvArgs:
    """conv2d: dtypes, x/weight 4-D, groups divide C and F, weight.shape[1] == C // groups,
    bias ``(F,)`` or None, kernel no larger than the padded input."""
    x = check_float("x", x)
    weight = check_float("weight", weight)
    if bias is not None:
        bias = check_float("bias", bias)
    check_dtypes(("x", x), ("weight", weight), ("bias", bias))
    check_4d("x", x)
    check_4d("weight", weight, "(F, C/groups, kh, kw)")
    g = check_groups(groups)
    s = pair("stride", stride)
    p = pair("padding", padding, minimum=0)
    d = pair("dilation", dilation)
    c, f = x.shape[1], weight.shape[0]
    if c % g:
        raise ValueError(f"groups={g} must divide the input channels of x, got C={c}")
    if f % g:
        raise ValueError(f"groups={g} must divide the output channels of weight, got F={f}")
    if weight.shape[1] != c // g:
        raise ValueError(
            f"weight.shape[1] must be C/groups = {c}/{g} = {c // g}, got weight shape {weight.shape}"
        )
    if bias is not None and bias.shape != (f,):
        raise ValueError(f"bias must have shape (F,) = ({f},), got {bias.shape}")
    k = (weight.shape[2], weight.shape[3])
    if k[0] < 1 or k[1] < 1:
        raise ValueError(f"weight must have a non-empty kernel, got shape {weight.shape}")
    check_padded(x.shape, p, x.itemsize)
    ohw = output_hw(x.shape[2:], k, s, p, d, kernel_name="weight")
    n, isz = x.shape[0], x.itemsize
    check_nbytes(lambda: f"conv2d output for weight {weight.shape}, stride {s}, padding {p}", (n, f) + ohw, isz)
    check_nbytes(lambda: f"columns of x for weight {weight.shape}, stride {s}, padding {p}, dilation {d}",
                 (n, c * k[0] * k[1], ohw[0] * ohw[1]), isz)
    return ConvArgs(x, weight, bias, s, p, d, g, k, ohw)


def check_conv_backward_args(dy, x, weight, stride, padding, dilation, groups) -> ConvArgs:
    """conv2d_backward: the conv2d checks on ``(x, weight)`` plus ``dy`` of the output's shape
    and dtype. Returns the :class:`ConvArgs` (bias None); ``dy`` is checked, not returned."""
    dy = check_float("dy", dy)
    a = check_conv_args(x, weight, None, stride, padding, dilation, groups)
    check_dtypes(("dy", dy), ("x", a.x))
    if dy.shape != a.out_shape:
        raise ValueError(
            f"dy has shape {dy.shape}, but the conv2d output for x {a.x.shape} and weight "
            f"{a.weight.shape} has shape {a.out_shape}"
        )
    return a


def check_pool_args(x, kernel_size, stride, padding):
    """max_pool2d / avg_pool2d: returns ``(x, kernel, stride, padding, (OH, OW))``.

    ``stride=None`` means ``kernel_size``; padding must be at most half the kernel
    (``2 * padding <= kernel``, as PyTorch).
    """
    x = check_4d("x", check_float("x", x))
    k, s, p, ohw = _pool_params(x.shape, kernel_size, stride, padding, "x", x.itemsize)
    return x, k, s, p, ohw


def _pool_params(shape, kernel_size, stride, padding, x_name, itemsize):
    if shape[2] == 0 or shape[3] == 0:  # a window of padding alone has no maximum (PyTorch refuses too)
        raise ValueError(f"{x_name} must have a non-zero height and width for pooling, got {tuple(shape)}")
    k = pair("kernel_size", kernel_size)
    s = k if stride is None else pair("stride", stride)
    p = pair("padding", padding, minimum=0)
    if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
        raise ValueError(
            f"padding must be at most half of kernel_size, got padding {p} and kernel_size {k}"
        )
    check_padded(shape, p, itemsize, x_name)
    return k, s, p, output_hw(shape[2:], k, s, p, (1, 1), x_name=x_name)


def check_max_pool_backward_args(dy, indices, input_shape, check_range=True):
    """max_pool2d_backward: dy 4-D float, indices int64 of dy's shape with values in
    ``[0, H*W)``, input_shape ``(N, C, H, W)`` matching dy's N and C.

    Returns ``(dy, indices, input_shape)``. ``check_range=False`` skips the scan of the values
    (for a caller that checks them while it scatters).
    """
    dy = check_4d("dy", check_float("dy", dy))
    indices = np.asarray(indices)
    if indices.dtype != np.int64:
        raise TypeError(f"indices must have dtype int64, got {indices.dtype}")
    if indices.shape != dy.shape:
        raise ValueError(f"indices and dy must have the same shape, got {indices.shape} and {dy.shape}")
    shape = check_input_shape(input_shape)
    check_nbytes("input_shape", shape, dy.itemsize)
    if shape[:2] != dy.shape[:2]:
        raise ValueError(
            f"input_shape {shape} does not match dy {dy.shape}: N and C must be equal"
        )
    plane = shape[2] * shape[3]
    if check_range and indices.size and (indices.min() < 0 or indices.max() >= plane):
        raise ValueError(
            f"indices must lie in [0, H*W) = [0, {plane}) for input_shape {shape}, "
            f"got values in [{indices.min()}, {indices.max()}]"
        )
    return dy, indices, shape


def check_avg_pool_backward_args(dy, input_shape, kernel_size, stride, padding):
    """avg_pool2d_backward: returns ``(dy, input_shape, kernel, stride, padding, (OH, OW))``;
    dy must have the forward output's shape."""
    dy = check_4d("dy", check_float("dy", dy))
    shape = check_input_shape(input_shape)
    check_nbytes("input_shape", shape, dy.itemsize)
    k, s, p, ohw = _pool_params(shape, kernel_size, stride, padding, "input_shape", dy.itemsize)
    expect = shape[:2] + ohw
    if dy.shape != expect:
        raise ValueError(
            f"dy has shape {dy.shape}, but avg_pool2d of input_shape {shape} with kernel_size {k}, "
            f"stride {s}, padding {p} has output shape {expect}"
        )
    return dy, shape, k, s, p, ohw


def check_linear_args(x, weight, bias):
    """linear: x ``(*, in)`` at least 1-D, weight ``(out, in)``, bias ``(out,)`` or None.

    Returns ``(x, weight, bias)``.
    """
    x = check_float("x", x)
    weight = check_float("weight", weight)
    if bias is not None:
        bias = check_float("bias", bias)
    check_dtypes(("x", x), ("weight", weight), ("bias", bias))
    if x.ndim < 1:
        raise ValueError("x must be at least 1-D (*, in_features), got a 0-d array")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if weight.shape[1] != x.shape[-1]:
        raise ValueError(
            f"weight.shape[1] must equal in_features = x.shape[-1] = {x.shape[-1]}, "
            f"got weight shape {weight.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape (out_features,) = ({weight.shape[0]},), got {bias.shape}")
    check_nbytes(lambda: f"linear output for x {x.shape} and weight {weight.shape}",
                 x.shape[:-1] + (weight.shape[0],), x.itemsize)
    return x, weight, bias


def check_linear_backward_args(dy, x, weight):
    """linear_backward: the linear checks plus ``dy.shape == x.shape[:-1] + (out,)``.

    Returns ``(dy, x, weight)``.
    """
    dy = check_float("dy", dy)
    x, weight, _ = check_linear_args(x, weight, None)
    check_dtypes(("dy", dy), ("x", x))
    expect = x.shape[:-1] + (weight.shape[0],)
    if dy.shape != expect:
        raise ValueError(
            f"dy has shape {dy.shape}, but linear of x {x.shape} and weight {weight.shape} "
            f"has output shape {expect}"
        )
    return dy, x, weight


# --------------------------------------------------------------------------- batch norm
# Shared by relucore.reference.norm and the native relucore.norm, so both raise the same errors.

#: Activations batch norm can fuse: name -> default parameter (None: takes no parameter).
BN_ACTIVATIONS = {"relu": None, "leaky_relu": 0.01, "elu": 1.0}


class BatchNormArgs(NamedTuple):
    """Parsed batch_norm arguments; ``act`` is None, "relu", "leaky_relu" or "elu"."""

    x: np.ndarray
    running_mean: Optional[np.ndarray]
    running_var: Optional[np.ndarray]
    weight: Optional[np.ndarray]
    bias: Optional[np.ndarray]
    momentum: Optional[float]
    eps: float
    act: Optional[str]
    param: float


def check_activation(activation) -> Tuple[Optional[str], float]:
    """``None``, ``"relu"``, ``"leaky_relu"``/``("leaky_relu", slope)`` or ``"elu"``/``("elu", alpha)``
    as ``(name, parameter)``."""
    if activation is None:
        return None, 0.0
    if isinstance(activation, str):
        name, param = activation, None
    elif isinstance(activation, tuple) and len(activation) == 2 and isinstance(activation[0], str):
        name, param = activation
    else:
        raise TypeError(
            "activation must be None, 'relu', ('leaky_relu', slope) or ('elu', alpha), "
            f"got {activation!r}"
        )
    if name not in BN_ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(BN_ACTIVATIONS)} (or None), got {name!r}"
        )
    default = BN_ACTIVATIONS[name]
    if default is None:
        if param is not None:
            raise ValueError(f"activation 'relu' takes no parameter, got {activation!r}")
        return name, 0.0
    what = "slope" if name == "leaky_relu" else "alpha"
    return name, default if param is None else check_scalar(f"activation {what}", param)


def _channel_vector(name: str, a, x: np.ndarray, writeable: bool = False) -> np.ndarray:
    a = check_float(name, a)
    check_dtypes(("x", x), (name, a))
    c = x.shape[1]
    if a.shape != (c,):
        raise ValueError(f"{name} must have shape (C,) = ({c},) for x of shape {x.shape}, got {a.shape}")
    if writeable and not (isinstance(a, np.ndarray) and a.flags.writeable):
        raise ValueError(f"{name} must be a writeable array: training updates it in place")
    return a


def _bn_x(x) -> np.ndarray:
    x = check_float("x", x)
    if not 2 <= x.ndim <= 5:
        raise ValueError(
            f"x must be (N, C) or (N, C, *spatial) with 1 to 3 spatial dims, got shape {x.shape}"
        )
    return x


def check_batch_norm_args(x, running_mean, running_var, weight, bias, training, momentum, eps,
                          activation, num_batches_tracked=None) -> BatchNormArgs:
    """batch_norm: x (N, C, *) float; running buffers, weight, bias (C,) of x's dtype or None.

    Training needs more than one value per channel and writeable running buffers (both or neither);
    eval needs both. ``momentum=None`` (cumulative average) needs ``num_batches_tracked``, which is
    checked whenever given.
    """
    x = _bn_x(x)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must both be arrays or both be None")
    if running_mean is not None:
        running_mean = _channel_vector("running_mean", running_mean, x, writeable=training)
        running_var = _channel_vector("running_var", running_var, x, writeable=training)
    elif not training:
        raise ValueError("running_mean and running_var are required in evaluation mode (training=False)")
    if weight is not None:
        weight = _channel_vector("weight", weight, x)
    if bias is not None:
        bias = _channel_vector("bias", bias, x)
    if training:
        per_channel = math.prod(x.shape[:1] + x.shape[2:])  # as PyTorch counts it, also with no channels
        if per_channel == 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got x of shape {x.shape}"
            )
    if momentum is not None:
        momentum = check_scalar("momentum", momentum)
    if num_batches_tracked is not None or (momentum is None and training and running_mean is not None):
        check_num_batches_tracked(num_batches_tracked)
    act, param = check_activation(activation)
    return BatchNormArgs(x, running_mean, running_var, weight, bias, momentum,
                         check_scalar("eps", eps), act, param)


def check_num_batches_tracked(n) -> np.ndarray:
    """The batch counter for ``momentum=None``: a writeable 0-d int64 array."""
    if not (isinstance(n, np.ndarray) and n.dtype == np.int64 and n.shape == ()):
        raise ValueError(
            "num_batches_tracked must be a 0-d int64 array (the batch counter, updated in place) "
            f"when momentum is None, got {type(n).__name__ if not isinstance(n, np.ndarray) else n.dtype}"
        )
    if not n.flags.writeable:
        raise ValueError("num_batches_tracked must be writeable: training increments it in place")
    return n


class BatchNormBackwardArgs(NamedTuple):
    dy: np.ndarray
    x: Optional[np.ndarray]
    y: Optional[np.ndarray]
    weight: Optional[np.ndarray]
    bias: Optional[np.ndarray]
    save_mean: np.ndarray
    save_invstd: np.ndarray
    act: Optional[str]
    param: float


def check_batch_norm_backward_args(dy, x, weight, save_mean, save_invstd, bias, activation,
                                   y) -> BatchNormBackwardArgs:
    """batch_norm_backward: dy like x (or y); exactly one of x and y; the y-only form needs an
    invertible activation (none, leaky_relu with slope > 0, elu with alpha > 0) and a weight
    without zeros."""
    dy = _bn_x(dy)
    if (x is None) == (y is None):
        raise ValueError("pass exactly one of x (the forward input) and y (the forward output)")
    s_name, s = ("x", x) if x is not None else ("y", y)
    s = check_float(s_name, s)
    check_same("dy", dy, s_name, s)
    weight = None if weight is None else _channel_vector("weight", weight, dy)
    bias = None if bias is None else _channel_vector("bias", bias, dy)
    save_mean = _channel_vector("save_mean", save_mean, dy)
    save_invstd = _channel_vector("save_invstd", save_invstd, dy)
    act, param = check_activation(activation)
    if x is None:
        if act == "relu":
            raise ValueError(
                "the y-only backward (x=None) needs an invertible activation: relu maps every "
                "negative input to 0, so x cannot be recovered from y; pass x, or use "
                "('leaky_relu', slope > 0) or ('elu', alpha > 0)"
            )
        if act is not None and not param > 0:
            raise ValueError(
                f"the y-only backward (x=None) needs an invertible activation: {act} with "
                f"parameter {param} is not (it must be > 0)"
            )
        if weight is not None and np.any(weight == 0):
            raise ValueError("the y-only backward (x=None) divides by weight: it must have no zeros")
    return BatchNormBackwardArgs(dy, x if x is None else s, y if y is None else s, weight, bias,
                                 save_mean, save_invstd, act, param)


# --------------------------------------------------------------------------- losses

REDUCTIONS = ("mean", "sum", "none")


def check_axis(axis, ndim: int) -> int:
    """``axis`` as an index in ``[0, ndim)`` (negative counts from the end; a 0-d array has the one
    axis 0 of its single value)."""
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an int, got {type(axis).__name__}") from None
    n = max(ndim, 1)
    if not -n <= a < n:
        raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
    return a % n


def check_softmax_backward_args(dy, y, axis) -> Tuple[np.ndarray, np.ndarray, int]:
    """dy and the forward output y: float, same dtype and shape."""
    dy = check_float("dy", dy)
    y = check_float("y", y)
    check_same("dy", dy, "y", y)
    return dy, y, check_axis(axis, dy.ndim)


class CrossEntropyArgs(NamedTuple):
    """Parsed cross_entropy arguments: logits as (N, C, S) with N, S the batch and spatial sizes
    (``shape`` is the caller's), target as int64 (N, S) class indices or (N, C, S) probabilities."""

    logits: np.ndarray
    target: np.ndarray
    probabilities: bool
    reduction: str
    label_smoothing: float
    ignore_index: int
    shape: tuple  # the loss's shape for reduction="none"


def check_cross_entropy_args(logits, target, reduction, label_smoothing, ignore_index) -> CrossEntropyArgs:
    """cross_entropy: logits (C,), (N, C) or (N, C, *); target class indices shaped like logits
    without the class axis (integers in [0, C) or ``ignore_index``) or class probabilities shaped
    like the logits, of their dtype."""
    x = check_float("logits", logits)
    if x.ndim == 0:
        raise ValueError("logits must be (C,), (N, C) or (N, C, *spatial), got a 0-d array")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    eps = check_scalar("label_smoothing", label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {eps}")
    if isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError("ignore_index must be an int, got bool")
    try:
        ignore = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}") from None
    batched = x.ndim > 1
    c = x.shape[1] if batched else x.shape[0]
    if c == 0:
        raise ValueError(f"logits must have at least one class, got shape {x.shape}")
    x3 = x.reshape((x.shape[0], c, int(np.prod(x.shape[2:], dtype=np.int64))) if batched else (1, c, 1))
    t = np.asarray(target)
    loss_shape = (x.shape[:1] + x.shape[2:]) if batched else ()
    if t.dtype.kind in "iu":
        if t.shape != loss_shape:
            raise ValueError(
                f"target of class indices must have shape {loss_shape} for logits of shape {x.shape}, "
                f"got {t.shape}"
            )
        t64 = t.astype(np.int64, copy=False)
        bad = (t64 < 0) | (t64 >= c)
        if -_INT64_MAX - 1 <= ignore <= _INT64_MAX:
            bad &= t64 != ignore
        if t.dtype == np.uint64:
            bad |= t > _INT64_MAX  # would wrap in int64
        if np.any(bad):
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"target has class {t[where]} at index {where}: logits have {c} classes "
                f"(valid targets are 0..{c - 1} and ignore_index={ignore})"
            )
        if not -_INT64_MAX - 1 <= ignore <= _INT64_MAX:
            ignore = -1  # matches no int64 target, and none is negative here
        return CrossEntropyArgs(x3, t64.reshape(x3.shape[0], x3.shape[2]), False, reduction, eps, ignore,
                                loss_shape)
    if t.dtype.kind == "f":
        if t.shape == loss_shape and t.shape != x.shape:
            raise TypeError(
                f"target of shape {t.shape} holds class indices, which must be integers, got dtype {t.dtype}"
            )
        if t.shape != x.shape:
            raise ValueError(
                f"target of class probabilities must have the logits' shape {x.shape}, got {t.shape}"
            )
        if t.dtype != x.dtype:
            raise TypeError(
                f"target of class probabilities must have the logits' dtype {x.dtype}, got {t.dtype}"
            )
        return CrossEntropyArgs(x3, t.reshape(x3.shape), True, reduction, eps, -1, loss_shape)
    raise TypeError(
        f"target must hold integer class indices or float32/float64 class probabilities, got dtype {t.dtype}"
    )
