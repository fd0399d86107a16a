"""Elementwise activations: relucore vs NumPy vs PyTorch, one benchmark group per op.

The cases (inputs, the three implementations, bytes moved, tolerances) are the ones
``relucore-bench`` runs (:mod:`relucore.bench.elementwise`); here each implementation is timed
by pytest-benchmark and its result asserted against :mod:`relucore.reference`.
Sizes: 1K and 1M float32 elements, and 16M for ``relu_out`` (the copy-bandwidth target).
"""

import numpy as np
import pytest

from relucore.bench import elementwise
from relucore.bench.cases import IMPLS, snapshot
from relucore.bench.peers import to_numpy, to_torch

K, M = 1 << 10, 1 << 20

CASES = sorted(
    elementwise.cases([K, M], np.float32)
    + [c for c in elementwise.cases([16 * M], np.float32) if c.op == "relu_out"],
    key=lambda c: (c.op, c.n),
)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.size}")
def test_activation(benchmark, case, impl, torch):
    fn = case.impl(impl, torch)
    if fn is None:
        pytest.skip("PyTorch is not installed" if torch is None else f"PyTorch has no {case.label}")
    inputs = case.make_inputs()
    args = to_torch(torch, inputs) if impl == "torch" else inputs

    benchmark.group = case.op
    benchmark.extra_info.update(size=case.size, dtype=case.dtype, shape=list(case.shape), bytes=case.bytes)
    result = snapshot(to_numpy(torch, benchmark(fn, *args)))

    case.verify(result, case.reference(*inputs), inputs)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and case.bytes:
        benchmark.extra_info["GB/s"] = round(case.bytes / stats.stats.median / 1e9, 2)
