"""Optional peer libraries (PyTorch), found with importlib and never required."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Optional

import numpy as np


def load_torch(enabled: bool = True) -> Optional[Any]:
    """``torch`` if it is installed (and ``enabled``), else None."""
    if not enabled or importlib.util.find_spec("torch") is None:
        return None
    try:
        return importlib.import_module("torch")
    except Exception:  # a broken install is the same as none for a benchmark
        return None


def to_torch(torch: Any, inputs: tuple) -> tuple:
    """``torch.from_numpy`` on every ndarray (shares memory; no copy), other values unchanged."""
    return tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in inputs)


def to_numpy(torch: Any, result: Any) -> Any:
    if isinstance(result, (tuple, list)):
        return tuple(to_numpy(torch, r) for r in result)
    if torch is not None and isinstance(result, torch.Tensor):
        return result.detach().numpy()
    return result
