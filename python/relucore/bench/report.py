"""Printing: the header, the table (one row at a time, as results arrive), progress, JSON."""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Dict, List, Optional


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            v = seconds / scale
            return f"{v:.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}" if v >= 10 else f"{v:.2f} {unit}"
    return "-"


def fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else (f"{r:.1f}x" if r >= 10 else f"{r:.2f}x")


def fmt_num(v: Optional[float], digits: int = 1, suffix: str = "") -> str:
    return "-" if v is None else f"{v:.{digits}f}{suffix}"


# op, size, relucore, rate, %limit, numpy, speed-up, torch, speed-up, scratch
_COLS = ((20, "<"), (5, ">"), (10, ">"), (7, ">"), (6, ">"), (10, ">"), (7, ">"), (10, ">"), (7, ">"), (10, ">"))


def _line(cells, cols=_COLS) -> str:
    return "  ".join(f"{c:{a}{w}}" for c, (w, a) in zip(cells, cols)).rstrip()


def fmt_mb(nbytes: Optional[float]) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f}"


class Table:
    """Prints rows as they are measured, with a header whenever the kind of rate changes.

    Bandwidth rows (``bytes``) show GB/s and ``pct_label`` (% of copy); compute rows (``flops``)
    show GFLOP/s and % of the GEMM rate (``row["pct_label"]``, e.g. "%sgemm"), plus a ``scratch``
    column (peak extra memory, MB) when ``memory`` is set. ``op_width`` / ``size_width`` widen the
    first two columns for longer labels (layer names).
    """

    def __init__(self, stream: IO[str], with_torch: bool, pct_label: str, op_width: int = 20, size_width: int = 5,
                 memory: bool = False):
        self.stream, self.with_torch, self.pct_label = stream, with_torch, pct_label
        self.memory = memory
        self.cols = ((max(20, op_width), "<"), (max(5, size_width), ">")) + _COLS[2:]
        self._kind: Optional[tuple] = None

    def _cells(self, cells: List[str], unit: str) -> List[str]:
        base = cells[:9] if self.with_torch else cells[:7]
        return base + cells[9:] if (self.memory and unit == "GFLOP/s") else base

    def header(self, unit: str, pct_label: Optional[str] = None) -> None:
        cells = ["op", "size", "relucore", unit, pct_label or self.pct_label, "numpy", "vs np", "torch", "vs pt",
                 "scratch MB"]
        text = _line(self._cells(cells, unit), self.cols)
        print(text, file=self.stream)
        print("-" * len(text), file=self.stream)
        self._kind = (unit, pct_label)

    def row(self, row: Dict[str, Any]) -> None:
        unit = "GB/s" if row.get("bytes") else "GFLOP/s"
        pct_label = row.get("pct_label")
        if (unit, pct_label) != self._kind:
            if self._kind is not None:
                print(file=self.stream)
            self.header(unit, pct_label)
        mem = row.get("memory")
        cells = [
            row["label"],
            row["size"],
            fmt_time(row["relucore"]["median"]),
            fmt_num(row["rate"]),
            fmt_num(row["pct"], 0, "%"),
            fmt_time(row["numpy"]["median"] if row["numpy"] else None),
            fmt_ratio(row["speedup_vs_numpy"]),
            fmt_time(row["torch"]["median"] if row["torch"] else None),
            fmt_ratio(row["speedup_vs_torch"]),
            fmt_mb(mem["scratch_bytes"] if mem else None),
        ]
        print(_line(self._cells(cells, unit), self.cols), file=self.stream)
        self.stream.flush()


class Progress:
    """``[12/48] relu 1M`` on stderr: rewritten in place on a terminal, one line each otherwise."""

    def __init__(self, total: int, enabled: bool, stream: IO[str] = sys.stderr):
        self.total, self.enabled, self.stream = total, enabled, stream
        self.tty = enabled and stream.isatty()
        self.count = 0
        self._shown = False

    def step(self, text: str) -> None:
        self.count += 1
        if not self.enabled:
            return
        msg = f"[{self.count}/{self.total}] {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + msg)
            self._shown = True
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the in-place line (call before printing to a terminal stdout)."""
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def write_json(path: str, document: Dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, default=_json_default)
        f.write("\n")


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)
