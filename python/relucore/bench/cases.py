"""What a benchmark case is, and where the cases come from.

A suite is a module with a function ``cases(sizes, dtype) -> list[Case]``; :data:`SUITES` lists them.
A later family (convolution, batch norm) adds a module and one line here; nothing else changes.
The ``benchmarks/`` pytest-benchmark suites use the same cases.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence

import numpy as np

#: Modules that provide ``cases(sizes, dtype)``, in table order.
SUITES = ("relucore.bench.elementwise", "relucore.bench.ufuncs", "relucore.bench.conv", "relucore.bench.norm",
          "relucore.bench.loss", "relucore.bench.layers", "relucore.bench.inference", "relucore.bench.training")

IMPLS = ("relucore", "numpy", "torch")

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)\s*$")
_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """``"1K"`` -> 1024, ``"16M"`` -> 16777216, ``"1000"`` -> 1000 (binary multiples)."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(f"size {text!r}: expected a count such as 1000, 64K or 16M")
    n = int(m.group(1)) * _MULT[m.group(2).lower()]
    if n <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return n


def size_label(n: int) -> str:
    for suffix, mult in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % mult == 0:
            return f"{n // mult}{suffix}"
    return str(n)


CheckFn = Callable[[Any, Any, tuple], None]


@dataclass(frozen=True)
class Case:
    """One (operation, size, dtype) to time with each implementation.

    The three implementations are called as ``fn(*inputs)``. ``torch`` is a *maker*: given the
    ``torch`` module it returns the callable to time (so nothing imports torch unless it is used),
    which gets the same inputs passed through ``torch.from_numpy``; None when PyTorch has no
    equivalent. ``numpy`` is the baseline the relucore result is checked against
    (by ``check``, default: ``assert_allclose`` with ``rtol``/``atol``; exact when both are 0).
    ``reference`` computes the same result with :mod:`relucore.reference` (the oracle the
    ``benchmarks/`` suite asserts every implementation against). ``bytes`` is what the op reads and
    writes once (for a bandwidth-bound case; compared with the ``copy`` limit); ``flops`` is for a
    compute-bound case (a later limit such as sgemm).
    """

    op: str  # key, used by --ops and as the pytest-benchmark group: "relu", "relu_out", ...
    label: str  # shown in the table: "relu", "relu out=", ...
    n: int  # elements of the main operand
    dtype: str
    shape: tuple
    make_inputs: Callable[[], tuple]
    relucore: Callable[..., Any]
    numpy: Callable[..., Any]
    torch: Optional[Callable[[Any], Callable[..., Any]]] = None
    reference: Optional[Callable[..., Any]] = None
    bytes: Optional[int] = None
    flops: Optional[int] = None
    limit: str = "copy"
    rtol: float = 0.0
    atol: float = 0.0
    check: Optional[CheckFn] = None
    target_pct: Optional[float] = None  # % of the reference limit this case is meant to reach
    suite: str = ""
    # time relucore and PyTorch each alone, in alternating whole measurements, instead of sample by
    # sample: a whole model's step keeps both thread pools busy, and PyTorch's OpenMP threads, still
    # spinning after its sample, would take the cores from relucore's next one
    peers_alone: bool = False

    @property
    def size(self) -> str:
        return size_label(self.n)

    @property
    def id(self) -> str:
        return f"{self.op}-{self.size}-{self.dtype}"

    def impl(self, name: str, torch: Any = None) -> Optional[Callable[..., Any]]:
        """The callable to time for ``name`` in :data:`IMPLS` (None if it has none / no torch)."""
        if name == "torch":
            return self.torch(torch) if (self.torch is not None and torch is not None) else None
        return {"relucore": self.relucore, "numpy": self.numpy}[name]

    def verify(self, got: Any, want: Any, inputs: tuple) -> None:
        """Raise AssertionError when ``got`` does not match ``want``."""
        if self.check is not None:
            self.check(got, want, inputs)
        else:
            assert_results_match(got, want, rtol=self.rtol, atol=self.atol)


def _as_tuple(result: Any) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def assert_results_match(got: Any, want: Any, *, rtol: float = 0.0, atol: float = 0.0) -> None:
    got_t, want_t = _as_tuple(got), _as_tuple(want)
    if len(got_t) != len(want_t):
        raise AssertionError(f"got {len(got_t)} results, expected {len(want_t)}")
    for i, (g, w) in enumerate(zip(got_t, want_t)):
        g, w = np.asarray(g), np.asarray(w)
        what = f"result {i}" if len(got_t) > 1 else "result"
        if g.shape != w.shape:
            raise AssertionError(f"{what}: shape {g.shape}, expected {w.shape}")
        if g.dtype != w.dtype and not (g.dtype.kind == w.dtype.kind == "i"):
            raise AssertionError(f"{what}: dtype {g.dtype}, expected {w.dtype}")
        if (rtol == 0 and atol == 0) or g.dtype.kind not in "fc":
            np.testing.assert_array_equal(g, w, err_msg=what)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)


def snapshot(result: Any) -> Any:
    """A copy of a result that later calls writing into the same ``out=`` cannot change."""
    if isinstance(result, (tuple, list)):
        return tuple(snapshot(r) for r in result)
    return np.array(result, copy=True)


def collect(sizes: Sequence[int], dtype, suites: Iterable[str] = SUITES, ops: Optional[str] = None) -> List[Case]:
    """All cases of the given suites, filtered by ``ops`` (comma-separated globs on ``Case.op``)."""
    patterns = [p.strip() for p in ops.split(",") if p.strip()] if ops else None
    cases: List[Case] = []
    for name in suites:
        module = importlib.import_module(name)
        for case in module.cases(sizes, np.dtype(dtype)):
            if patterns is None or any(fnmatch.fnmatchcase(case.op, p) for p in patterns):
                cases.append(case)
    return cases
