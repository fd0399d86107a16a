"""relucore.ufuncs cases: the ufunc next to NumPy's expression, next to the functional call, and
through dask.distributed.

* ``ufuncs.relu`` vs ``np.maximum(x, 0)`` (and ``torch.relu``) at every size: the per-call cost of
  NumPy's ufunc machinery is the same on both sides, so at 1K this is overhead against overhead.
* ``ufuncs.relu`` vs ``relucore.relu``: the "numpy" column of this row is the *functional* call
  (``[np: rc.relu]`` in the label), i.e. what the ufunc route costs or saves.
* ``ufuncs.leaky_relu(x, w[:, None, None])`` (PReLU by broadcasting) vs NumPy's PReLU expression:
  NumPy calls the inner loop once per (n, c) plane, the loop runs the kernel on it.
* dask: ``ufuncs.relu`` (and ``np.maximum(x, 0)`` in the numpy column) over a 64M-element
  chunked array held by a ``LocalCluster`` of 1 or 2 worker processes (1 thread each, loopback),
  results persisted on the workers (nothing gathered): bytes read+written per second against the
  copy bandwidth. Only when dask and distributed are importable, not with ``--quick``, and only when
  the run's sizes reach 16M (a large-array case); one cluster at a time, closed at exit.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any, Dict, List, Sequence

import numpy as np

import relucore as rc
from relucore import ufuncs

from .cases import Case
from .elementwise import Inputs, _per_channel, np_prelu, np_relu
from .noise import any_noisy

DASK_N = 64 * 1024 * 1024  # elements of the dask array
DASK_CHUNKS = 8  # chunks along the batch axis (8M elements each)
DASK_WORKERS = (1, 2)
DASK_MIN_SIZE = 16 * 1024 * 1024  # dask cases only in runs that reach this size


def _ref():
    import relucore.reference as reference

    return reference


def _u_prelu(x, w):
    return ufuncs.leaky_relu(x, _per_channel(w, x.ndim))


# ---- dask.distributed ----------------------------------------------------------------------------

_cluster: Dict[str, Any] = {}  # the one live cluster: workers, dtype, cluster, client, x


def _close_cluster() -> None:
    client, cluster = _cluster.pop("client", None), _cluster.pop("cluster", None)
    _cluster.clear()
    if client is not None:
        client.close(timeout=60)
    if cluster is not None:
        cluster.close(timeout=60)


atexit.register(_close_cluster)


def _dask_available() -> bool:
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except Exception:  # noqa: BLE001  (missing or broken: no dask cases)
        return False
    return True


def _dask_input(workers: int, dtype: np.dtype):
    """The persisted (N, 16, 32, 32) standard-normal array on a cluster of ``workers`` processes."""
    if _cluster.get("workers") == workers and _cluster.get("dtype") == dtype:
        return _cluster["x"]
    _close_cluster()
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster, timeout=60)
    _cluster.update(workers=workers, dtype=dtype, cluster=cluster, client=client)
    shape = Inputs(DASK_N, dtype).shape
    x = da.random.RandomState(0).standard_normal(shape, chunks=(shape[0] // DASK_CHUNKS,) + shape[1:])
    x = x.astype(dtype).persist()
    wait(x, timeout=300)
    _cluster["x"] = x
    return x


def _persisted(y):
    """Compute ``y`` on the workers and keep it there (what a pipeline's next stage would read)."""
    from distributed import wait

    y = y.persist()
    wait(y, timeout=300)
    return y


def _dask_relu(x):
    return _persisted(ufuncs.relu(x))


def _dask_np_relu(x):
    return _persisted(np.maximum(x, 0))


def _dask_cases(dtype: np.dtype) -> List[Case]:
    shape = Inputs(DASK_N, dtype).shape
    out = []
    for workers in DASK_WORKERS:
        out.append(Case(
            f"dask_ufunc_relu_{workers}w", f"dask ufuncs.relu {workers} worker{'s' if workers > 1 else ''}",
            n=DASK_N, dtype=dtype.name, shape=shape, suite=__name__,
            make_inputs=lambda w=workers: (_dask_input(w, dtype),),
            relucore=_dask_relu, numpy=_dask_np_relu, bytes=2 * DASK_N * dtype.itemsize))
    return out


# ---- the cases -----------------------------------------------------------------------------------


def cases(sizes: Sequence[int], dtype, quick: bool = False) -> List[Case]:
    dtype = np.dtype(dtype)
    out = []
    for n in sizes:
        d = Inputs(n, dtype)
        nb = n * dtype.itemsize
        common = dict(n=n, dtype=dtype.name, shape=d.shape, suite=__name__)
        out += [
            Case("ufunc_relu", "ufuncs.relu", make_inputs=lambda d=d: (d.x,), relucore=ufuncs.relu,
                 numpy=np_relu, torch=lambda t: t.relu, reference=lambda x: _ref().relu(x), bytes=2 * nb,
                 **common),
            Case("ufunc_vs_functional", "ufuncs.relu [np: rc.relu]", make_inputs=lambda d=d: (d.x,),
                 relucore=ufuncs.relu, numpy=rc.relu, reference=lambda x: _ref().relu(x), bytes=2 * nb,
                 **common),
            Case("ufunc_prelu", "ufuncs prelu (w broadcast)", make_inputs=lambda d=d: (d.x, d.weight),
                 relucore=_u_prelu, numpy=np_prelu, torch=lambda t: t.nn.functional.prelu,
                 reference=lambda x, w: _ref().prelu(x, w), bytes=2 * nb, **common),
        ]
    if not quick and sizes and max(sizes) >= DASK_MIN_SIZE and _dask_available():
        out += _dask_cases(dtype)
    return out


def targets(rows: List[dict]) -> List[dict]:
    """The ufunc target, float32: ``ufuncs.relu`` faster than ``np.maximum(x, 0)`` at every size."""
    sel = [r for r in rows if r["op"] == "ufunc_relu" and r["dtype"] == "float32"]
    if not sel:
        return []
    got = {r["size"]: r["speedup_vs_numpy"] for r in sel}
    worst = min(got, key=got.get)
    return [{"target": "ufuncs.relu faster than np.maximum(x, 0) at every size", "met": got[worst] > 1,
             "values": got, "worst": worst, "detail": ", ".join(f"{k} {v:.2f}x" for k, v in got.items()),
             "noisy": any_noisy(sel)}]


def notes(rows: List[dict], threads: int) -> List[str]:
    """What the numpy column means in the rows where it is not NumPy."""
    lines = []
    if any(r["op"] == "ufunc_vs_functional" for r in rows):
        lines.append("ufuncs.relu [np: rc.relu]: the numpy column is relucore's functional call, relucore.relu(x)")
    dask_rows = [r for r in rows if r["op"].startswith("dask_")]
    if dask_rows:
        lines.append(f"dask rows: {DASK_N // (1 << 20)}M elements in {DASK_CHUNKS} chunks on a LocalCluster "
                     "(1 thread per worker process), results persisted on the workers; numpy column: "
                     "np.maximum(x, 0) on the same cluster; % of a single-threaded same-size copy")
    return lines
