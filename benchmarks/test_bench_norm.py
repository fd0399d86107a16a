"""Batch norm + ReLU: relucore vs NumPy vs PyTorch, one benchmark group per op and shape.

The cases are ``relucore-bench``'s (:mod:`relucore.bench.norm`) on the issue's small shape and a
scaled-down larger one, so that a plain ``pytest benchmarks`` stays fast;
``relucore-bench --ops 'bn*'`` runs the full-size shapes. Every result is asserted against
:mod:`relucore.reference`.
"""

import numpy as np
import pytest

from relucore.bench import norm
from relucore.bench.cases import IMPLS

CASES = norm.cases([], np.float32, shapes=(("8x8", 8, 32, 8, 8), ("28x28", 4, 16, 28, 28)))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.op)
def test_batch_norm(run_case, case, impl):
    run_case(case, impl)
