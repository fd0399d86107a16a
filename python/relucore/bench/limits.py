"""The machine's own limits, measured in the same run as the cases they are compared with.

Copy bandwidth is the limit for elementwise ops: ``np.copyto(dst, src)`` on preallocated arrays,
counted as read + write bytes (``2 * nbytes``) per call.

Two figures are kept:

* the *reference* copy bandwidth: 16M float32 elements (64 MiB each way), far larger than any cache,
  i.e. the machine's DRAM copy rate: the figure a "16M relu into out= reaches 80% of copy
  bandwidth" target is stated against;
* the *same-size* copy bandwidth: the copy of as many bytes as the case's arrays (same element
  count and dtype), so that a 1K case, which lives in L1 and is dominated by call overhead, is
  compared with a copy of the same kind rather than with DRAM. It is measured once per size for
  the header, and again with every case, in turns with the case's implementations (see
  :func:`~relucore.bench.timing.measure_interleaved`): the row's ``%`` uses that concurrent figure,
  so that a slow phase of the machine moves both sides of the ratio.

Which one the ``%`` column uses is chosen by ``--pct-of`` (default: same-size); both go to JSON.

The *sgemm* rate is the limit for compute-bound cases (``Case.limit == "sgemm"``: convolution and
linear layers; *dgemm* for float64 cases): the GFLOP/s of a 1024 x 1024 x 1024 GEMM through
relucore's GEMM (its own register tile on avx512, else OpenBLAS: ``runtime_info()["gemm"]``), timed as ``relucore.linear(a, b)`` (``a @ b.T``, ``2 * 1024**3`` flops, no
bias) with the cases' threads; ``numpy.matmul``'s rate on the same operands (NumPy's own BLAS) is
kept next to it for reference. It is measured for the header only when a case needs it, and again
with every such case, in turns with its implementations (like the same-size copy): the row's ``%``
uses that concurrent figure.

A :class:`~relucore.bench.cases.Case` names its limit with ``Case.limit``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from .timing import TimerConfig, Timing, measure

REFERENCE_COPY_ELEMENTS = 16 * 1024 * 1024  # 16M float32
SGEMM_SIZE = 1024  # m = n = k
# After a call, OpenBLAS's worker threads (NumPy's BLAS) spin-wait for 2**28 cycles (~0.1-0.2 s here)
# before they sleep, taking a core from whatever runs next (relucore at half speed measured right
# after numpy.matmul). Compute-bound cases time NumPy alone and wait this long before the others.
BLAS_IDLE_TIME = 0.25


@dataclass(frozen=True)
class CopyBandwidth:
    n: int
    dtype: str
    bytes: int  # read + write per call
    timing: Timing

    @property
    def gbps(self) -> float:
        return self.bytes / self.timing.median / 1e9

    def as_dict(self) -> dict:
        return {"n": self.n, "dtype": self.dtype, "bytes": self.bytes, "gbps": self.gbps, **self.timing.as_dict()}


def copy_operands(n: int, dtype) -> Tuple[np.ndarray, np.ndarray]:
    """``(dst, src)`` for ``np.copyto``: ``n`` elements of ``dtype``, pages already faulted in."""
    src = np.random.default_rng(1).standard_normal(n).astype(dtype)
    dst = np.zeros_like(src)
    dst.fill(1)
    return dst, src


def copy_figure(n: int, dtype, timing: Timing) -> CopyBandwidth:
    dtype = np.dtype(dtype)
    return CopyBandwidth(n=n, dtype=dtype.name, bytes=2 * n * dtype.itemsize, timing=timing)


def copy_bandwidth(n: int, dtype, config: TimerConfig) -> CopyBandwidth:
    """Read+write bandwidth of ``np.copyto(dst, src)`` with ``n`` elements of ``dtype``."""
    return copy_figure(n, dtype, measure(np.copyto, copy_operands(n, dtype), config))


@dataclass(frozen=True)
class GemmRate:
    size: int  # m = n = k
    dtype: str
    flops: int  # 2 * m * n * k per call
    timing: Timing  # relucore.linear(a, b)
    numpy_timing: Timing  # numpy.matmul(a, b.T)

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.median / 1e9

    @property
    def numpy_gflops(self) -> float:
        return self.flops / self.numpy_timing.median / 1e9

    def as_dict(self) -> dict:
        return {"method": "relucore.linear(a, b) = a @ b.T, a and b (size, size), no bias; numpy: np.matmul(a, b.T)",
                "size": self.size, "dtype": self.dtype, "flops": self.flops, "gflops": self.gflops,
                **self.timing.as_dict(), "numpy_gflops": self.numpy_gflops, "numpy": self.numpy_timing.as_dict()}


def gemm_operands(size: int = SGEMM_SIZE, dtype=np.float32) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    return rng.standard_normal((size, size)).astype(dtype), rng.standard_normal((size, size)).astype(dtype)


def gemm_call():
    """The timed callable: ``relucore.linear(a, b)``, i.e. ``a @ b.T`` through relucore's GEMM."""
    import relucore as rc

    return rc.linear


