"""Argument validation shared by the native layer and the NumPy reference.

Pure Python (NumPy's Python API only, never the compiled extension). Every
function raises the error the API spec (docs/api.md) prescribes:

* unsupported dtype, or operands of one call with different dtypes -> TypeError
* shape mismatch, bad size, read-only ``out``                        -> ValueError

and names the offending argument(s) in the message.
"""

from __future__ import annotations

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
]

#: The dtypes relucore computes in; anything else is rejected, never cast.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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
