"""One CPU-feature list per ISA: the features its objects are compiled for are those dispatch
verifies, dispatch uses an ISA only when every one is present, and the per-ISA objects share no
symbol (scripts/check_isa_symbols.py, run after every build)."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

import pytest
import relucore as rc

core = rc.runtime  # the private feature hooks live there
COMPILED = rc.runtime_info()["compiled_isas"]

# dispatch's feature names -> the flag Linux shows in /proc/cpuinfo for the same CPUID bit
LINUX_FLAG = {
    "SSE3": "pni", "SSSE3": "ssse3", "SSE4_1": "sse4_1", "SSE4_2": "sse4_2", "POPCNT": "popcnt",
    "XSAVE": "xsave", "AVX": "avx", "FMA": "fma", "F16C": "f16c", "AVX2": "avx2", "BMI1": "bmi1",
    "BMI2": "bmi2", "AVX512F": "avx512f", "AVX512DQ": "avx512dq", "AVX512BW": "avx512bw",
    "AVX512VL": "avx512vl",
}


def test_every_compiled_isa_has_a_feature_list():
    assert list(core._isa_features()) == COMPILED
    assert list(core._compiled_features()) == COMPILED
    assert core._isa_features()["scalar"] == []


@pytest.mark.parametrize("isa", COMPILED)
def test_features_compiled_are_the_features_checked(isa):
    compiled, checked = set(core._compiled_features()[isa]), set(core._isa_features()[isa])
    assert compiled - checked == set(), f"{isa} objects use features dispatch never checks"
    assert checked - compiled == set(), f"dispatch requires features {isa} objects were not compiled for"


def test_isas_grow_in_capability():
    lists = [set(core._isa_features()[isa]) for isa in COMPILED]
    for smaller, larger in zip(lists, lists[1:]):
        assert smaller < larger


@pytest.mark.parametrize("isa", COMPILED)
def test_isa_usable_only_with_every_listed_feature(isa):
    need = core._isa_features()[isa]
    assert isa in core._usable_isas_with(need)
    for missing in need:
        without = [f for f in need if f != missing]
        assert isa not in core._usable_isas_with(without), f"{isa} usable without {missing}"


def test_scalar_is_usable_on_any_cpu():
    assert core._usable_isas_with([]) == ["scalar"]


def test_usable_isas_follow_this_cpus_features():
    cpu = set(core._cpu_features())
    expected = [isa for isa in COMPILED if set(core._isa_features()[isa]) <= cpu]
    assert rc.runtime_info()["usable_isas"] == expected
    assert core._usable_isas_with(sorted(cpu)) == expected


def test_cpu_features_agree_with_the_kernel():
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo on this system")
    with open("/proc/cpuinfo") as f:
        line = next((ln for ln in f if ln.startswith("flags")), None)
    if line is None:
        pytest.skip("/proc/cpuinfo has no x86 flags line")
    flags = set(line.split(":", 1)[1].split())
    known = {f for isa in COMPILED for f in core._isa_features()[isa]}
    assert known <= set(LINUX_FLAG)
    assert set(core._cpu_features()) == {f for f in known if LINUX_FLAG[f] in flags}


def test_unknown_feature_name_is_rejected():
    with pytest.raises(ValueError, match="NEON"):
        core._usable_isas_with(["AVX2", "NEON"])


# --- the symbol check -------------------------------------------------------------------------

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_isa_symbols.py"


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location("check_isa_symbols", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("mangled", "isa", "inside"),
    [
        ("_ZN8relucore4avx23fooEv", "avx2", True),
        ("_ZN8relucore4avx23fooEv", "scalar", False),
        ("_ZN8relucore6scalar16make_elementwiseIdEENS_18ElementwiseKernelsIT_EEv", "scalar", True),
        ("_ZN8relucore6scalar16make_elementwiseIdEENS_18ElementwiseKernelsIT_EEv", "avx2", False),
        ("_ZNK8relucore6avx5125F32x165storeEPf", "avx512", True),         # const member function
        ("_ZTVN8relucore4avx21XE", "avx2", True),                        # vtable
        ("_ZGVZN8relucore4avx23fooEvE1x", "avx2", True),                 # guard of a local static
        ("_ZZN8relucore4avx23fooEvE1x", "avx2", True),                   # local static
        ("_ZThn8_N8relucore4avx21X1fEv", "avx2", True),                  # thunk
        ("__ZN8relucore4avx23fooEv", "avx2", True),                     # Mach-O spelling
        ("_ZN8relucore5avx213fooEv", "avx2", False),                     # namespace avx21
        ("_ZN8relucore3ops3fooEv", "avx2", False),
        ("_ZN8relucore3fooIN8relucore4avx21XEEEvv", "avx2", False),      # relucore:: template of an ISA type
        ("_ZSt4swapIfEvRT_S1_", "avx2", False),                          # std::swap<float>
        ("_ZNSt6vectorIN8relucore4avx21XEE9push_backEv", "avx2", False),  # std:: member on an ISA type
        ("_Z6helperv", "avx2", False),
        ("DW.ref.__gxx_personality_v0", "avx2", False),
        ("helper", "avx2", False),
    ],
)
def test_symbol_namespace(checker, mangled, isa, inside):
    assert checker.in_namespace(mangled, isa) is inside


def _objects(tmp_path, **symbols):
    """Text files in nm's format standing in for objects, and an 'nm' that prints them."""
    nm = tmp_path / "nm"
    nm.write_text('#!/bin/sh\nexec cat "$2"\n')
    nm.chmod(nm.stat().st_mode | stat.S_IXUSR)
    paths = {}
    for name, lines in symbols.items():
        p = tmp_path / f"{name}.o"
        p.write_text("".join(f"0000000000000000 {kind} {sym}\n" for kind, sym in lines))
        paths[name] = str(p)
    return str(nm), paths


