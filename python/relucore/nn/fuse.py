"""``fuse(model)``: an inference copy of a :class:`Sequential` with batch norms folded into convolutions."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np

from .container import Sequential
from .conv import Conv2d
from .module import Parameter
from .norm import BatchNorm2d

__all__ = ["fuse"]


def _fold(conv: Conv2d, bn: BatchNorm2d) -> Conv2d:
    """``conv`` with ``bn``'s evaluation-mode affine map folded in: w' = w γ/σ, b' = (b − μ) γ/σ + β."""
    dtype = conv.weight.dtype
    # in float64 so that the folded float32 parameters are rounded once
    scale = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.data
    b = np.zeros(conv.out_channels) if conv.bias is None else conv.bias.data.astype(np.float64)
    b = (b - bn.running_mean) * scale + (0.0 if bn.bias is None else bn.bias.data)
    conv.weight = Parameter(conv.weight.data * scale.reshape(-1, 1, 1, 1), dtype)
    conv.register_parameter("bias", Parameter(b, dtype))
    return conv


def fuse(model: Sequential) -> Sequential:
    r"""An evaluation-mode copy of ``model`` in which every :class:`BatchNorm2d` that directly follows
    a :class:`Conv2d` is folded into the convolution's weight and bias:

    .. math::
        w' = w \frac{\gamma}{\sigma}, \qquad b' = (b - \mu) \frac{\gamma}{\sigma} + \beta,
        \qquad \sigma = \sqrt{\mathrm{Var}_{running} + \epsilon}

    A ReLU or LeakyReLU that followed the batch norm then directly follows the convolution, and
    :class:`Sequential` runs the pair as one ``conv2d(..., activation=...)`` call in evaluation.
    Batch norms without running statistics (``track_running_stats=False``) normalise with the batch's
    statistics even in evaluation, so they are kept. Nested Sequentials are fused too. ``model``
    itself is not changed. The copy computes the same outputs up to rounding; it is for inference
    (its backward gives the gradients of the folded parameters).

    Args:
        model: a :class:`Sequential`.

    Returns:
        a new :class:`Sequential` in evaluation mode.

    Example::

        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> fast = fuse(model)
        >>> len(fast), type(fast[0]).__name__
        (2, 'Conv2d')
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"fuse: model must be a Sequential, got {type(model).__name__}")
    model = copy.deepcopy(model).eval()
    return _fuse_in_place(model)


def _fuse_in_place(model: Sequential) -> Sequential:
    items = [(n, m) for n, m in model.named_children()]
    out = OrderedDict()
    i = 0
    while i < len(items):
        name, m = items[i]
        nxt = items[i + 1][1] if i + 1 < len(items) else None
        if (type(m) is Conv2d and type(nxt) is BatchNorm2d and nxt.running_mean is not None
                and nxt.num_features == m.out_channels):
            out[name] = _fold(m, nxt)
            i += 2
            continue
        out[name] = _fuse_in_place(m) if isinstance(m, Sequential) else m
        i += 1
    return Sequential(out, fuse=model.fuse).eval()
