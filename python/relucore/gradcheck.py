"""Numeric-versus-analytic gradient checks for backward functions and layer objects."""

from __future__ import annotations

import numbers
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["gradcheck", "GradcheckReport", "GradientCheck", "GradcheckError"]


class GradientCheck:
    """The comparison for one input or parameter: whether every entry passed, the worst entry's
    relative error, ``index``, ``analytic`` and ``numeric`` values, and how many entries were
    checked."""

    __slots__ = ("name", "passed", "max_rel_error", "index", "analytic", "numeric", "entries")

    def __init__(self, name: str, passed: bool, max_rel_error: float, index: Tuple[int, ...], analytic: float,
                 numeric: float, entries: int) -> None:
        self.name, self.passed, self.max_rel_error, self.index = name, passed, max_rel_error, index
        self.analytic, self.numeric, self.entries = analytic, numeric, entries

    def __repr__(self) -> str:
        return f"GradientCheck({self})"

    def __str__(self) -> str:
        status = "passed" if self.passed else "FAILED"
        if not self.entries:
            return f"{self.name}: {status} (no entries)"
        return (f"{self.name}: {status}, max rel error {self.max_rel_error:.3g} at {self.index}: "
                f"analytic {self.analytic:.10g}, numeric {self.numeric:.10g} ({self.entries} entries checked)")


class GradcheckReport:
    """What :func:`gradcheck` found: ``passed``, ``max_rel_error`` and one :class:`GradientCheck`
    per input or parameter in ``checks`` (also reachable by name with ``report["w"]``). Truthy when
    it passed."""

    def __init__(self, checks: List[GradientCheck]) -> None:
        self.checks = checks

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def __getitem__(self, name: str) -> GradientCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        head = f"GradcheckReport(passed={self.passed}, max_rel_error={self.max_rel_error:.3g})"
        return "\n  ".join([head] + [str(c) for c in self.checks])


class GradcheckError(AssertionError):
    """Raised by ``gradcheck(..., raise_on_failure=True)`` when a gradient does not match; the
    message is the report."""


