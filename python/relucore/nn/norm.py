"""Batch normalization layers :class:`BatchNorm1d` and :class:`BatchNorm2d`."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _checks as C
from .. import _core
from ..activations import _c
from ..norm import _fast_act
from . import _functions as F
from .module import Module, Parameter, check_int, float_dtype, generation, plain
from .pooling import max_pool_kept_backward, poolable

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    _ndims: tuple = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype=np.float32) -> None:
        super().__init__()
        self.num_features = c = check_int("num_features", num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = float_dtype(dtype)
        self.register_parameter("weight", Parameter(np.ones(c), dtype) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(c), dtype) if affine else None)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(c, dtype))
            self.register_buffer("running_var", np.ones(c, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _count_batch(self) -> None:
        """num_batches_tracked += 1, in place: assigning it would mark the module changed."""
        np.add(self.num_batches_tracked, 1, out=self.num_batches_tracked)

    def _dtype(self):
        for a in (self.weight, self.running_mean):
            if a is not None:
                return a.dtype
        return None

    def forward(self, x):
        return self.forward_activation(x)

    def forward_activation(self, x, activation=None, keep_output: bool = False, pool=None, run_sums=None):
        """Batch norm followed by ``activation`` (``None``, ``"relu"``, ``("leaky_relu", slope)`` or
        ``("elu", alpha)``) in one pass. With ``keep_output`` (an invertible activation) backward
        runs from the output alone and the input is not kept. With ``pool`` (a pooling layer) its
        forward follows, and its backward runs in this layer's; a :class:`MaxPool2d` of at most 255
        window positions runs in the same sweep on the native backend (the full-size activation is
        never stored). ``run_sums``: x's per-plane sums from the convolution that produced x
        (``Conv2d._forward_moments``), used for the batch statistics of that sweep."""
        given = x
        x = self._input(x, self._layout.format(self.num_features), self._ndims, channels=self.num_features,
                        dtype=self._dtype())
        if x is not given:
            run_sums = None
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        training = self.training or self.running_mean is None
        tracking = self.training and self.track_running_stats
        # with momentum=None the kernel counts the batch and averages with 1/count
        nbt = self.num_batches_tracked if tracking and self.momentum is None else None
        if (poolable(pool) and nbt is None and x.ndim == 4 and F.current() is F.native()
                and _fast_act(activation) is not None):
            y = self._forward_pooled(x, w, b, training, tracking, activation, pool, run_sums if training else None)
            if y is not None:
                return y
        y, mean, invstd = self._kernel(F.batch_norm, x, self.running_mean, self.running_var, w, b, training,
                                       self.momentum, self.eps, activation=activation, num_batches_tracked=nbt)
        if tracking and nbt is None:
            self._count_batch()
        if keep_output and pool is None and (w is None or np.all(w != 0)):  # no y inverts through a zero weight
            self._keep(None, y, mean, invstd, activation, training)
        elif pool is None:
            self._keep(x, None, mean, invstd, activation, training)
        else:  # the pool's backward runs first in this one's
            self._keep(x, None, mean, invstd, activation, training, pool)
        return y if pool is None else pool(y)

    def _forward_pooled(self, x, w, b, training, tracking, activation, pool, run_sums=None):
        """The native batch norm + activation + max pooling (see :meth:`forward_activation`), or
        None for arrays the kernel does not take as they are."""
        code, param = _fast_act(activation)
        key = (generation(), x.shape, x.dtype, pool.kernel_size, pool.stride, pool.padding)
        if self.__dict__.get("_pool_checked") != key:  # checked once per shape and pool until a change
            x = pool._kernel(C.check_pool_args, x, pool.kernel_size, pool.stride, pool.padding)[0]
            self.__dict__["_pool_checked"] = key
        x = _c(x)
        running = tracking or not training
        (kh, kw), (sh, sw), (ph, pw) = pool.kernel_size, pool.stride, pool.padding
        # momentum=None reaches here only where no running statistics move (no tracking, or eval)
        momentum = 0.0 if self.momentum is None else self.momentum
        r = self._kernel(_core.batch_norm_max_pool2d, x, self.running_mean if running else None,
                         self.running_var if running else None, w, b, training, momentum, self.eps, code,
                         param, kh, kw, sh, sw, ph, pw, run_sums)
        if r is None:
            return None
        y, pos, mean, invstd = r
        if tracking:
            self._count_batch()
        self._keep(x, None, mean, invstd, activation, training, (pos, pool.kernel_size, pool.stride, pool.padding))
        return y

    def backward(self, dy):
        return self._backward(dy)[0]

    def _backward(self, dy, input_sums: bool = False):
        """``(dx, sums)``: with ``input_sums``, ``sums`` is dx summed per channel as
        :func:`relucore.conv2d_backward` sums a bias gradient (the bias gradient of a convolution
        whose output this layer's input is), where the native batch norm + pool backward ran;
        otherwise None."""
        saved = self._take()
        x, y, mean, invstd, activation, training = saved[:6]
        pool = saved[6] if len(saved) > 6 else None  # the fused pool's (positions, geometry), or the module
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        if isinstance(pool, tuple):
            pos, k, s, p = pool
            dy = _c(self._dy(dy, pos.shape, saved, x.dtype))
            r = _core.batch_norm_max_pool2d_backward(dy, pos, x, w, b, mean, invstd, *_fast_act(activation),
                                                     bool(training), k[0], k[1], s[0], s[1], p[0], p[1],
                                                     bool(input_sums))
            if r is False:
                raise ValueError(f"{self._label()}: the kept window positions do not fit the input "
                                 "(was the cache changed?)")
            if r is not None:
                dx, dw, db = r[:3]
                sums = r[3] if input_sums else None
            else:  # parameters the kernel does not take as they are: the pool's gradient, then batch norm's
                dy = self._kernel(max_pool_kept_backward, dy, pos, x.shape, k, s, p)
                dx, dw, db = F.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation=activation,
                                                   training=training)
                sums = None
        else:
            sums = None
            if pool is not None:
                try:
                    dy = pool.backward(dy)
                except (TypeError, ValueError):
                    self._keep(*saved)  # the pool kept its own state again: a corrected call can follow
                    raise
            kept = x if y is None else y
            dy = self._dy(dy, kept.shape, saved, kept.dtype)
            dx, dw, db = F.batch_norm_backward(dy, x, w, mean, invstd, bias=b, activation=activation, y=y,
                                               training=training)
        if self.affine:
            self.weight.accumulate(dw)
            self.bias.accumulate(db)
        return dx, sums

    def _backward_into(self, dy, conv) -> bool:
        """The backward of a training forward with a fused max pooling, where this layer's input is
        the output of ``conv`` (a network's first :class:`Conv2d`, whose input gradient is not
        wanted): the input gradient goes plane by plane into ``conv``'s weight and bias gradients
        on the native backend and is never stored. False (nothing done, both layers' states kept)
        where that path does not apply."""
        saved = self.__dict__["_cache"]
        csaved = conv.__dict__["_cache"]
        if saved is None or csaved is None or len(saved) < 7 or not isinstance(saved[6], tuple):
            return False
        x, _, mean, invstd, activation, training, (pos, k, s, p) = saved
        cx, y_shape, cact, _ = csaved
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        cw = conv.weight.data
        if (cact is not None or conv.groups != 1 or not isinstance(dy, np.ndarray) or dy.shape != pos.shape
                or dy.dtype != x.dtype or not plain(dy) or not plain(cx) or not plain(cw)
                or tuple(y_shape) != x.shape):
            return False
        (sh, sw), (ph, pw), (dh, dw_) = conv.stride, conv.padding, conv.dilation
        has_bias = conv.bias is not None
        r = _core.batch_norm_max_pool2d_conv_backward(dy, pos, x, w, b, mean, invstd, *_fast_act(activation),
                                                      bool(training), k[0], k[1], s[0], s[1], p[0], p[1], cx, cw,
                                                      sh, sw, ph, pw, dh, dw_, has_bias)
        if r is None:
            return False
        if r is False:
            raise ValueError(f"{self._label()}: the kept window positions do not fit the input "
                             "(was the cache changed?)")
        self._take()
        conv._take()
        dw, db, cdw, cdb = r
        if self.affine:
            self.weight.accumulate(dw)
            self.bias.accumulate(db)
        conv.weight.accumulate(cdw)
        if has_bias:
            conv.bias.accumulate(cdb)
        return True

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


_DOC = r"""Batch normalization over {what}, as ``torch.nn.{name}``.

    .. math::
        y = \frac{{x - \mathrm{{E}}[x]}}{{\sqrt{{\mathrm{{Var}}[x] + \epsilon}}}} \gamma + \beta

    per channel. In training the mean and (biased) variance are the batch's, taken over every axis
    but the channel axis 1, and the running statistics are updated in place as
    ``running = (1 - momentum) * running + momentum * batch`` (with the unbiased batch variance);
    in evaluation the running statistics are used. A :class:`Sequential` runs a batch norm followed
    by ReLU, LeakyReLU or ELU as one fused pass.

    Args:
        num_features: :math:`C`, the number of channels.
        eps: added to the variance. Default: ``1e-5``.
        momentum: the running statistics' update factor, or ``None`` for a cumulative average.
            Default: ``0.1``.
        affine: learn :math:`\gamma` (``weight``, initially 1) and :math:`\beta` (``bias``, initially
            0). Default: ``True``.
        track_running_stats: keep ``running_mean``, ``running_var`` and ``num_batches_tracked``;
            without them batch statistics are used in evaluation too. Default: ``True``.
        dtype: float32 or float64. Default: ``np.float32``.

    Shape:
        - Input: {shape}; Output: same.

    Example::

        >>> m = nn.{name}(100)
        >>> m(np.random.default_rng(0).standard_normal({example}, dtype=np.float32)).shape
        {example}
    """


class BatchNorm1d(_BatchNorm):
    __doc__ = _DOC.format(what="a 2-D or 3-D input", name="BatchNorm1d", shape=r":math:`(N, C)` or :math:`(N, C, L)`",
                          example="(20, 100)")
    _ndims = (2, 3)
    _layout = "(N, {0}) or (N, {0}, L)"


class BatchNorm2d(_BatchNorm):
    __doc__ = _DOC.format(what="a 4-D input (NCHW images)", name="BatchNorm2d", shape=r":math:`(N, C, H, W)`",
                          example="(20, 100, 35, 45)")
    _ndims = (4,)
    _layout = "(N, {0}, H, W)"
