"""python -m relucore.experiments: each experiment in --quick mode, its conclusion checked against
what its numbers must show, and the command line with and without matplotlib and tqdm."""

import sys

import numpy as np
import pytest

from relucore import experiments

_results = {}


def quick(name):
    """The quick run of ``name`` over seeds 0, 1, 2, computed once per test session."""
    if name not in _results:
        _results[name] = experiments.run(name, seed=0, seeds=3, quick=True)
    return _results[name]


def test_every_experiment_is_listed():
    assert set(experiments.EXPERIMENTS) == {"negative-weights", "zigzag", "relu-grad-at-zero", "vanishing",
                                            "bn-relu-order", "dying-relu"}
    with pytest.raises(ValueError, match="zigzag"):
        experiments.run("nope")


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_result_shape(name):
    r = quick(name)
    assert r.name == name and r.seeds == [0, 1, 2]
    assert r.rows and all(len(row) == len(r.headers) for row in r.rows)
    assert r.conclusion.endswith(".") and r.conclusion.replace("et al.", "").count(". ") == 0  # one sentence
    assert "3 seeds" in r.conclusion


def test_negative_weights():
    m = quick("negative-weights").metrics
    assert m["flipped"] > 0  # some initially positive weights went negative
    assert 0.3 < m["after"] < 0.7 and 0.3 < m["after_wd"] < 0.7 and m["lowest_after"] > 0.2
    assert f"{100 * m['lowest_after']:.0f}%" in quick("negative-weights").conclusion


def test_zigzag():
    r = quick("zigzag")
    m = r.metrics
    # one example: a unit's weight gradient is its error times the input, all of one sign
    assert m["coherence_positive"] == 1.0 and m["same_way_positive"] == 1.0
    assert m["coherence_centred"] < 0.75 and m["same_way_centred"] < 0.75
    assert m["coherence_positive_b16"] > m["coherence_centred_b16"]
    assert m["steps_positive"] > 2 * m["steps_centred"]
    assert "100.0 ± 0.0%" in r.conclusion


def test_relu_grad_at_zero():
    r = quick("relu-grad-at-zero")
    m = r.metrics
    for d in ("float32", "float32 + BN", "float64"):
        for g in ("0.5", "1"):
            assert m[f"{d}_gap_{g}"] < 0.02  # the three choices end within a small loss difference
    assert m["float64_runs_changed"] == 0 and m["float64_zeros"] == 0
    assert 0 <= m["float32_runs_changed"] <= 1
    assert f"{round(3 * m['float32_runs_changed'])} of 3 float32 runs" in r.conclusion


def test_vanishing():
    r = quick("vanishing")
    m = r.metrics
    # deep sigmoid gradients shrink layer by layer faster than ReLU's
    assert m["factor_sigmoid"] < 0.6 * m["factor_relu"] and m["ratio_sigmoid"] < 1e-3
    assert m["idempotence_mismatches"] == 0
    assert f"{m['ratio_sigmoid']:.2g} times" in r.conclusion


def test_bn_relu_order():
    r = quick("bn-relu-order")
    m = r.metrics
    # BN then ReLU at the ordinary rate keeps fewer dead units than the provoking rate
    assert m["dead_bn-relu_0.001"] < m["dead_bn-relu_0.1"]
    assert m["dead_bn-relu_0.001"] < m["dead_no bn_0.1"]
    assert all(0 <= v <= 1 for v in m.values())


def test_dying_relu():
    r = quick("dying-relu")
    m = r.metrics
    assert m["dead_relu_0.1"] > m["dead_relu_0.001"]
    assert m["dead_leaky relu_0.1"] <= m["dead_relu_0.1"]
    assert "ReLU units never positive" in r.conclusion


def test_seeds_change_the_numbers():
    a = experiments.run("zigzag", seed=5, seeds=3, quick=True)
    assert a.seeds == [5, 6, 7] and a.metrics != quick("zigzag").metrics
    with pytest.raises(ValueError, match="seeds"):
        experiments.run("zigzag", seeds=0)


def test_command_line(tmp_path, capsys):
    assert experiments.main(["zigzag", "--quick", "--seeds", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "zigzag (seeds 0..2, quick)" in out.out and "sign coherence, batch 1" in out.out
    assert (tmp_path / "zigzag.csv").read_text().startswith("layer input,kind,")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (tmp_path / "zigzag.png").exists()
    else:
        assert 1000 < (tmp_path / "zigzag.png").stat().st_size < 200_000


def test_command_line_without_matplotlib_and_tqdm(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert experiments.main(["vanishing", "--quick", "--seeds", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "vanishing [" in out.err and "15/15" in out.err  # the plain progress bar
    assert [p.name for p in tmp_path.iterdir()] == ["vanishing.csv"]
    assert "relu(relu(x)) equalled relu(x)" in out.out


def test_command_line_errors(capsys):
    with pytest.raises(SystemExit):
        experiments.main(["nope"])
    with pytest.raises(SystemExit):
        experiments.main(["zigzag", "--seeds", "0"])
    assert "--seeds must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        experiments.main(["zigzag", "--seed", "-1"])
    assert "--seed must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # checked before the run
        experiments.main(["zigzag", "--quick", "--seeds", "1", "--out", "/proc/no-such-dir"])
    assert "--out: cannot create" in capsys.readouterr().err


def test_idempotence_check_counts_a_difference(monkeypatch):
    """The idempotence check would see a relu that is not idempotent."""
    from relucore.experiments import vanishing

    real = vanishing.rc.relu
    calls = []

    def flaky(x):
        y = real(x)
        calls.append(1)
        if len(calls) % 2 == 0:  # the second application flips the sign of zeros
            y = np.where(y == 0, -y, y)
        return y

    monkeypatch.setattr(vanishing.rc, "relu", flaky)
    counts = vanishing.idempotence_mismatches(n=1000)
    assert all(bad > 0 for bad, _ in counts.values())
