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


def test_targets():
    rows = [{"op": "infer_b1_eval", "label": "batch-1 inference f32 (eval)", "speedup_vs_torch": 2.5},
            {"op": "infer_b1_fused", "label": "batch-1 inference f64 (fused)", "speedup_vs_torch": 1.5,
             "noisy": True},
            {"op": "infer_b1_eval", "label": "batch-1 inference f64 (eval)", "speedup_vs_torch": None},
            {"op": "bn_relu_eval_8x8", "label": "bn+relu eval 8x8", "speedup_vs_torch": 9.0}]
    got = inference.targets(rows)
    assert [(t["met"], t.get("noisy", False)) for t in got] == [(True, False), (False, True), (None, False)]
    assert got[0]["target"] == "batch-1 inference f32 (eval) >= 2x PyTorch eager"
    assert got[0]["detail"] == "2.50x"

