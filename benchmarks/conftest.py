"""Shared fixtures for the pytest-benchmark suites.

Run the suites with ``pytest benchmarks --benchmark-only`` (or ``--benchmark-enable``). The
project's pytest options say ``--benchmark-disable``, so a plain ``pytest benchmarks`` runs every
benchmark once as an ordinary test (each also asserts its result against ``relucore.reference``);
``--benchmark-only`` turns benchmarking back on here (pytest-benchmark alone would refuse it next
to ``--benchmark-disable``). PyTorch is used when it is installed and skipped otherwise; it runs with
relucore's thread count so that the comparison is like for like.
"""

import pytest

import relucore as rc
from relucore.bench.cases import snapshot
from relucore.bench.peers import load_torch, to_numpy, to_torch


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if config.getoption("benchmark_only", False) and config.getoption("benchmark_disable", False):
        config.option.benchmark_enable = True


@pytest.fixture(scope="session")
def torch():
    """The ``torch`` module (with relucore's thread count), or None when it is not installed."""
    t = load_torch()
    if t is not None:
        t.set_num_threads(rc.get_num_threads())
    return t


@pytest.fixture
def run_case(benchmark, torch):
    """``run_case(case, impl)``: time one implementation of a relucore-bench case (skipped without
    PyTorch for "torch") and assert its result against relucore.reference."""

    def run(case, impl):
        fn = case.impl(impl, torch)
        if fn is None:
            pytest.skip("PyTorch is not installed")
        inputs = case.make_inputs()
        args = to_torch(torch, inputs) if impl == "torch" else inputs
        benchmark.group = case.op
        benchmark.extra_info.update(dtype=case.dtype, shape=list(case.shape), bytes=case.bytes)
        result = snapshot(to_numpy(torch, benchmark(fn, *args)))
        case.verify(result, case.reference(*inputs), inputs)
        stats = getattr(benchmark, "stats", None)
        if stats is not None and case.bytes:
            benchmark.extra_info["GB/s"] = round(case.bytes / stats.stats.median / 1e9, 2)

    return run