def gemm_figure(size: int, timing: Timing) -> float:
    """GFLOP/s of one ``size``-cubed GEMM taking ``timing``."""
    return 2 * size ** 3 / timing.median / 1e9


def sgemm_rate(size: int = SGEMM_SIZE, dtype=np.float32, config: TimerConfig = TimerConfig(),
               operands: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> GemmRate:
    """GFLOP/s of a ``size``-cubed GEMM through relucore's GEMM (``relucore.linear``), and NumPy's."""
    a, b = operands if operands is not None else gemm_operands(size, dtype)
    bt = b.T  # numpy.matmul(a, b.T): the same product, through NumPy's BLAS
    t_np = measure(np.matmul, (a, bt), config)  # first, alone: its idle BLAS threads spin ...
    time.sleep(BLAS_IDLE_TIME)  # ... and would take a core from relucore's
    t_rc = measure(gemm_call(), (a, b), config)
    return GemmRate(size=size, dtype=np.dtype(dtype).name, flops=2 * size ** 3, timing=t_rc, numpy_timing=t_np)


@dataclass
class Limits:
    """Limits measured in this run. ``copy_reference`` is the 16M float32 figure."""

    config: TimerConfig
    copy_reference: Optional[CopyBandwidth] = None
    copy_by_size: Dict[tuple, CopyBandwidth] = field(default_factory=dict)  # (n, dtype name) -> figure
    gemm: Dict[str, GemmRate] = field(default_factory=dict)  # dtype name -> figure ("float32": sgemm)
    _operands: Dict[tuple, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def measure_reference(self) -> CopyBandwidth:
        if self.copy_reference is None:
            # Always with the full timer (even under --quick): every % depends on this figure.
            n = REFERENCE_COPY_ELEMENTS
            self.copy_reference = copy_figure(n, np.float32, measure(np.copyto, self.copy_operands(n, np.float32),
                                                                     TimerConfig()))
            self.copy_by_size[(n, "float32")] = self.copy_reference
        return self.copy_reference

    def copy_same_size(self, n: int, dtype) -> CopyBandwidth:
        key = (n, np.dtype(dtype).name)
        if key not in self.copy_by_size:
            self.copy_by_size[key] = copy_figure(n, dtype, measure(np.copyto, self.copy_operands(n, dtype),
                                                                   self.config))
        return self.copy_by_size[key]

    def measure_gemm(self, dtype=np.float32) -> GemmRate:
        """The GEMM rate in ``dtype`` (float32: the sgemm limit), measured on first use."""
        key = np.dtype(dtype).name
        if key not in self.gemm:  # the header's figure; each row's % uses the GEMM timed in turns with it
            self.gemm[key] = sgemm_rate(SGEMM_SIZE, key, self.config, self.gemm_operands(key))
        return self.gemm[key]

    def gemm_operands(self, dtype) -> Tuple[np.ndarray, np.ndarray]:
        """Kept per dtype: each compute-bound case times this GEMM again, in turns with its implementations."""
        key = ("gemm", np.dtype(dtype).name)
        if key not in self._operands:
            self._operands[key] = gemm_operands(SGEMM_SIZE, dtype)
        return self._operands[key]

    def copy_operands(self, n: int, dtype) -> Tuple[np.ndarray, np.ndarray]:
        """Kept per size: each case times this copy again, in turns with its implementations."""
        key = (n, np.dtype(dtype).name)
        if key not in self._operands:
            self._operands[key] = copy_operands(n, dtype)
        return self._operands[key]

    def as_dict(self) -> dict:
        return {
            "copy": {
                "method": "np.copyto(dst, src) on preallocated arrays; bytes = 2 * nbytes (read + write)",
                "reference": self.copy_reference.as_dict() if self.copy_reference else None,
                "by_size": [c.as_dict() for c in self.copy_by_size.values()],
            },
            "sgemm": self.gemm["float32"].as_dict() if "float32" in self.gemm else None,
            "dgemm": self.gemm["float64"].as_dict() if "float64" in self.gemm else None,
        }
