"""runtime_info, the RELUCORE_ISA, RELUCORE_GEMM and RELUCORE_CONV overrides, thread-count independence
and threadpoolctl."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import relucore as rc
import relucore.reference as ref
from _helpers import assert_bitwise, make_data


def _run(code, **env):
    """Run ``code`` in a fresh interpreter (from the tests' directory, so the installed package is used)."""
    e = dict(os.environ)
    e.pop("RELUCORE_ISA", None)
    e.pop("RELUCORE_GEMM", None)
    e.pop("RELUCORE_CONV", None)
    e.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False, capture_output=True, text=True, env=e, timeout=120, cwd=os.path.dirname(__file__),
    )


def test_runtime_info_keys():
    info = rc.runtime_info()
    for key in ("isa", "compiled_isas", "usable_isas", "num_threads", "gemm", "blas", "conv_algo", "version"):
        assert key in info, key
    assert "scalar" in info["compiled_isas"] and "scalar" in info["usable_isas"]
    assert set(info["usable_isas"]) <= set(info["compiled_isas"])
    assert info["isa"] in info["usable_isas"]
    assert info["num_threads"] == rc.get_num_threads() >= 1
    assert info["version"] == rc.__version__


def test_default_isa_is_the_best_usable():
    r = _run("import relucore; i = relucore.runtime_info(); print(i['isa'], i['usable_isas'][-1])")
    assert r.returncode == 0, r.stderr
    chosen, best = r.stdout.split()
    assert chosen == best


@pytest.mark.parametrize("name", rc.runtime_info()["usable_isas"])
def test_env_override(name):
    r = _run("import relucore; print(relucore.runtime_info()['isa'])", RELUCORE_ISA=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name
    assert "Warning" not in r.stderr


@pytest.mark.parametrize("value", ["bogus", "neon"])
def test_env_override_unknown_value_warns_and_falls_back(value):
    code = """
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import relucore
        msgs = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]
        assert any("RELUCORE_ISA" in m for m in msgs), [str(x.message) for x in w]
        i = relucore.runtime_info()
        assert i["isa"] == i["usable_isas"][-1], i
        import numpy as np
        assert relucore.relu(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]
        print("ok", i["isa"])
    """
    r = _run(code, RELUCORE_ISA=value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


@pytest.mark.parametrize("value", ["own", "blas", "auto", "BLAS "])
def test_gemm_env_override(value):
    code = """
        import relucore, numpy as np
        x, w = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
        assert (relucore.linear(x, w) == 3).all()
        print(relucore.get_gemm(), relucore.runtime_info()["gemm"])
    """
    r = _run(code, RELUCORE_GEMM=value)
    assert r.returncode == 0, r.stderr
    setting, info = r.stdout.split(" ", 1)
    assert setting == value.strip().lower()
    assert info.startswith("relucore") == (setting == "own" or (setting == "auto" and rc.get_isa() == "avx512"))
    assert "Warning" not in r.stderr


@pytest.mark.parametrize("value", ["gemm", "winograd", "fft", "auto"])
def test_conv_env_override(value):
    r = _run("import relucore; print(relucore.runtime_info()['conv_algo'])", RELUCORE_CONV=value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == value and "Warning" not in r.stderr


@pytest.mark.parametrize("var,value,getter", [("RELUCORE_CONV", "direct", "get_conv_algorithm"),
                                              ("RELUCORE_GEMM", "mkl", "get_gemm")])
def test_choice_env_override_unknown_value_warns(var, value, getter):
    code = f"""
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import relucore
        assert any("{var}" in str(x.message) for x in w), [str(x.message) for x in w]
        print(relucore.{getter}())
    """
    r = _run(code, **{var: value})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "auto"


def test_use_isa_round_trip():
    before = rc.get_isa()
    for name in rc.runtime_info()["usable_isas"]:
        with rc.use_isa(name):
            assert rc.get_isa() == name == rc.runtime_info()["isa"]
        assert rc.get_isa() == before
    with pytest.raises(ValueError, match="bogus"):
        rc.use_isa("bogus")
    assert rc.get_isa() == before


@pytest.fixture
def threads():
    before = rc.get_num_threads()
    yield
    rc.set_num_threads(before)
    assert rc.get_num_threads() == before


def test_set_num_threads(threads):
    rc.set_num_threads(1)
    assert rc.get_num_threads() == 1 and rc.runtime_info()["num_threads"] == 1
    rc.set_num_threads(2)
    assert rc.get_num_threads() == 2
    with pytest.raises(ValueError):
        rc.set_num_threads(0)


def test_results_do_not_depend_on_thread_count(isa, threads, dtype):
    rng = np.random.default_rng(42)
    shape = (8, 16, 150, 160)  # 3,072,000 elements
    x = make_data(rng, shape, dtype, special_frac=0.01)
    dy = make_data(rng, shape, dtype, special_frac=0.0)
    w = rng.standard_normal(16).astype(dtype)
    results = []
    for n in (1, 2):
        rc.set_num_threads(n)
        assert rc.get_num_threads() == n
        y, m, c = rc.relu(x, return_mask=True, return_counts=True)
        dx, dw = rc.prelu_backward(dy, x, w)
        results.append((y, m, c, dx, dw))
    for a, b, what in zip(results[0], results[1], ("y", "mask", "counts", "dx", "dweight")):
        assert_bitwise(a, b, f"1 vs 2 threads: {what}")
    # and they are right
    y, m, c = ref.relu(x, return_mask=True, return_counts=True)
    assert_bitwise(results[0][1], m)
    assert_bitwise(results[0][2], c)


def test_threadpoolctl_sees_relucore():
    """Imported before or after relucore, threadpoolctl lists it and its limits apply to it."""
    for first in ("threadpoolctl", "relucore"):
        second = "relucore" if first == "threadpoolctl" else "threadpoolctl"
        code = f"""
            import {first}, {second}
            info = [d for d in threadpoolctl.threadpool_info() if d["user_api"] == "relucore"]
            print(len(info), info[0]["num_threads"], info[0]["version"] == relucore.__version__)
            with threadpoolctl.threadpool_limits(1):
                print(relucore.get_num_threads())
            with threadpoolctl.threadpool_limits(limits=1, user_api="relucore"):
                print(relucore.get_num_threads())
            print(relucore.get_num_threads())
        """
        r = _run(code, OMP_NUM_THREADS="3")
        assert r.returncode == 0, r.stderr
        listed, inside, inside_api, outside = r.stdout.splitlines()
        assert listed == "1 3 True", (first, listed)
        assert inside == inside_api == "1"
        assert outside == "3"


def test_import_does_not_import_threadpoolctl():
    r = _run("import sys, relucore; print('threadpoolctl' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_threadpool_limits_in_process(threads):
    import threadpoolctl

    rc.set_num_threads(2)
    with threadpoolctl.threadpool_limits(1):
        assert rc.get_num_threads() == 1
        assert rc.runtime_info()["num_threads"] == 1
    assert rc.get_num_threads() == 2