CLEAN = {
    "scalar": [("T", "_ZN8relucore6scalar12kernel_tableEv"), ("W", "_ZN8relucore6scalar3maxIfEET_S2_S2_"),
               ("V", "DW.ref.__gxx_personality_v0"), ("t", "_Z11local_helperv"), ("r", ".LC0")],
    "avx2": [("T", "_ZN8relucore4avx212kernel_tableEv"), ("u", "_ZN8relucore4avx29ExpConstsIfE4coefE"),
             ("V", "DW.ref.__gxx_personality_v0"), ("t", "_Z11local_helperv")],
    "base": [("T", "_ZN8relucore10active_isaEv"), ("W", "_ZNSt6vectorIiED2Ev")],
}


def test_symbol_check_passes_clean_objects(checker, tmp_path, capsys):
    nm, p = _objects(tmp_path, **CLEAN)
    assert checker.main(["--nm", nm, "--isa", "scalar", p["scalar"], "--isa", "avx2", p["avx2"],
                         "--base", p["base"]]) == 0
    assert "every exported symbol" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("where", "kind", "sym", "message"),
    [
        ("avx2", "W", "_Z6helperv", "outside relucore::avx2::"),                   # inline helper, global namespace
        ("avx2", "T", "_ZN8relucore6scalar3fooEv", "outside relucore::avx2::"),     # another ISA's namespace
        ("avx2", "u", "_ZNSt6vectorIfE9push_backEv", "outside relucore::avx2::"),   # std:: instance
        ("base", "W", "_ZN8relucore4avx212kernel_tableEv", "more than one of: avx2, baseline"),
        ("avx2", "t", "_GLOBAL__sub_I_activations.cpp", "at load"),                # a dynamic initializer
    ],
)
def test_symbol_check_fails_on_a_shared_symbol(checker, tmp_path, capsys, where, kind, sym, message):
    objs = {k: list(v) for k, v in CLEAN.items()}
    objs[where].append((kind, sym))
    nm, p = _objects(tmp_path, **objs)
    assert checker.main(["--nm", nm, "--isa", "scalar", p["scalar"], "--isa", "avx2", p["avx2"],
                         "--base", p["base"]]) == 1
    assert message in capsys.readouterr().err


def test_symbol_check_fails_when_two_isas_define_one_symbol(checker, tmp_path, capsys):
    # The same object given for two ISAs: each defines the other's symbols.
    nm, p = _objects(tmp_path, scalar=CLEAN["scalar"])
    assert checker.main(["--nm", nm, "--isa", "scalar", p["scalar"], "--isa", "avx2", p["scalar"]]) == 1
    err = capsys.readouterr().err
    assert "more than one of: avx2, scalar" in err and "outside relucore::avx2::" in err
