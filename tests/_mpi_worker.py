"""Run by tests/test_distributed.py under ``mpiexec -n 2``: data-parallel SGD steps compared, on rank 0,
with the same steps computed in one process (``train``), and the failure cases (``fail``,
``mismatch``). Rank 0 prints one JSON line of results."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np

import relucore.distributed as dist
import relucore.nn as nn
import relucore.optim as optim

PER_RANK_BATCH = 8
STEPS = 6


def build(dtype):
    nn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.1),
                         nn.Linear(8, 3)).to(dtype)


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def sgd(model):
    return optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-3)


def train(bn: str, dtype, bucket_bytes: int) -> None:
    world = dist.init()
    size = world.size
    rng = np.random.default_rng(1)
    n = PER_RANK_BATCH * size * STEPS
    x = rng.standard_normal((n, 2, 8, 8)).astype(dtype) * 2 + 1  # an offset mean tests the variance merge
    y = rng.integers(0, 3, n)
    loss_fn = nn.CrossEntropyLoss()

    model = build(dtype)
    for p in model.parameters():  # different on each rank until DataParallel broadcasts rank 0's
        p.data += world.rank
    if bn == "sync":
        model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    dp = dist.DataParallel(model, bucket_bytes=bucket_bytes)
    opt = sgd(dp)
    idx = dist.shard(n, world.rank, size, seed=3, epoch=0)

    ref = build(dtype) if world.rank == 0 else None
    ref_opt = sgd(ref) if ref is not None else None
    ref_idx = dist.shard(n, 0, 1, seed=3, epoch=0)

    same_params, same_buffers, loss_diffs, param_diffs, buffer_diffs = [], [], [], [], []
    for step in range(STEPS):
        b = idx[step * PER_RANK_BATCH:(step + 1) * PER_RANK_BATCH]
        loss = loss_fn(dp(x[b]), y[b])
        dp.zero_grad()
        dp.backward(loss_fn.backward())
        opt.step()
        mean_loss = world.comm.allreduce(loss) / size
        same_params.append(len(set(world.comm.allgather(digest(p.data for p in model.parameters())))) == 1)
        same_buffers.append(len(set(world.comm.allgather(digest(model.buffers())))) == 1)
        if ref is None:
            continue
        gb = ref_idx[step * PER_RANK_BATCH * size:(step + 1) * PER_RANK_BATCH * size]
        ref_loss = reference_step(ref, ref_opt, loss_fn, x[gb], y[gb], bn, size)
        loss_diffs.append(abs(ref_loss - mean_loss))
        param_diffs.append(max(float(np.max(np.abs(p.data - q.data)))
                               for p, q in zip(model.parameters(), ref.parameters())))
        buffer_diffs.append(max(float(np.max(np.abs(a - b))) for a, b in zip(model.buffers(), ref.buffers())))
    if world.rank == 0:
        print(json.dumps(dict(same_params=same_params, same_buffers=same_buffers, loss=loss_diffs, params=param_diffs, buffers=buffer_diffs,
                              calls=dp.allreduce_calls)), flush=True)


def reference_step(model, opt, loss_fn, x, y, bn, size) -> float:
    """One process's step on the global batch: with SyncBatchNorm, plain training on all of it; with
    per-rank batch norm, each rank's part through the model on its own, the gradients averaged and
    rank 0's running statistics kept (DataParallel broadcasts them)."""
    model.zero_grad()
    if bn == "sync":
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
    else:
        losses, kept = [], None
        for r in range(size):
            part = slice(r, None, size)  # shard deals positions out in turn
            losses.append(loss_fn(model(x[part]), y[part]))
            model.backward(loss_fn.backward())
            if r == 0:
                kept = [np.array(b) for b in model.buffers()]
        for b, k in zip(model.buffers(), kept):
            b[...] = k
        for p in model.parameters():
            p.grad /= size
        loss = sum(losses) / size
    opt.step()
    return loss


class Mixed(nn.Module):
    """Parameters of both dtypes, one larger than a bucket, for average_gradients alone."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(np.zeros(1000, np.float32))
        self.b = nn.Parameter(np.zeros((30, 10), np.float64))
        self.c = nn.Parameter(np.zeros(7, np.float32))  # no gradient on rank 0


def buckets() -> None:
    """Gradients set to rank-dependent values, averaged in 512-byte buckets, before and after
    .to(np.float64); rank 0 prints the largest error against the exact mean."""
    world = dist.init()
    dp = dist.DataParallel(Mixed(), bucket_bytes=512)
    errors, calls = [], []
    for dtype in (None, np.float64):
        if dtype is not None:
            dp.to(dtype)
        expected = {}
        for name, p in dp.module.named_parameters():
            vals = [np.arange(p.size, dtype=np.float64).reshape(p.shape) * (r + 1) + r for r in range(world.size)]
            if name == "c":
                vals[0] = np.zeros(p.shape)
                p.grad = None if world.rank == 0 else vals[world.rank].astype(p.dtype)
            else:
                p.grad = vals[world.rank].astype(p.dtype)
            expected[name] = sum(vals) / world.size
        dp.average_gradients()
        errors.append(max(float(np.max(np.abs(p.grad - expected[n]))) for n, p in dp.module.named_parameters()))
        calls.append(dp.allreduce_calls)
    if world.rank == 0:
        print(json.dumps(dict(errors=errors, calls=calls)), flush=True)


def fail() -> None:
    world = dist.init()
    if world.rank == 1:
        raise RuntimeError("deliberate failure on rank 1")
    world.barrier()  # rank 0 would wait here forever without the abort


def mismatch() -> None:
    world = dist.init()
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3 + world.rank))
    dist.DataParallel(model)


def eval_local() -> None:
    """A SyncBatchNorm without running statistics in evaluation on rank 0 only: no collective (as
    PyTorch's), so rank 0 is not left waiting for rank 1; its output uses its own batch."""
    world = dist.init()
    nn.manual_seed(0)
    model = dist.DataParallel(nn.Sequential(nn.Linear(4, 3), dist.SyncBatchNorm(3, track_running_stats=False)).double())
    if world.rank == 0:
        model.eval()
        x = np.random.default_rng(1).standard_normal((5, 4))
        y = model(x)
        bn = model.module[1]
        exp = nn.BatchNorm1d(3, track_running_stats=False, dtype=np.float64)
        exp.weight.data[...], exp.bias.data[...] = bn.weight.data, bn.bias.data
        err = float(np.abs(y - exp(model.module[0](x))).max())
        print(json.dumps(dict(err=err)), flush=True)
    world.barrier()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "train":
        train(sys.argv[2], np.dtype(sys.argv[3]), int(sys.argv[4]))
    else:
        {"fail": fail, "mismatch": mismatch, "buckets": buckets, "eval_local": eval_local}[mode]()