def _is_float_array(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _output(result, who: str) -> Tuple[np.ndarray, Any, bool]:
    """(out as float64, cache, whether there was a cache) from a forward's return value."""
    has_cache = isinstance(result, tuple)
    if has_cache and len(result) != 2:
        raise TypeError(f"{who} must return an array or a pair (out, cache), got a tuple of {len(result)}")
    out = result[0] if has_cache else result
    arr = np.asarray(out)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{who} must return a real array or scalar, got {type(out).__name__} of dtype {arr.dtype}")
    return arr.astype(np.float64), (result[1] if has_cache else None), has_cache


def gradcheck(f: Union[Tuple[Callable, Callable], Any], inputs: Union[np.ndarray, Sequence[Any]], *,
              eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7, dout: Optional[np.ndarray] = None,
              max_entries: Optional[int] = None, seed: int = 0,
              raise_on_failure: bool = False) -> GradcheckReport:
    r"""Compare analytic gradients with central differences, in float64.

    With an upstream gradient ``dout`` (random normal unless given), the scalar
    :math:`L = \sum out \cdot dout` is differentiated numerically,
    :math:`\partial L / \partial a_j \approx (L(a_j + \epsilon) - L(a_j - \epsilon)) / 2\epsilon`,
    entry by entry, and compared with what the backward returned. An entry passes when
    :math:`|g_a - g_n| \le \max(rtol\,(|g_a| + |g_n|),\ atol)`; its relative error is
    :math:`|g_a - g_n| / \max(|g_a| + |g_n|,\ atol / rtol)` (CS231n's ``rel_error``, except that
    gradients smaller than ``atol / rtol`` are judged on the absolute difference), so a check
    passes exactly when its ``max_rel_error <= rtol``.

    ``f`` is either

    - a pair ``(forward, backward)``: ``forward(*inputs)`` returns ``out``, and
      ``backward(dout)`` the gradients, one per input in order (trailing inputs without gradients,
      such as labels or a ``conv_param`` dict, may be left out; ``None`` skips one). A forward that
      returns ``(out, cache)``, as :mod:`relucore.layers` functions do, is called as
      ``backward(dout, cache)``. Float inputs are copied to float64 first; the others are passed
      unchanged. Or
    - an object with ``forward(x)`` and ``backward(dout) -> dx`` (a layer of :mod:`relucore.nn`,
      or anything shaped like one): ``inputs`` is ``x``. Its parameters, from
      ``named_parameters()`` or ``parameters()`` when it has them (objects with ``.data`` and
      ``.grad``; ``data`` must be float64), are checked too: ``zero_grad()`` (or setting each
      ``.grad`` to ``None``) precedes the backward, whose accumulated ``.grad`` is the analytic
      gradient. Each numeric evaluation calls ``forward`` again, so a layer in training mode
      updates its running statistics meanwhile; use layers whose forward is deterministic
      (no dropout in training mode).

    Args:
        f: ``(forward, backward)`` or an object with ``forward`` and ``backward`` methods.
        inputs: the forward's arguments (a sequence), or a single array.
        eps: the finite-difference step. Default: ``1e-6``.
        rtol: relative tolerance, > 0. Default: ``1e-5``.
        atol: absolute tolerance for gradients near zero, >= 0. Default: ``1e-7``.
        dout: the upstream gradient, shaped like the output. Default: ``None`` (standard normal
            drawn with ``seed``).
        max_entries: check at most this many entries per input, drawn with ``seed`` (the
            course's sparse check for big arrays). Default: ``None`` (every entry).
        seed: seeds ``dout`` and the sampled entries. Default: ``0``.
        raise_on_failure: raise :class:`GradcheckError` (an ``AssertionError``) carrying the report
            when a check fails, instead of returning it. Default: ``False``.

    Returns:
        :class:`GradcheckReport` with ``passed``, ``max_rel_error`` and per input (or parameter)
        the worst entry's ``index``, ``analytic`` and ``numeric`` values.

    Raises:
        TypeError: ``f`` is neither form, or the forward's output is not a real array.
        ValueError: bad tolerances or ``max_entries``, no inputs, or a gradient whose shape or
            count does not fit the inputs.

    Example::

        >>> from relucore import layers
        >>> x, w, b = np.random.randn(4, 6), np.random.randn(6, 3), np.random.randn(3)
        >>> report = gradcheck((layers.affine_forward, layers.affine_backward), (x, w, b))
        >>> report.passed
        True
    """
    for name, v, positive in (("eps", eps, True), ("rtol", rtol, True), ("atol", atol, False)):
        if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)
                and (v > 0 if positive else v >= 0)):
            raise ValueError(f"{name} must be a finite number {'>' if positive else '>='} 0, got {v!r}")
    if max_entries is not None and (isinstance(max_entries, bool) or not isinstance(max_entries, (int, np.integer))
                                    or max_entries < 1):
        raise ValueError(f"max_entries must be None or an int >= 1, got {max_entries!r}")
    rng = np.random.default_rng(seed)
    if isinstance(f, tuple) and len(f) == 2 and callable(f[0]) and callable(f[1]):
        targets, objective = _pair_targets(f[0], f[1], inputs, dout, rng)
    elif callable(getattr(f, "forward", None)) and callable(getattr(f, "backward", None)):
        targets, objective = _module_targets(f, inputs, dout, rng)
    else:
        raise TypeError("f must be a (forward, backward) pair of callables or an object with forward and "
                        f"backward methods, got {type(f).__name__}")
    report = GradcheckReport([_compare(name, a, g, objective, eps, rtol, atol, max_entries, rng)
                              for name, a, g in targets])
    if raise_on_failure and not report.passed:
        raise GradcheckError(repr(report))
    return report


def _upstream(out: np.ndarray, dout, rng) -> np.ndarray:
    if dout is None:
        return rng.standard_normal(out.shape)
    d = np.asarray(dout, dtype=np.float64)
    if d.shape != out.shape:
        raise ValueError(f"dout must have the output's shape {out.shape}, got {d.shape}")
    return d


