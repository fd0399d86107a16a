"""Softmax cross-entropy: relucore vs NumPy vs PyTorch, one benchmark group per op and shape.

The cases are ``relucore-bench``'s (:mod:`relucore.bench.loss`); ``relucore-bench --ops
'cross_entropy*,softmax*'`` runs them alone. Every result is asserted against
:mod:`relucore.reference`.
"""

import numpy as np
import pytest

from relucore.bench import loss
from relucore.bench.cases import IMPLS, snapshot
from relucore.bench.peers import to_numpy, to_torch

CASES = loss.cases([], np.float32)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.op)
def test_loss(benchmark, case, impl, torch):
    fn = case.impl(impl, torch)
    if fn is None:
        pytest.skip("PyTorch is not installed")
    inputs = case.make_inputs()
    args = to_torch(torch, inputs) if impl == "torch" else inputs

    benchmark.group = case.op
    benchmark.extra_info.update(dtype=case.dtype, shape=list(case.shape), bytes=case.bytes)
    result = snapshot(to_numpy(torch, benchmark(fn, *args)))

    case.verify(result, case.reference(*inputs), inputs)
