"""Inverted dropout :class:`Dropout`."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import init
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    r"""In training, zeroes each element with probability ``p`` and scales the others by
    :math:`1/(1-p)` (inverted dropout: evaluation is then the identity).

    The dropped elements are drawn from ``rng``, or from the default generator
    (:func:`relucore.nn.manual_seed`) at each call; backward keeps the boolean mask.

    Args:
        p: probability of an element to be zeroed, in :math:`[0, 1]`. Default: ``0.5``.
        rng: :class:`numpy.random.Generator`, or ``None`` for the default generator. Default: ``None``.

    Shape:
        - Input: :math:`(*)`; Output: same.

    Example::

        >>> m = nn.Dropout(0.2, rng=np.random.default_rng(0))
        >>> y = m(np.ones((4, 5), np.float32))   # entries are 0 or 1.25
    """

    def __init__(self, p: float = 0.5, *, rng: Optional[np.random.Generator] = None) -> None:
        super().__init__()
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: dropout probability must be in [0, 1], got {p}")
        self.p = p
        self.rng = None if rng is None else init.generator(rng)

    def forward(self, x):
        x = self._input(x, "(*)")
        if not self.training or self.p == 0:
            self._keep(None, x.shape, x.dtype)
            return x
        keep = init.generator(self.rng).random(x.shape, dtype=x.dtype) >= self.p
        self._keep(keep, x.shape, x.dtype)
        return self._apply(x, keep)

    def _apply(self, a, keep):
        scale = a.dtype.type(0 if self.p == 1 else 1 / (1 - self.p))
        return np.multiply(a, scale, where=keep, out=np.zeros_like(a))

    def backward(self, dy):
        saved = keep, shape, dtype = self._take()
        dy = self._dy(dy, shape, saved, dtype)
        return dy if keep is None else self._apply(dy, keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"
