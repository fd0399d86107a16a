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


def torch_example_cnn(torch, state: dict, side: int = 28):
    """The example CNN (:func:`relucore.examples.digits.make_model`) as a ``torch.nn.Sequential`` on
    ``side`` x ``side`` images, in the dtype of ``state`` (a relucore ``state_dict``) and loaded from it."""
    tnn = torch.nn
    q = side // 4
    t = tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(), tnn.MaxPool2d(2),
                       tnn.Conv2d(16, 32, 3, padding=1), tnn.BatchNorm2d(32), tnn.ReLU(), tnn.MaxPool2d(2),
                       tnn.Flatten(), tnn.Linear(32 * q * q, 10))
    t = t.to(torch.float64 if state["0.weight"].dtype == np.float64 else torch.float32)
    t.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return t
