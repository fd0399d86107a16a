"""Batch norm + ReLU: relucore vs NumPy vs PyTorch, one benchmark group per op and shape.

The cases are ``relucore-bench``'s (:mod:`relucore.bench.norm`) on the issue's small shape and a
scaled-down larger one, so that a plain ``pytest benchmarks`` stays fast;
``relucore-bench --ops 'bn*'`` runs the full-size shapes. Every result is asserted against
:mod:`relucore.reference`.
"""

import numpy as np
import pytest

from relucore.bench import norm
from relucore.bench.cases import IMPLS, snapshot
from relucore.bench.peers import to_numpy, to_torch

CASES = norm.cases([], np.float32, shapes=(("8x8", 8, 32, 8, 8), ("28x28", 4, 16, 28, 28)))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.op)
def test_batch_norm(benchmark, case, impl, torch):
    fn = case.impl(impl, torch)
    if fn is None:
        pytest.skip("PyTorch is not installed")
    inputs = case.make_inputs()
    args = to_torch(torch, inputs) if impl == "torch" else inputs

    benchmark.group = case.op
    benchmark.extra_info.update(dtype=case.dtype, shape=list(case.shape), bytes=case.bytes)
    result = snapshot(to_numpy(torch, benchmark(fn, *args)))

    case.verify(result, case.reference(*inputs), inputs)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and case.bytes:
        benchmark.extra_info["GB/s"] = round(case.bytes / stats.stats.median / 1e9, 2)
