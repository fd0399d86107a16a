"""``relucore-bench`` end to end on one small size: it runs, checks, prints a table, writes JSON.

A plain test (no ``benchmark`` fixture), so ``--benchmark-only`` skips it.
"""

import json
import platform
import subprocess
import sys

from relucore.bench import main


def test_relucore_bench_quick_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    ops = "relu*,leaky_relu*,elu*,prelu*,sigmoid*,tanh*"  # the elementwise suite only (conv: test_bench_conv)
    # --system-malloc: the test process's malloc stays as pytest started it
    assert main(["--quick", "--sizes", "1K", "--no-torch", "--ops", ops, "--json", str(path), "--system-malloc"]) == 0
    out = capsys.readouterr().out
    assert "copy bandwidth" in out and "relu_backward" in out
    assert "malloc: as the system sets it" in out

    doc = json.loads(path.read_text())
    assert doc["machine"]["malloc"] == "as the system sets it"
    assert doc["limits"]["copy"]["reference"]["gbps"] > 0
    ops = {row["op"] for row in doc["rows"]}
    assert {"relu", "relu_out", "relu_backward", "prelu_backward", "sigmoid", "tanh"} <= ops
    for row in doc["rows"]:
        assert row["size"] == "1K" and row["relucore"]["median"] > 0 and row["speedup_vs_numpy"] > 0
        assert row["pct_of_copy_same_size"] > 0


def test_relucore_bench_list_and_bad_args(capsys):
    assert main(["--list", "--sizes", "1K", "--ops", "relu*"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert all(line.startswith("relu") for line in listed if line)
    assert main(["--sizes", "1X"]) == 2
    assert main(["--ops", "nothing-like-this"]) == 2
    capsys.readouterr()
    # checked before any timing: a thread count past the limit, an unwritable --json, sizes past memory
    for args, message in ((["--threads", "999"], "--threads must be in [1, "),
                          (["--json", "/proc/no-such-dir/out.json"], "--json: cannot write"),
                          (["--sizes", "1000G"], "do not fit in this machine's memory"),
                          (["--sizes", ","], "no sizes given")):
        assert main(["--quick", "--no-torch", "--ops", "relu", *args]) == 2
        assert message in capsys.readouterr().err


def test_relucore_bench_aborts_on_a_wrong_result(monkeypatch, capsys):
    import numpy as np

    import relucore

    monkeypatch.setattr(relucore, "relu", lambda x, **kwargs: np.zeros_like(x))
    assert main(["--quick", "--sizes", "1K", "--ops", "relu", "--no-torch"]) == 1
    err = capsys.readouterr().err
    assert "relu (1K, float32" in err and "does not match NumPy" in err


def test_bench_malloc_fixes_glibc_thresholds():
    """In a fresh process (the setting is process-wide): on glibc both thresholds are set and
    described; elsewhere nothing is set and None says so."""
    code = ("from relucore.bench.malloc import keep_freed_memory as k; import numpy as np; "
            "d = k(); np.ones(1 << 22).sum(); print(repr(d))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if platform.libc_ver()[0] == "glibc":
        assert "mmap threshold 32 MiB" in r.stdout and "trim threshold 1024 MiB" in r.stdout
    else:
        assert r.stdout.strip() == "None"
