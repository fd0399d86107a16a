"""relucore's elementwise kernels as real NumPy ufuncs.

Each name below is a :class:`numpy.ufunc` with float32 and float64 loops that call the same
dispatched SIMD kernels as :mod:`relucore.activations` (threaded for large contiguous operands), so
NumPy supplies the rest: broadcasting, ``out=`` (also in place), ``where=``, ``dtype=``,
``casting=``, views of any strides, and the ``__array_ufunc__`` protocol through which dask.array,
xarray and ``numpy.ma`` accept them unchanged. (The two-input ufuncs also have NumPy's ``reduce``
and ``accumulate``, computed in order like NumPy's own, for what they are worth.) Parameters
(slope, alpha) are broadcast operands, so PReLU over an NCHW array is
``leaky_relu(x, w[:, None, None])``.

=======================================  ===============================================
``relu(x)``                              ``0 if x < 0 else x`` (keeps -0.0 and NaN)
``relu_backward(dy, x)``                 ``dy if not (x <= 0) else 0`` (0 at x == 0)
``leaky_relu(x, negative_slope)``        ``x if x > 0 else x * negative_slope``
``leaky_relu_backward(dy, x, slope)``    ``dy if x > 0 else dy * slope``
``elu(x, alpha)``                        ``x if not (x <= 0) else alpha * expm1(x)``
``elu_backward(dy, x, alpha)``           ``dy * alpha * exp(x) if x <= 0 else dy``
``sigmoid(x)``                           ``1 / (1 + exp(-x))``
``sigmoid_backward(dy, y)``              ``dy * y * (1 - y)`` with ``y = sigmoid(x)``
``tanh(x)``                              ``tanh(x)``
``tanh_backward(dy, y)``                 ``dy * (1 - y * y)`` with ``y = tanh(x)``
=======================================  ===============================================

Values are those of the functions of the same names in :mod:`relucore` (docs/api.md): bitwise for
relu, leaky_relu and their backward; within a few ULP of :mod:`relucore.reference` for elu,
sigmoid and their backward. Differences from the functional API are NumPy's: parameters have no
defaults (``leaky_relu(x, 0.01)``); other real dtypes are cast by NumPy's safe-casting rules
(bool, int8/16, uint8/16 and float16 compute in float32, wider integers in float64) rather than
rejected; complex input raises ``TypeError``; parameters are cast to the loop's dtype (a float32
``x`` with a Python-float slope computes in float32). The loops never raise NumPy floating-point
warnings (``relu(nan)`` is ``nan``, ``sigmoid(-1000.0)`` is ``0.0``, silently, whatever
``np.errstate`` says).

Example::

    >>> import numpy as np
    >>> from relucore import ufuncs
    >>> x = np.array([[-1.0, 0.0, 2.0]], dtype=np.float32)
    >>> ufuncs.relu(x)
    array([[0., 0., 2.]], dtype=float32)
    >>> ufuncs.leaky_relu(x, np.array([[0.1], [0.2]], dtype=np.float32))   # broadcast slope
    array([[-0.1,  0. ,  2. ],
           [-0.2,  0. ,  2. ]], dtype=float32)
    >>> ufuncs.relu(x, out=x, where=x > -0.5)    # in place, only where the condition holds
    array([[-1.,  0.,  2.]], dtype=float32)

A ufunc pickles by name (``pickle.loads(pickle.dumps(ufuncs.relu)) is ufuncs.relu``), which is how
dask.distributed ships it to its workers.
"""

from __future__ import annotations

import numpy as np

from . import _core

_UFUNCS = _core._ufuncs  # two per activation of cpp/include/relucore/activations.inc

__all__ = list(_UFUNCS)
globals().update(_UFUNCS)


def _name_them() -> None:
    """Tell pickle where the ufuncs live.

    NumPy pickles a ufunc as its ``__name__``, looked up in ``__module__`` when the ufunc has one
    (NumPy >= 2.2 gives ufuncs a ``__dict__``), else in the first imported module holding an
    attribute of that name that *is* the ufunc: only this module does (``_core`` keeps them in a
    dict), so the reference is ``relucore.ufuncs.relu`` either way.
    """
    for name in __all__:
        f = globals()[name]
        try:
            f.__module__ = __name__
            f.__qualname__ = name
        except (AttributeError, TypeError):  # NumPy < 2.2: no instance attributes
            pass


_name_them()
