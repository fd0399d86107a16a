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
from relucore.bench.peers import load_torch


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
