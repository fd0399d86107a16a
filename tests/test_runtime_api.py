"""relucore.runtime's public API: use_isa, use_gemm, use_conv_algorithm (set now; as context managers
restore on exit, nested and on exceptions), their getters, release_scratch, the top-level re-exports,
the lazy ``relucore.ufuncs`` and ``__version__``, and the environment overrides at import."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import threading
import typing

import numpy as np
import pytest
import relucore as rc
import relucore.runtime as runtime

USABLE = tuple(rc.runtime_info()["usable_isas"])

# (use_*, get_*, every accepted value, the runtime_info key showing it or None)
SETTINGS = {
    "isa": (rc.use_isa, rc.get_isa, USABLE, "isa"),
    "gemm": (rc.use_gemm, rc.get_gemm, ("auto", "own", "blas"), None),
    "conv": (rc.use_conv_algorithm, rc.get_conv_algorithm, ("auto", "gemm", "winograd"), "conv_algo"),
}
CASES = [(kind, v) for kind, (_, _, values, _) in SETTINGS.items() for v in values]


def _other(values, current):
    """A value other than ``current`` (or ``current`` if there is only one)."""
    return next((v for v in values if v != current), current)


@pytest.fixture(autouse=True)
def unchanged():
    """Every test leaves the three settings as it found them (and each must put them back itself)."""
    before = [get() for _, get, _, _ in SETTINGS.values()]
    yield
    after = [get() for _, get, _, _ in SETTINGS.values()]
    for (use, _, _, _), b in zip(SETTINGS.values(), before):
        use(b)
    assert after == before, "a setting was not restored"


@pytest.mark.parametrize("kind,value", CASES, ids=[f"{k}-{v}" for k, v in CASES])
def test_with_block_sets_then_restores(kind, value):
    use, get, _, key = SETTINGS[kind]
    before = get()
    with use(value) as entered:
        assert entered is None
        assert get() == value
        if key:
            assert rc.runtime_info()[key] == value
    assert get() == before


@pytest.mark.parametrize("kind", SETTINGS)
def test_call_sets_immediately_and_stays(kind):
    use, get, values, _ = SETTINGS[kind]
    before = get()
    value = _other(values, before)
    guard = use(value)  # no with block: in force from now on, like torch.set_grad_enabled
    assert get() == value
    assert repr(guard) == f"{use.__name__}({value!r})"
    rc.relu(np.ones(3))  # other calls do not reset it
    assert get() == value
    use(before)
    assert get() == before


@pytest.mark.parametrize("kind", SETTINGS)
def test_nesting_restores_in_order(kind):
    use, get, values, _ = SETTINGS[kind]
    before = get()
    outer, inner = values[-1], values[0]
    with use(outer):
        with use(inner):
            assert get() == inner
            with use(outer):
                assert get() == outer
            assert get() == inner
        assert get() == outer
    assert get() == before


@pytest.mark.parametrize("kind", SETTINGS)
def test_restored_after_an_exception(kind):
    use, get, values, _ = SETTINGS[kind]
    before = get()
    with pytest.raises(KeyError, match="inside"):
        with use(_other(values, before)):
            with use(values[0]):
                raise KeyError("inside")
    assert get() == before


def test_settings_are_independent():
    with rc.use_isa("scalar"), rc.use_gemm("blas"), rc.use_conv_algorithm("gemm"):
        assert (rc.get_isa(), rc.get_gemm(), rc.get_conv_algorithm()) == ("scalar", "blas", "gemm")
        with rc.use_gemm("own"):
            assert (rc.get_isa(), rc.get_conv_algorithm()) == ("scalar", "gemm")


def test_setting_is_process_wide():
    """Set in one thread, seen in another (and by the calls made there)."""
    seen = []
    with rc.use_isa("scalar"), rc.use_gemm("blas"):
        t = threading.Thread(target=lambda: seen.append((rc.get_isa(), rc.runtime_info()["gemm"])))
        t.start()
        t.join()
    assert seen == [("scalar", "scipy-openblas32")]


def test_settings_change_the_path_taken(isa):
    """The GEMM and algorithm settings reach the kernels: the same layer gives results that differ
    in rounding (Winograd vs direct sum), and each matches the reference."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    exp = rc.reference.conv2d(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
    with rc.use_conv_algorithm("winograd"):
        wino = rc.conv2d(x, w, None, 1, 1)
    with rc.use_conv_algorithm("gemm"):
        direct = rc.conv2d(x, w, None, 1, 1)
    assert wino.tobytes() != direct.tobytes()
    for y in (wino, direct):
        np.testing.assert_allclose(y, exp, rtol=1e-4, atol=1e-4)


# Not a str -> TypeError; a str that is not a choice -> ValueError; both list the choices.
BAD = [(None, TypeError), (1, TypeError), (b"auto", TypeError), (["auto"], TypeError), ("", ValueError),
       ("bogus", ValueError), ("AUTO", ValueError), (" auto", ValueError), ("neon", ValueError)]


