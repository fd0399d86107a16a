"""relucore.distributed: shard() in process; the MPI parts under ``mpiexec -n 2`` (tests/_mpi_worker.py)
against the same training computed in one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import relucore.distributed as dist
import relucore.nn as nn
from relucore.examples import digits

WORKER = Path(__file__).with_name("_mpi_worker.py")
TIMEOUT = 60  # seconds per mpiexec run; each takes about one second


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return exe


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="mpi4py (and mpiexec) not installed: pip install '.[mpi]'")


def run_mpi(*args: str, ranks: int = 2) -> subprocess.CompletedProcess:
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, str(WORKER), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} ran past {TIMEOUT} s (a hang)\nstderr:\n{e.stderr}")


def run_digits(*args: str, ranks: int = 2) -> subprocess.CompletedProcess:
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "relucore.examples.digits", "--distributed", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=2 * TIMEOUT, check=False,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} ran past {2 * TIMEOUT} s (a hang)\nstderr:\n{e.stderr}")


def epoch_lines(out: str) -> list:
    """The per-epoch ``(loss, accuracy %)`` lines the digits example prints."""
    rows = []
    for line in out.splitlines():
        if line.startswith("epoch ") and "held-out accuracy" in line:
            loss, acc = line.split("loss ")[1].split(", held-out accuracy ")
            rows.append((float(loss), float(acc.rstrip("%"))))
    return rows


def results(*args: str) -> dict:
    r = run_mpi(*args)
    assert r.returncode == 0, f"mpiexec failed ({r.returncode}):\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ MPI runs


@needs_mpi
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("bucket_bytes", [dist.DEFAULT_BUCKET_BYTES, 1000])
def test_sync_batchnorm_two_ranks_match_one_rank_double_batch(dtype, tol, bucket_bytes):
    r = results("train", "sync", dtype, str(bucket_bytes))
    assert len(r["params"]) == 6
    assert max(r["params"]) < tol, r["params"]
    assert max(r["buffers"]) < 10 * tol, r["buffers"]  # running stats: the global statistics
    assert max(r["loss"]) < tol, r["loss"]
    assert all(r["same_params"]) and all(r["same_buffers"]), r
    assert (r["calls"] == 1) == (bucket_bytes == dist.DEFAULT_BUCKET_BYTES), r["calls"]


@needs_mpi
def test_plain_batchnorm_uses_per_rank_statistics():
    r = results("train", "plain", "float64", str(dist.DEFAULT_BUCKET_BYTES))
    assert max(r["params"]) < 1e-12 and max(r["loss"]) < 1e-12, r
    assert max(r["buffers"]) < 1e-12, r  # rank 0's running statistics
    assert all(r["same_params"]), r
    # each rank's forward updates its own running stats; the next forward broadcasts rank 0's
    assert not any(r["same_buffers"]), r


@needs_mpi
def test_gradients_averaged_in_buckets_per_dtype():
    r = results("buckets")
    # float32: 1007 values in 128-value buckets (8 calls), float64: 300 in 64 (5); then 1307 float64 in 21
    assert r["calls"] == [13, 21], r
    assert r["errors"] == [0.0, 0.0], r  # small integers and halves: the means are exact


@needs_mpi
def test_sync_batchnorm_without_running_statistics_evaluates_locally():
    r = results("eval_local")
    assert r["err"] < 1e-12, r


@needs_mpi
def test_failing_rank_aborts_the_job():
    r = run_mpi("fail")
    assert r.returncode != 0
    assert "rank 1 of 2 failed" in r.stderr and "deliberate failure on rank 1" in r.stderr, r.stderr


@needs_mpi
def test_mismatched_shapes_are_named():
    r = run_mpi("mismatch")
    assert r.returncode != 0
    assert "parameter '2.weight' has shape (3, 16) on rank 0 but (4, 16) on rank 1" in r.stderr, r.stderr


# float32: the two runs sum in different orders (per-rank batches, merged statistics), and over the
# 75 Adam steps that changes at most this many held-out predictions (measured: 2, after epoch 1)
DIGITS_FLOAT32_SAMPLES = 3


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_digits_distributed_matches_one_process_with_the_same_global_batch(dtype, capsys):
    # 480 training images: 14 global batches of 34 and a last one of 4, 2 on each rank
    args = ["--quick", "--dtype", dtype, "--batch", "34", "--seed", "1"]
    r = run_digits(*args)
    assert r.returncode == 0, r.stderr
    two = epoch_lines(r.stdout)
    assert len(two) == 5, r.stdout  # rank 0 alone prints each line
    assert r.stdout.count("final held-out accuracy") == 1 and r.stdout.count(" digits: ") == 1, r.stdout
    assert "2 rank(s) x 1 thread(s), batch 17 per rank (global 34)" in r.stdout, r.stdout
    one = digits.main(args)
    capsys.readouterr()
    held_out = 120  # the quick set's 600 images, 20% held out
    for (loss2, acc2), (loss1, acc1) in zip(two, one):
        assert abs(loss2 - loss1) <= 1e-4 + (2e-3 if dtype == "float32" else 0), (two, one)
        assert abs(acc2 / 100 - acc1) * held_out <= (0.5 if dtype == "float64" else DIGITS_FLOAT32_SAMPLES + 0.5), \
            (two, one)


@needs_mpi
def test_digits_distributed_rejects_a_batch_the_ranks_do_not_divide():
    r = run_digits("--quick", "--batch", "33")
    assert r.returncode != 0
    assert r.stderr.count("--batch (33) is the global batch and must be a multiple of the number of ranks (2)") == 1, \
        r.stderr


# ------------------------------------------------------------------ without MPI


def test_digits_distributed_without_mpi4py_names_the_extra():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from relucore.examples import digits\n"
            "digits.main(['--distributed', '--quick'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2, r.stderr
    assert "pip install 'relucore[mpi]'" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("n,batch,size", [(10, 4, 2), (11, 4, 2), (9, 6, 3), (7, 3, 3), (13, 4, 4), (5, 8, 2)])
def test_digits_batches_split_each_global_batch_over_the_ranks(n, batch, size):
    whole = list(digits.batches(n, batch, epoch=2, seed=4))
    parts = [list(digits.batches(n, batch, epoch=2, seed=4, rank=r, size=size)) for r in range(size)]
    assert all(len(p) == len(whole) for p in parts)
    for k, b in enumerate(whole):
        # rank r takes positions r, r + size, ... of global batch k; a short tail leaves some ranks less
        for r in range(size):
            np.testing.assert_array_equal(parts[r][k], b[r::size])
    assert sorted(np.concatenate(whole)) == list(range(n))


def test_import_does_not_need_mpi4py():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import relucore.distributed as d\n"
            "print(len(d.shard(10, 0, 2)))\n"
            "try:\n    d.init()\nexcept ImportError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    out = r.stdout.splitlines()
    assert out[0] == "5"
    assert "pip install 'relucore[mpi]'" in out[1], out


@pytest.mark.parametrize("n,size", [(10, 3), (12, 4), (2, 5), (0, 2), (7, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shard_is_equal_disjoint_and_covering(n, size, drop_last):
    parts = [dist.shard(n, r, size, seed=5, epoch=2, drop_last=drop_last) for r in range(size)]
    lengths = {len(p) for p in parts}
    assert lengths == {n // size if drop_last else -(-n // size)}
    allidx = np.concatenate(parts)
    perm = dist.shard(n, 0, 1, seed=5, epoch=2)  # one rank: the epoch's permutation itself
    assert sorted(perm) == list(range(n))
    if drop_last:  # disjoint; the permutation's tail is left out
        assert len(set(allidx)) == len(allidx)
        assert sorted(allidx) == sorted(perm[:len(allidx)])
    else:  # covering; the permutation's head repeats
        assert set(allidx) == set(range(n))
        assert sorted(allidx) == sorted(np.resize(perm, len(allidx)))
    # batch k of every rank together is batch k of one rank with the global batch
    if n and not drop_last:
        np.testing.assert_array_equal(np.stack(parts, axis=1).reshape(-1)[:n], perm)


def test_shard_permutation_depends_on_seed_and_epoch_only():
    a = dist.shard(100, 1, 4, seed=0, epoch=0)
    np.testing.assert_array_equal(a, dist.shard(100, 1, 4, seed=0, epoch=0))
    assert not np.array_equal(a, dist.shard(100, 1, 4, seed=0, epoch=1))
    assert not np.array_equal(a, dist.shard(100, 1, 4, seed=1, epoch=0))
    np.testing.assert_array_equal(dist.shard(10, 1, 3, shuffle=False), [1, 4, 7, 0])  # padded
    np.testing.assert_array_equal(dist.shard(np.array([5, 6, 7, 8]), 0, 2, shuffle=False), [5, 7])


@pytest.mark.parametrize("kwargs,match", [
    (dict(indices_or_n=10, rank=2, size=2), "rank must be < size"),
    (dict(indices_or_n=10, rank=0, size=0), "size must be an int >= 1"),
    (dict(indices_or_n=10, rank=-1, size=2), "rank must be an int >= 0"),
    (dict(indices_or_n=-1, rank=0, size=2), "indices_or_n must be an int >= 0"),
    (dict(indices_or_n=np.zeros((2, 2), int), rank=0, size=2), "indices_or_n must be an int or a 1-D array"),
    (dict(indices_or_n=10, rank=0, size=2, epoch=1.5), "epoch must be an int"),
])
def test_shard_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dist.shard(**kwargs)


def test_combine_moments_matches_numpy_on_offset_data():
    rng = np.random.default_rng(0)
    x = 1e4 + rng.standard_normal((50, 3))  # large mean: the sums of x and x^2 would cancel
    parts = [x[:7], x[7:7], x[7:31], x[31:]]
    n, mean, m2 = dist.combine_moments(np.array([len(p) for p in parts], float),
                                       np.array([p.mean(0) if len(p) else np.zeros(3) for p in parts]),
                                       np.array([((p - p.mean(0)) ** 2).sum(0) if len(p) else np.zeros(3)
                                                 for p in parts]))
    assert n == 50
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-15)
    np.testing.assert_allclose(m2 / n, x.var(0), rtol=1e-10)


def test_sync_batchnorm_docstring_example_runs_without_mpi():
    # relucore.nn exports SyncBatchNorm; the example converts and evaluates, which needs no MPI
    code = ("import sys; sys.modules['mpi4py'] = None\n"  # an MPI call would fail here
            "import doctest, types, numpy as np, relucore.nn as nn, relucore.distributed as dist\n"
            "assert nn.SyncBatchNorm is dist.SyncBatchNorm\n"
                "ns = types.SimpleNamespace(**{n: getattr(nn, n) for n in nn.__all__})\n"
            "t = doctest.DocTestFinder(recurse=False).find(dist.SyncBatchNorm, 'SyncBatchNorm', "
            "globs={'np': np, 'nn': ns})\n"
            "r = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)\n"
            "[r.run(x) for x in t]\n"
            "print(r.failures, r.tries)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    failures, tries = map(int, out.stdout.split()[-2:])
    assert failures == 0 and tries == 4, out.stdout


def test_convert_sync_batchnorm_shares_parameters_and_keeps_other_layers():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 5), nn.BatchNorm1d(5, momentum=None, dtype=np.float32))
    bn2, bn1 = model[1], model[5]
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    converted = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    assert type(model[1]) is dist.SyncBatchNorm and type(model[5]) is dist.SyncBatchNorm
    assert model[1].weight is bn2.weight and model[1].running_var is bn2.running_var
    assert model[5].momentum is None and model[5].num_features == 5
    assert [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()] == names
    assert type(model[0]) is nn.Conv2d and type(dist.SyncBatchNorm.convert_sync_batchnorm(bn1)) is dist.SyncBatchNorm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sync_batchnorm_eval_matches_batchnorm_without_mpi(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    plain = nn.BatchNorm2d(3, dtype=dtype)
    plain.running_mean[...] = [0.5, -1, 2]
    plain.running_var[...] = [1, 4, 0.25]
    sync = dist.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(3, dtype=dtype))
    sync.load_state_dict(plain.state_dict())
    plain.eval(), sync.eval()
    np.testing.assert_array_equal(sync(x), plain(x))
    np.testing.assert_array_equal(sync.backward(dy), plain.backward(dy))
    with pytest.raises(TypeError, match="float32 or float64"):
        sync(x.astype(np.int32))


def test_bad_communicators_and_float_indices_are_type_errors():
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator or a World, got int"):
        dist.World(5)
    with pytest.raises(TypeError, match="integer indices, got dtype float64"):
        dist.shard(np.array([0.5, 1.5]), 0, 1)
    np.testing.assert_array_equal(np.sort(dist.shard(np.array([3, 7]), 0, 1)), [3, 7])
