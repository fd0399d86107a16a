"""``relucore-bench`` / ``python -m relucore.bench``: relucore next to NumPy and PyTorch.

Each figure is also given as a fraction of a limit of this machine measured in the same run (copy
bandwidth for elementwise ops). Cases live in suite modules listed in :data:`cases.SUITES`; each
provides ``cases(sizes, dtype) -> list[Case]``.
"""

from .cli import main

__all__ = ["main"]