@pytest.mark.parametrize("kind", SETTINGS)
@pytest.mark.parametrize("bad,exc", BAD, ids=[repr(b) for b, _ in BAD])
def test_bad_name_raises_listing_the_choices(kind, bad, exc):
    use, get, values, _ = SETTINGS[kind]
    before = get()
    start = f"{use.__name__}(): name must be a str" if exc is TypeError else f"{use.__name__}(): name {bad!r} is not"
    with pytest.raises(exc, match=re.escape(start)) as e:
        use(bad)
    assert all(repr(v) in str(e.value) for v in values), str(e.value)
    assert get() == before


def test_isa_not_usable_here_names_the_usable_ones():
    missing = [n for n in ("scalar", "avx2", "avx512") if n not in USABLE]
    for name in missing + ["sse2"]:
        with pytest.raises(ValueError, match="usable on this build and CPU") as e:
            rc.use_isa(name)
        assert f"choose one of {', '.join(map(repr, USABLE))}" in str(e.value)


def test_release_scratch(isa, gemm):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 10, 10))
    w = rng.standard_normal((5, 4, 3, 3))
    first = rc.conv2d(x, w, None, 1, 1)
    assert rc.release_scratch() is None
    rc.release_scratch()  # nothing kept: still fine
    assert rc.conv2d(x, w, None, 1, 1).tobytes() == first.tobytes()
    np.testing.assert_allclose(first, rc.reference.conv2d(x, w, None, 1, 1), rtol=1e-10, atol=1e-10)


NAMES = ["use_isa", "get_isa", "use_gemm", "get_gemm", "use_conv_algorithm", "get_conv_algorithm",
         "release_scratch", "runtime_info", "show_runtime", "set_num_threads", "get_num_threads"]


@pytest.mark.parametrize("name", NAMES)
def test_exported_at_the_top_level(name):
    assert getattr(rc, name) is getattr(runtime, name)
    assert name in rc.__all__ and name in runtime.__all__


@pytest.mark.parametrize("name", NAMES)
def test_documented_and_annotated(name):
    f = getattr(runtime, name)
    hints = typing.get_type_hints(f)  # every annotation resolves on this Python
    assert "return" in hints and all(p in hints for p in f.__code__.co_varnames[:f.__code__.co_argcount])
    assert f.__doc__ and f.__doc__.strip()
    if name.startswith("use_"):
        for section in ("Args:", "Returns:", "Raises:", "Example::"):
            assert section in f.__doc__, (name, section)


def test_every_name_in_all_exists():
    for name in rc.__all__:
        assert getattr(rc, name) is not None, name
    assert "ufuncs" in dir(rc) and "__version__" in dir(rc)


def _fresh(code, **env):
    """Run ``code`` in a new interpreter outside the source tree, without relucore's overrides unless given."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("RELUCORE_")}
    e.update(env)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120,
                       cwd=os.path.dirname(__file__), check=False)
    assert r.returncode == 0, r.stderr
    return r


def test_ufuncs_without_importing_them():
    r = _fresh("import sys, relucore\n"
               "print('relucore.ufuncs' in sys.modules)\n"
               "import numpy as np\n"
               "print(isinstance(relucore.ufuncs.relu, np.ufunc), relucore.ufuncs is sys.modules['relucore.ufuncs'])\n"
               "from relucore import *\n"
               "print(ufuncs is relucore.ufuncs)")
    assert r.stdout.split() == ["False", "True", "True", "True"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="'relucore' has no attribute 'nope'"):
        rc.nope  # noqa: B018


def test_version_is_the_installed_metadata():
    assert rc.__version__ == importlib.metadata.version("relucore") == rc.runtime_info()["version"]


def test_version_without_metadata(monkeypatch):
    """A source tree that was never installed has no metadata: "0+unknown", not an error."""
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert rc._installed_version() == "0+unknown"


def test_py_typed_is_installed():
    import importlib.resources

    assert (importlib.resources.files("relucore") / "py.typed").is_file()


@pytest.mark.parametrize("env,expected", [
    ({"RELUCORE_ISA": "scalar"}, "scalar auto auto"),
    ({"RELUCORE_GEMM": "blas", "RELUCORE_CONV": "winograd"}, None),
    ({"RELUCORE_ISA": USABLE[-1], "RELUCORE_GEMM": "own", "RELUCORE_CONV": "gemm"}, f"{USABLE[-1]} own gemm"),
], ids=["isa", "gemm+conv", "all"])
def test_environment_overrides_at_import(env, expected):
    r = _fresh("import relucore as rc; print(rc.get_isa(), rc.get_gemm(), rc.get_conv_algorithm())", **env)
    assert r.stdout.split() == (expected or f"{USABLE[-1]} blas winograd").split()
    assert "Warning" not in r.stderr
