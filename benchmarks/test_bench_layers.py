"""CS231n-style three-layer convnet: relucore.layers vs the NumPy im2col layers, forward+backward.

The case is ``relucore-bench``'s (:mod:`relucore.bench.layers`) on a batch of 4 so that a plain
``pytest benchmarks`` stays fast; ``relucore-bench --dtype float64 --ops 'convnet3*'`` runs the
32-image batch. Every result is asserted against :mod:`relucore.reference`.
"""

import numpy as np
import pytest

from relucore.bench import layers
from relucore.bench.cases import IMPLS

CASES = layers.cases([], np.float64, n=4) + layers.cases([], np.float32, n=4)


@pytest.mark.parametrize("impl", [i for i in IMPLS if i != "torch"])  # no PyTorch peer
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.dtype}")
def test_layers(run_case, case, impl):
    run_case(case, impl)


def test_numpy_layers_match_reference():
    """The NumPy baseline is itself the network: its loss and gradients match relucore.reference's."""
    inputs = layers.operands(np.float64, 2)
    got = layers.three_layer_convnet(layers.NUMPY_LAYERS, *inputs)
    want = layers.three_layer_convnet(layers._reference_layers(), *inputs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-15)


def test_targets_judge_float64_row():
    row = {"op": "convnet3_fwdbwd", "dtype": "float64", "speedup_vs_numpy": 12.5, "noisy": False}
    (t,) = layers.targets([row, dict(row, dtype="float32", speedup_vs_numpy=1.0)])
    assert t["met"] is True and t["detail"] == "12.50x"
    (t,) = layers.targets([dict(row, speedup_vs_numpy=9.0)])
    assert t["met"] is False
    assert layers.targets([dict(row, dtype="float32")]) == []
