"""One training step of the example CNN: relucore vs its numpy backend vs PyTorch eager.

The case is ``relucore-bench``'s (:mod:`relucore.bench.training`): forward, cross-entropy, backward
and SGD with momentum, float32 and float64, on a batch of 64 MNIST-size images (``relucore-bench
--ops train_step``). Every result (the loss and each parameter's gradient) is asserted against the
same step on :mod:`relucore.reference`.
"""

import numpy as np
import pytest

from relucore.bench import training
from relucore.bench.cases import IMPLS

CASES = training.cases([], np.float32) + training.cases([], np.float64)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.dtype}")
def test_training_step(run_case, case, impl):
    run_case(case, impl)


def test_rows_and_targets_small(torch):
    """The case's rows run through relucore-bench's timing on a small batch, with their targets."""
    from relucore.bench.cli import run_case
    from relucore.bench.limits import Limits
    from relucore.bench.timing import TimerConfig

    config = TimerConfig.quick()
    rows = []
    for dtype in (np.float32, np.float64):
        (case,) = training.cases([], dtype, shape=(4, 1, 8, 8))
        rows.append(run_case(case, config, Limits(config), torch, "same-size"))
    assert [r["label"] for r in rows] == ["train step f32", "train step f64"]
    for r in rows:
        assert r["op"] == "train_step" and r["shape"] == [4, 1, 8, 8]
        assert r["relucore"]["median"] > 0 and r["speedup_vs_numpy"] > 0
        assert (r["speedup_vs_torch"] is None) == (torch is None)
    found = training.targets(rows)
    assert len(found) == 4
    assert {t["target"] for t in found} == {
        "train step f32 >= 1.5x PyTorch eager", "train step f32 >= 20x the numpy backend",
        "train step f64 >= 1.5x PyTorch eager", "train step f64 >= 20x the numpy backend"}
    assert all(t["met"] in (True, False, None) for t in found)
    assert "4 x 1x8x8" in training.notes(rows, 2)[0]


def test_each_call_is_the_same_step():
    """Every call restores the starting state first: repeated calls give the same loss and gradients."""
    (case,) = training.cases([], np.float64, shape=(4, 1, 8, 8))
    inputs = case.make_inputs()
    first = [np.array(a) for a in case.relucore(*inputs)]
    for _ in range(2):
        again = case.relucore(*inputs)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
    case.verify(first, case.reference(*inputs), inputs)


def test_listed_by_relucore_bench(capsys):
    from relucore.bench import main

    assert main(["--list", "--ops", "train_step"]) == 0
    assert "train_step" in capsys.readouterr().out
