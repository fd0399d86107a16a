"""Batch normalization with statistics over every rank's batch: :class:`SyncBatchNorm`."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..nn import _functions as F
from ..nn.module import Module
from ..nn.norm import BatchNorm1d, BatchNorm2d, _BatchNorm
from .world import get_world, mpi

__all__ = ["SyncBatchNorm", "combine_moments"]


def combine_moments(counts: np.ndarray, means: np.ndarray, m2s: np.ndarray):
    r"""Merge per-part moments into those of the union, in the parts' order (Chan et al.'s pairwise
    update, which stays accurate where the sums of x and x² would cancel).

    Args:
        counts: :math:`(P,)` values per part.
        means: :math:`(P, C)` per-part means.
        m2s: :math:`(P, C)` per-part sums of squared deviations from the part's mean.

    Returns:
        ``(count, mean, m2)`` of the union: a float and two :math:`(C,)` float64 arrays.
    """
    n = 0.0
    mean = np.zeros(means.shape[1])
    m2 = np.zeros(means.shape[1])
    for nb, mb, m2b in zip(counts, means, m2s):
        if nb == 0:
            continue
        total = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta * delta * (n * nb / total)
        n = total
    return n, mean, m2


class SyncBatchNorm(_BatchNorm):
    r"""Batch normalization whose batch statistics are taken over the batches of every rank, as
    ``torch.nn.SyncBatchNorm``: ``size`` ranks with batch ``B`` each normalize exactly as one process
    with batch ``size * B`` would (up to rounding), for any input :math:`(N, C, *)`.

    In the training forward each rank computes its per-channel count, mean and sum of squared
    deviations (one native batch norm pass), all ranks exchange them (one ``Allgather`` of :math:`2C + 1` values)
    and merge them in rank order with a stable pairwise update (:func:`combine_moments`), so every
    rank gets the same statistics. The backward exchanges the per-channel sums of :math:`g` and
    :math:`g \hat x` (one ``Allreduce`` of :math:`2C` values) and applies them with one more native
    pass into an array shaped like the input, which the layer keeps between steps. Running
    statistics are updated from the global statistics (unbiased variance over all ``size * B``
    samples), so they are equal on every rank. Parameter gradients stay per rank, like any other
    layer's: :class:`DataParallel` averages them. Evaluation communicates nothing, as PyTorch's:
    with running statistics it uses them, without them each rank its own batch's statistics.

    Every rank must run the training forward and backward the same number of times (they are
    collective calls). In a :class:`~relucore.nn.Sequential` a following ReLU, LeakyReLU or ELU runs
    fused into the normalizing pass and its backward, as with the plain batch norms.

    Args:
        num_features: :math:`C`, the number of channels.
        eps: added to the variance. Default: ``1e-5``.
        momentum: the running statistics' update factor, or ``None`` for a cumulative average.
            Default: ``0.1``.
        affine: learn ``weight`` and ``bias``. Default: ``True``.
        track_running_stats: keep running statistics. Default: ``True``.
        comm: an mpi4py communicator or a :class:`World`. Default: the one of :func:`init`, looked up
            at the first training forward.
        dtype: float32 or float64. Default: ``np.float32``.

    Shape:
        - Input: :math:`(N, C)` or :math:`(N, C, *)` with 1 to 3 spatial axes; Output: same.

    Example::

        >>> model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        >>> model = nn.SyncBatchNorm.convert_sync_batchnorm(model)   # shares the parameters
        >>> model[1]
        SyncBatchNorm(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
        >>> y = model.eval()(np.ones((2, 1, 5, 5), np.float32))   # running statistics: no communication
    """

    _ndims = (2, 3, 4, 5)
    _layout = "(N, {0}) or (N, {0}, *)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, comm=None, *, dtype=np.float32) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)
        self.__dict__["_comm"] = comm
        self.__dict__["_world"] = None

    @property
    def world(self):
        """The :class:`World` whose ranks share the statistics."""
        if self._world is None:
            self.__dict__["_world"] = get_world(self._comm)
        return self._world

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, comm=None) -> Module:
        """``module`` with every :class:`~relucore.nn.BatchNorm1d` / :class:`~relucore.nn.BatchNorm2d`
        replaced by a :class:`SyncBatchNorm` that shares its parameters and buffers (changed in place;
        returned, or the new layer when ``module`` itself is a batch norm)."""
        if type(module) in (BatchNorm1d, BatchNorm2d):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, comm, dtype=module._dtype() or np.float32)
            for kind in ("_parameters", "_buffers"):
                new.__dict__[kind].update(module.__dict__[kind])
            new.train(module.training)
            return new
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child, comm)
            if converted is not child:
                setattr(module, name, converted)
        return module

    def forward_activation(self, x, activation=None, keep_output: bool = False):
        """Batch norm followed by ``activation`` (as :meth:`~relucore.nn.BatchNorm2d.forward_activation`);
        the input is always kept for backward."""
        if not self.training or self.world.size == 1:  # evaluation is local, as PyTorch's: no collective
            return super().forward_activation(x, activation, False)
        x = self._input(x, self._layout.format(self.num_features), self._ndims, channels=self.num_features,
                        dtype=self._dtype())
        c = self.num_features
        n_local = x.size // c if c else 0
        local = np.zeros(2 * c + 1)
        local[0] = n_local
        y = None
        if n_local > 1:
            # this rank's statistics from the native pass (y is overwritten below)
            y, mean, invstd = F.batch_norm(x, None, None, training=True, eps=self.eps)
            local[1:c + 1] = mean
            local[c + 1:] = n_local * (1.0 / np.square(invstd.astype(np.float64)) - self.eps)
        elif n_local == 1:  # one value per channel: its mean, no spread
            local[1:c + 1] = x.reshape(c)
        world = self.world
        gathered = np.empty((world.size, 2 * c + 1))
        world.comm.Allgather(local, gathered)
        n, mean, m2 = combine_moments(gathered[:, 0], gathered[:, 1:c + 1], gathered[:, c + 1:])
        if n <= 1:
            raise ValueError(f"{self._label()}: expected more than 1 value per channel when training, "
                             f"got {int(n)} over {world.size} rank(s)")
        var = np.maximum(m2, 0) / n
        dt = x.dtype
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        # normalizing with given statistics is batch_norm's evaluation pass
        y, save_mean, save_invstd = self._kernel(F.batch_norm, x, mean.astype(dt), var.astype(dt), w, b, False,
                                                 0.0, self.eps, activation=activation, out=y)
        if self.training and self.track_running_stats:
            self._count_batch()
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean
            self.running_var[...] = (1 - m) * self.running_var + m * (m2 / (n - 1))
        self._keep(x, None, save_mean, save_invstd, activation, True, n)
        return y

    def _scratch(self, x: np.ndarray) -> np.ndarray:
        """An array shaped like ``x``, kept between steps: a fresh one each step costs a page fault
        per 4 KiB in the backward of a large layer."""
        buf = self.__dict__.get("_scratch_array")
        if buf is None or buf.shape != x.shape or buf.dtype != x.dtype:
            buf = self.__dict__["_scratch_array"] = np.empty_like(x, order="C")
        return buf

    def backward(self, dy):
        saved = self._take()
        if len(saved) == 6:  # an evaluation forward with running statistics
            self._keep(*saved)
            return super().backward(dy)
        x, _, mean, invstd, activation, _, n = saved
        dy = self._dy(dy, x.shape, saved, x.dtype)
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        # the evaluation backward gives w * invstd * g and this rank's sums of g * xhat and g
        dx, dw, db = F.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation=activation,
                                           training=False)
        sums = np.concatenate([dw, db]).astype(np.float64)
        MPI = mpi()
        self.world.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        c = self.num_features
        scale = (np.ones(c) if w is None else w.astype(np.float64)) * invstd.astype(np.float64) / n
        k1 = scale * invstd.astype(np.float64) * sums[:c]
        k0 = scale * sums[c:] - k1 * mean.astype(np.float64)
        # dx = w * invstd * (g - sum(g) / n - xhat * sum(g * xhat) / n), with xhat = (x - mean) * invstd:
        # the evaluation dx minus k1 * x + k0, a per-channel affine map of x, which is batch_norm's
        # evaluation pass with mean 0, variance 1 and eps 0 (one native pass instead of three NumPy ones)
        dt = x.dtype
        shift = self._scratch(x)
        F.batch_norm(x, np.zeros(c, dt), np.ones(c, dt), (-k1).astype(dt), (-k0).astype(dt), False, 0.0, 0.0,
                     out=shift)
        np.add(dx, shift, out=dx)  # dx is a fresh array from the kernel
        if self.affine:
            self.weight.accumulate(dw)
            self.bias.accumulate(db)
        return dx
