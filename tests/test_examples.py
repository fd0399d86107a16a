"""The digits training example: its quick mode reaches the bound its docs state, deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from relucore.examples import digits

QUICK_BOUND = 0.90  # held-out accuracy of --quick on the generated digits (README, "Train a network")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_quick_mode_reaches_its_bound(dtype, capsys):
    history = digits.main(["--quick", "--dtype", dtype])
    out = capsys.readouterr().out
    assert len(history) == 5 and "held-out accuracy" in out
    assert history[-1][1] >= QUICK_BOUND
    assert history[-1][0] < history[0][0]


def test_generated_digits_are_deterministic_and_labelled():
    a, la = digits.generated_digits(50, seed=3)
    b, lb = digits.generated_digits(50, seed=3)
    c, _ = digits.generated_digits(50, seed=4)
    assert a.shape == (50, 8, 8) and la.shape == (50,)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)
    assert set(np.unique(la)) <= set(range(10))


def test_load_data_splits_and_standardises():
    x_tr, y_tr, x_te, y_te, name = digits.load_data("generated", seed=0, n_generated=100)
    assert name == "generated"
    assert x_tr.shape == (80, 1, 8, 8) and x_te.shape == (20, 1, 8, 8)
    assert len(y_tr) == 80 and len(y_te) == 20
    assert abs(x_tr.mean()) < 1e-9 and abs(x_tr.std() - 1) < 1e-9
    with pytest.raises(ValueError, match="source"):
        digits.load_data("mnist")


def test_model_maps_images_to_ten_logits():
    for dtype in (np.float32, np.float64):
        y = digits.make_model(dtype)(np.zeros((3, 1, 8, 8), dtype))
        assert y.shape == (3, 10) and y.dtype == dtype


def test_quick_takes_an_explicit_epoch_count(capsys):
    assert len(digits.main(["--quick", "--epochs", "2"])) == 2


def test_bad_arguments_exit_with_usage(capsys):
    for args, message in ((["--epochs", "0"], "--epochs and --batch must be >= 1"),
                          (["--seed", "-1"], "--seed must be >= 0"),
                          (["--threads", "999"], "--threads must be in [1, "), (["--threads", "0"], "--threads must be in")):
        with pytest.raises(SystemExit) as e:
            digits.main(args)
        assert e.value.code == 2 and message in capsys.readouterr().err
