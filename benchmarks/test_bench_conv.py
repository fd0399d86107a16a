"""Convolution path: relucore vs NumPy (im2col + matmul) vs PyTorch, one benchmark group per layer and op.

The cases are ``relucore-bench``'s (:mod:`relucore.bench.conv`: inputs, the three implementations,
flops) on scaled-down versions of its layers, so that a plain ``pytest benchmarks`` stays fast;
``relucore-bench --ops 'conv*'`` runs the full-size layers. Every result is asserted against
:mod:`relucore.reference`. Groups are ``<op>-<layer>``, e.g. ``conv2d_fwdbwd-res``.
"""

import json

import numpy as np
import pytest

from relucore.bench import conv, main
from relucore.bench.cases import IMPLS, snapshot
from relucore.bench.peers import to_numpy, to_torch

L = conv.Layer
SMALL_LAYERS = (
    L("res", "resnet", 4, 32, 16, 16, 32, 3, padding=1),  # ResNet-like 3x3
    L("stem", "stem", 4, 3, 32, 32, 16, 7, stride=2, padding=3),  # 7x7 stride-2 stem
    L("mnist", "mnist", 64, 1, 28, 28, 16, 3, padding=1),  # MNIST-size (full size: it is small)
    L("b1", "batch1", 1, 32, 28, 28, 32, 3, padding=1),  # batch 1
    L("dw", "depthwise", 4, 32, 28, 28, 32, 3, padding=1, groups=32),  # depthwise 3x3
)

CASES = (
    [c for lay in SMALL_LAYERS for c in conv.layer_cases(lay, np.float32, peak_memory=False)]
    + conv.linear_cases(np.float32, 64, 256, 256)
    + conv.linear_wt_cases(np.float32, 16, 1100, 12)
    + conv.pool_cases(np.float32, (4, 16, 28, 28))
    + conv.pool_cases(np.float32, (4, 6, 24, 24))[:1]
)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.size}")
def test_conv(benchmark, case, impl, torch):
    fn = case.impl(impl, torch)
    if fn is None:
        pytest.skip("PyTorch is not installed" if torch is None else f"PyTorch has no {case.label}")
    inputs = case.make_inputs()
    args = to_torch(torch, inputs) if impl == "torch" else inputs

    benchmark.group = f"{case.op}-{case.size}"
    benchmark.extra_info.update(size=case.size, dtype=case.dtype, shape=list(case.shape), flops=case.flops,
                                bytes=case.bytes)
    result = snapshot(to_numpy(torch, benchmark(fn, *args)))

    case.verify(result, case.reference(*inputs), inputs)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and case.flops:
        benchmark.extra_info["GFLOP/s"] = round(case.flops / stats.stats.median / 1e9, 2)
    elif stats is not None and case.bytes:
        benchmark.extra_info["GB/s"] = round(case.bytes / stats.stats.median / 1e9, 2)


def test_numpy_baseline_is_not_relucore():
    """The baseline is plain NumPy: it matches the reference on a strided, padded, grouped layer."""
    lay = L("odd", "other", 2, 6, 11, 9, 4, 3, stride=2, padding=1, groups=2)
    d = conv.Inputs(lay, np.float64)
    ref = __import__("relucore.reference", fromlist=["conv2d"])
    np.testing.assert_allclose(conv.np_conv2d(d.x, d.weight, d.bias, 2, 1, 2),
                               ref.conv2d(d.x, d.weight, d.bias, 2, 1, 1, 2), rtol=1e-12, atol=1e-12)
    for got, want in zip(conv.np_conv2d_backward(d.dy, d.x, d.weight, 2, 1, 2),
                         ref.conv2d_backward(d.dy, d.x, d.weight, 2, 1, 1, 2)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_relucore_bench_conv_json(tmp_path, capsys):
    """``relucore-bench`` on the quick conv forward cases: sgemm limit, GFLOP/s rows, memory, targets."""
    path = tmp_path / "bench.json"
    assert main(["--quick", "--ops", "conv2d", "--no-torch", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sgemm 1024^3" in out and "%sgemm" in out and "scratch MB" in out

    doc = json.loads(path.read_text())
    assert doc["limits"]["sgemm"]["gflops"] > 0 and doc["limits"]["sgemm"]["numpy_gflops"] > 0
    rows = doc["rows"]
    assert {r["size"] for r in rows} == set(conv.QUICK_LAYERS)
    for r in rows:
        assert r["op"] == "conv2d" and r["rate"] > 0 and r["pct"] > 0 and r["pct_of"] == "sgemm"
        assert r["layer"]["cols_batch_bytes"] == r["layer"]["cols_image_bytes"] * r["layer"]["x"][0]
        if r["memory"] is not None:  # None only where VmHWM cannot be reset
            assert r["memory"]["scratch_bytes"] >= 0
    assert doc["targets"] == []  # the targets are judged on fwd+bwd rows only