def _pair_targets(forward, backward, inputs, dout, rng):
    if isinstance(inputs, np.ndarray):
        inputs = (inputs,)
    if not isinstance(inputs, (tuple, list)) or not inputs:
        raise ValueError("inputs must be an array or a non-empty sequence of the forward's arguments")
    args = [np.array(a, dtype=np.float64) if _is_float_array(a) else a for a in inputs]
    out, cache, has_cache = _output(forward(*args), "forward")
    d = _upstream(out, dout, rng)
    grads = backward(d, cache) if has_cache else backward(d)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) > len(args):
        raise ValueError(f"backward returned {len(grads)} gradients for {len(args)} inputs")
    targets = []
    for i, g in enumerate(grads):
        if g is None:
            continue
        if not _is_float_array(args[i]):
            raise ValueError(f"backward returned a gradient for inputs[{i}], which is not a float array")
        targets.append(_target(f"inputs[{i}]", args[i], g))

    def objective() -> float:
        return float(np.sum(_output(forward(*args), "forward")[0] * d))

    return targets, objective


def _module_targets(module, inputs, dout, rng):
    if isinstance(inputs, (tuple, list)):
        if len(inputs) != 1:
            raise ValueError(f"a layer object takes one input x, got {len(inputs)}")
        inputs = inputs[0]
    x = np.array(inputs, dtype=np.float64)
    if hasattr(module, "named_parameters"):
        params = list(module.named_parameters())
    elif hasattr(module, "parameters"):
        params = [(f"parameters[{i}]", p) for i, p in enumerate(module.parameters())]
    else:
        params = []
    for name, p in params:
        if not (isinstance(p.data, np.ndarray) and p.data.dtype == np.float64):
            raise TypeError(f"parameter {name!r} must hold float64 data for a gradient check, got "
                            f"{getattr(p.data, 'dtype', type(p.data).__name__)} (convert the layer first, "
                            "e.g. module.to(np.float64))")
    out, _, _ = _output(module.forward(x), "forward")
    d = _upstream(out, dout, rng)
    if callable(getattr(module, "zero_grad", None)):
        module.zero_grad()
    else:
        for _, p in params:
            p.grad = None
    dx = module.backward(d)
    targets = [] if dx is None else [_target("input", x, dx)]
    targets += [_target(name, p.data, np.zeros_like(p.data) if p.grad is None else p.grad) for name, p in params]

    def objective() -> float:
        return float(np.sum(_output(module.forward(x), "forward")[0] * d))

    return targets, objective


def _target(name: str, a: np.ndarray, g) -> Tuple[str, np.ndarray, np.ndarray]:
    """(name, the array to perturb, a float64 copy of its analytic gradient), checked."""
    g = np.asarray(g)
    if g.shape != a.shape:
        raise ValueError(f"the gradient of {name} has shape {g.shape}, but {name} has shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous array to be perturbed in place")
    return name, a, g.astype(np.float64)  # a copy: later forward calls cannot change it


def _compare(name, a: np.ndarray, g, objective, eps, rtol, atol, max_entries, rng) -> GradientCheck:
    flat = a.reshape(-1)  # a view (a is C-contiguous): perturbs a in place
    chosen = np.arange(a.size)
    if max_entries is not None and a.size > max_entries:
        chosen = np.sort(rng.choice(a.size, size=max_entries, replace=False))
    numeric = np.empty(chosen.size)
    for k, j in enumerate(chosen):
        keep = flat[j]
        flat[j] = keep + eps
        plus = objective()
        flat[j] = keep - eps
        minus = objective()
        flat[j] = keep
        numeric[k] = (plus - minus) / (2 * eps)
    analytic = g.reshape(-1)[chosen]
    diff = np.abs(analytic - numeric)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(diff == 0, 0.0, diff / np.maximum(np.abs(analytic) + np.abs(numeric), atol / rtol))
    err = np.where(np.isnan(err), np.inf, err)  # a NaN on either side is a failure
    if not chosen.size:
        return GradientCheck(name, True, 0.0, (), float("nan"), float("nan"), 0)
    w = int(np.argmax(err))
    index = tuple(int(i) for i in np.unravel_index(chosen[w], a.shape))
    worst = float(err[w])
    return GradientCheck(name, worst <= rtol, worst, index, float(analytic[w]), float(numeric[w]), int(chosen.size))
