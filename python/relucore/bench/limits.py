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

A later limit (e.g. an sgemm rate for convolution) is another function here plus an entry in
:class:`Limits`; a :class:`~relucore.bench.cases.Case` names its limit with ``Case.limit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from .timing import TimerConfig, Timing, measure

REFERENCE_COPY_ELEMENTS = 16 * 1024 * 1024  # 16M float32


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


@dataclass
class Limits:
    """Limits measured in this run. ``copy_reference`` is the 16M float32 figure."""

    config: TimerConfig
    copy_reference: Optional[CopyBandwidth] = None
    copy_by_size: Dict[tuple, CopyBandwidth] = field(default_factory=dict)  # (n, dtype name) -> figure
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
            }
        }
