"""Fixtures: ``isa`` runs a native test once per usable ISA, ``gemm`` once per GEMM backend,
``conv_algo`` once per 3x3 stride-1 algorithm;
``dtype`` over float32/float64."""

from __future__ import annotations

import numpy as np
import pytest


def _usable_isas():
    try:
        import relucore

        return list(relucore.runtime_info()["usable_isas"])
    except Exception:  # noqa: BLE001  (not built: the native tests then report the import error)
        return ["<no native module>"]


def _forced(use, value):
    """Apply relucore.<use>(value) for a test and restore the previous setting afterwards."""
    import relucore

    with getattr(relucore, use)(value):
        yield value


@pytest.fixture(params=_usable_isas())
def isa(request):
    """Force one dispatch target for the test, restore the previous one afterwards."""
    yield from _forced("use_isa", request.param)


@pytest.fixture(params=["own", "blas"])
def gemm(request):
    """Force one GEMM backend (relucore's register tile or OpenBLAS), restore the setting afterwards."""
    yield from _forced("use_gemm", request.param)


@pytest.fixture(params=["gemm", "winograd"])
def conv_algo(request):
    """Force the 3x3 stride-1 convolution algorithm ('winograd': every such layer, whatever its
    channel count), restore the setting afterwards."""
    yield from _forced("use_conv_algorithm", request.param)


@pytest.fixture
def rc(isa):
    """The native module, with ``isa`` forced."""
    import relucore

    return relucore


@pytest.fixture
def ref():
    import relucore.reference

    return relucore.reference


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng(request):
    """A generator seeded from the test id, so every test is reproducible on its own."""
    import zlib

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
