"""relucore.ufuncs inside the NumPy ecosystem, through ``__array_ufunc__`` and friends: dask.array
(lazy, chunked, equal), xarray (coordinates and attributes kept), numpy.ma (mask kept), and a
dask.distributed LocalCluster of 2 worker processes on loopback (the same answer as one process).

dask, distributed and xarray are test extras (``pip install '.[test]'``): without them these tests fail.
"""

from __future__ import annotations

import dask
import dask.array as da
import distributed
import numpy as np
import pytest
import xarray as xr
from _helpers import assert_bitwise, make_data

import relucore
from relucore import ufuncs

TIMEOUT = 60  # seconds: any single wait on the cluster


# --------------------------------------------------------------------------- dask.array


def test_dask_lazy_chunked_equal(rng):
    x = make_data(rng, (64, 48), np.float32)
    dy = make_data(rng, (64, 48), np.float32)
    dx = da.from_array(x, chunks=(16, 24))
    ddy = da.from_array(dy, chunks=(16, 24))

    calls = []

    def counting(block):  # a task that only runs when the graph is computed
        if block.size:  # (dask calls it once on an empty array to infer the result type)
            calls.append(block.shape)
        return block

    y = ufuncs.relu(dx.map_blocks(counting, dtype=dx.dtype))
    assert isinstance(y, da.Array) and calls == []
    assert y.chunks == dx.chunks and y.dtype == np.float32
    with dask.config.set(scheduler="threads"):
        got = y.compute()
    assert len(calls) == 4 * 2
    assert_bitwise(got, ufuncs.relu(x), "dask relu")
    assert_bitwise(got, relucore.reference.relu(x), "dask relu vs reference")

    # several dask operands and a broadcast parameter (PReLU over rows)
    w = np.linspace(-0.5, 0.5, 64, dtype=np.float32)[:, None]
    z = ufuncs.leaky_relu_backward(ddy, dx, w)
    assert isinstance(z, da.Array) and z.chunks == dx.chunks
    assert_bitwise(z.compute(scheduler="sync"), ufuncs.leaky_relu_backward(dy, x, w), "dask leaky backward")
    e = ufuncs.elu(dx, da.from_array(np.float32(0.5)))
    assert_bitwise(e.compute(scheduler="sync"), ufuncs.elu(x, np.float32(0.5)), "dask elu")


# --------------------------------------------------------------------------- xarray


def test_xarray_keeps_coords_and_attrs(rng):
    x = make_data(rng, (3, 5), np.float64)
    a = xr.DataArray(x, dims=("batch", "unit"), coords={"batch": [10, 20, 30], "unit": list("abcde")},
                     attrs={"units": "V", "layer": "fc1"}, name="h")
    y = ufuncs.relu(a)
    assert isinstance(y, xr.DataArray)
    assert y.dims == a.dims and y.attrs == a.attrs
    for name in a.coords:
        assert y.coords[name].equals(a.coords[name])
    assert_bitwise(y.values, relucore.reference.relu(x), "xarray relu")

    # a parameter DataArray aligned by name (one slope per unit)
    slope = xr.DataArray(np.linspace(0.1, 0.5, 5), dims=("unit",), coords={"unit": list("abcde")})
    z = ufuncs.leaky_relu(a, slope)
    assert z.dims == a.dims and z.coords["unit"].equals(a.coords["unit"])
    assert_bitwise(z.values, ufuncs.leaky_relu(x, slope.values), "xarray prelu")


def test_xarray_over_dask_stays_lazy(rng):
    x = make_data(rng, (8, 6), np.float32)
    a = xr.DataArray(da.from_array(x, chunks=(4, 6)), dims=("n", "c"), attrs={"units": "V"})
    y = ufuncs.sigmoid(a)
    assert isinstance(y.data, da.Array) and y.attrs == {"units": "V"}
    assert_bitwise(y.compute().values, ufuncs.sigmoid(x), "xarray+dask sigmoid")


# --------------------------------------------------------------------------- numpy.ma


def test_masked_array_keeps_mask(rng):
    x = make_data(rng, (4, 9), np.float32, special_frac=0)
    mask = rng.random(x.shape) < 0.3
    m = np.ma.masked_array(x, mask=mask)
    y = ufuncs.relu(m)
    assert isinstance(y, np.ma.MaskedArray)
    np.testing.assert_array_equal(y.mask, mask)
    assert_bitwise(y.data[~mask], relucore.reference.relu(x)[~mask], "masked relu")

    dy = np.ma.masked_array(np.ones_like(x), mask=mask.T[::-1].T)  # another mask: the union is kept
    g = ufuncs.relu_backward(dy, m)
    np.testing.assert_array_equal(g.mask, mask | dy.mask)
    keep = ~(mask | dy.mask)
    assert_bitwise(g.data[keep], relucore.reference.relu_backward(np.ones_like(x), x)[keep], "masked backward")


# --------------------------------------------------------------------------- dask.distributed


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (1 thread each) on 127.0.0.1, shut down after the module."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        silence_logs=40, death_timeout=TIMEOUT,
    )
    try:
        with distributed.Client(cluster, timeout=TIMEOUT) as c:
            c.wait_for_workers(2, timeout=TIMEOUT)
            yield c
    finally:
        cluster.close(timeout=TIMEOUT)


def test_distributed_ufunc_over_chunks(client, rng):
    import os

    pids = client.run(os.getpid)
    assert len(pids) == 2 and os.getpid() not in pids.values()

    x = make_data(rng, (512, 256), np.float32, special_frac=0.01)
    dx = da.from_array(x, chunks=(64, 256))
    w = np.linspace(0.05, 0.3, 256, dtype=np.float32)
    futures = client.compute([ufuncs.relu(dx), ufuncs.leaky_relu(dx, w), ufuncs.elu_backward(dx, dx, 0.5)])
    relu_y, prelu_y, elu_dx = client.gather(futures, errors="raise")
    assert_bitwise(relu_y, ufuncs.relu(x), "distributed relu")
    assert_bitwise(prelu_y, ufuncs.leaky_relu(x, w), "distributed prelu")
    assert_bitwise(elu_dx, ufuncs.elu_backward(x, x, 0.5), "distributed elu_backward")

    # the ufunc object itself is shipped (pickled by name) and run on a worker
    f = client.submit(ufuncs.relu, x, pure=False)
    assert_bitwise(f.result(timeout=TIMEOUT), ufuncs.relu(x), "submitted ufunc")
    where = client.who_has(f)
    assert where and all(addr.startswith("tcp://127.0.0.1:") for addrs in where.values() for addr in addrs)


def test_distributed_conv_relu_batch_inference(client, rng):
    """A conv-ReLU layer over a batch-chunked array with map_blocks equals the one-process answer."""
    n, c, h, w_, f = 16, 3, 12, 12, 8
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    weight = (rng.standard_normal((f, c, 3, 3)) * 0.2).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)

    def layer(block, weight, bias):
        import relucore as rc
        from relucore import ufuncs as u

        return u.relu(rc.conv2d(block, weight, bias, padding=1))

    dx = da.from_array(x, chunks=(4, c, h, w_))
    y = dx.map_blocks(layer, weight=weight, bias=bias, chunks=((4,) * 4, (f,), (h,), (w_,)), dtype=np.float32)
    got = client.compute(y).result(timeout=TIMEOUT)
    want = layer(x, weight, bias)
    assert got.shape == want.shape == (n, f, h, w_) and got.dtype == np.float32
    # GEMM blocking may differ with the batch size of a call: equal up to float rounding
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
