"""Softmax cross-entropy: relucore vs NumPy vs PyTorch, one benchmark group per op and shape.

The cases are ``relucore-bench``'s (:mod:`relucore.bench.loss`); ``relucore-bench --ops
'cross_entropy*,softmax*'`` runs them alone. Every result is asserted against
:mod:`relucore.reference`.
"""

import numpy as np
import pytest

from relucore.bench import loss
from relucore.bench.cases import IMPLS

CASES = loss.cases([], np.float32)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.op)
def test_loss(run_case, case, impl):
    run_case(case, impl)
