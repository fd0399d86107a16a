"""Splitting a data set across ranks: :func:`shard`."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..nn.module import check_int
from .world import get_world

__all__ = ["shard"]


def shard(indices_or_n, rank: Optional[int] = None, size: Optional[int] = None, seed: int = 0, epoch: int = 0, *,
          shuffle: bool = True, drop_last: bool = False) -> np.ndarray:
    r"""This rank's part of a data set for one epoch, as ``torch.utils.data.DistributedSampler``.

    The indices are permuted with a generator seeded by ``(seed, epoch)`` — the same permutation on
    every rank, a new one each epoch — and dealt out in turn: rank ``r`` gets positions ``r``,
    ``r + size``, ``r + 2 size``, ... of the permutation. So batch ``k`` of every rank (``B`` each)
    together hold positions ``k size B`` to ``(k + 1) size B`` of the permutation: exactly batch
    ``k`` of one process with batch ``size * B`` and the same seed.

    Every rank gets the same number of indices. By default (``drop_last=False``) the permutation is
    padded by repeating its first ``-n % size`` entries, so every index is used (and at most
    ``size - 1`` twice); with ``drop_last=True`` its last ``n % size`` entries are left out instead,
    so the shards are disjoint but up to ``size - 1`` indices are not used this epoch.

    Args:
        indices_or_n: a data set size ``n`` (the indices ``0..n-1``) or a 1-D array of indices.
        rank: this rank. Default: the rank of :func:`init`'s communicator.
        size: the number of ranks. Default: its size.
        seed: the shuffling seed, the same on every rank. Default: ``0``.
        epoch: the epoch number, so each epoch has its own order. Default: ``0``.
        shuffle: permute (``False`` keeps the given order). Default: ``True``.
        drop_last: drop the tail instead of padding. Default: ``False``.

    Returns:
        An int64 array (or the indices' dtype) of ``ceil(n / size)`` (``floor`` with ``drop_last``)
        indices.

    Example::

        >>> distributed.shard(10, rank=1, size=3, seed=0, epoch=0)
        array([...])   # 4 of 0..9; ranks 0, 1, 2 together cover all 10 (and repeat 2)
    """
    if rank is None or size is None:
        world = get_world()
        rank = world.rank if rank is None else rank
        size = world.size if size is None else size
    size = check_int("size", size, 1)
    rank = check_int("rank", rank, 0)
    if rank >= size:
        raise ValueError(f"rank must be < size ({size}), got {rank}")
    seed, epoch = check_int("seed", seed, 0), check_int("epoch", epoch, 0)
    if isinstance(indices_or_n, (int, np.integer)) and not isinstance(indices_or_n, (bool, np.bool_)):
        idx = np.arange(check_int("indices_or_n", indices_or_n, 0), dtype=np.int64)
    else:
        idx = np.asarray(indices_or_n)
        if idx.ndim != 1:
            raise ValueError(f"indices_or_n must be an int or a 1-D array of indices, got shape {idx.shape}")
        if idx.dtype.kind not in "iu" and idx.size:
            raise TypeError(f"indices_or_n must hold integer indices, got dtype {idx.dtype}")
    n = idx.size
    if shuffle:
        idx = idx[np.random.default_rng([seed, epoch]).permutation(n)]
    if drop_last:
        total = n - n % size
        idx = idx[:total]
    else:
        total = -(-n // size) * size
        idx = np.resize(idx, total) if n else idx
    return idx[rank:total:size].copy()
