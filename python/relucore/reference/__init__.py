"""Plain-NumPy reference implementations of the relucore API.

The correctness oracle for the native kernels and the ``"numpy"`` backend:
every function has the signature, return convention and argument errors of its
native twin (docs/api.md), written for reading rather than speed. Nothing here
imports the compiled extension.
"""

from . import activations, conv, loss, norm
from .activations import *  # noqa: F401,F403  (the names listed in activations.__all__)
from .conv import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403

__all__ = activations.__all__ + conv.__all__ + norm.__all__ + loss.__all__
