"""Batch-1 inference of the example CNN: relucore (the model as it is, and fused) vs the NumPy
backend vs PyTorch eager, one benchmark group per row.

The cases are ``relucore-bench``'s (:mod:`relucore.bench.inference`); every result is asserted
against the same model on the NumPy backend.
"""

import numpy as np
import pytest

from relucore.bench import inference
from relucore.bench.cases import IMPLS

CASES = inference.cases([], np.float32) + inference.cases([], np.float64)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_inference(run_case, case, impl):
    run_case(case, impl)
