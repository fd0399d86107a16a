r"""Data-parallel training of a small CNN over MPI, on a generated data set of oriented bars.

Run with ``mpiexec -n 2 python -m relucore.examples.train_distributed`` (``pip install
'relucore[mpi]'`` first). ``--batch-size`` is the global batch: each of the ``n`` ranks takes
``batch / n`` samples of it, and the batch norms are :class:`~relucore.distributed.SyncBatchNorm`,
so ``-n 1`` and ``-n 2`` train the same model on the same batches and end with the same held-out
accuracy (up to float rounding). Rank 0 prints the loss, the held-out accuracy and the speed.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Optional, Sequence, Tuple

import numpy as np

import relucore as rc
import relucore.distributed as dist
import relucore.nn as nn
import relucore.optim as optim

CLASSES = 4  # horizontal, vertical, diagonal and anti-diagonal bars
SIZE = 16    # image side


def make_dataset(n: int, seed: int, dtype=np.float32) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` noisy :math:`16 \\times 16` images, each with a bar of 4 to 8 pixels in one of four
    orientations at a random place, and the orientation as the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    x = rng.normal(0.0, 0.6, (n, 1, SIZE, SIZE))
    steps = np.array([(0, 1), (1, 0), (1, 1), (1, -1)])
    length = rng.integers(4, 9, n)
    for i in range(n):
        dr, dc = steps[labels[i]]
        k = np.arange(length[i])
        r0 = rng.integers(0, SIZE - length[i] * dr + 1 if dr else SIZE)
        c0 = (rng.integers(length[i] - 1, SIZE) if dc < 0 else
              rng.integers(0, SIZE - length[i] * dc + 1) if dc else rng.integers(0, SIZE))
        x[i, 0, r0 + dr * k, c0 + dc * k] += 1.5
    return x.astype(dtype), labels


def build_model(dtype=np.float32) -> nn.Module:
    """Two conv + batch norm + ReLU + pool stages and two linear layers (38,000 parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, CLASSES)).to(dtype)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m relucore.examples.train_distributed", description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train", type=int, default=4096, help="training samples (default 4096)")
    p.add_argument("--test", type=int, default=1024, help="held-out samples (default 1024)")
    p.add_argument("--batch-size", type=int, default=64, help="global batch, split over the ranks (default 64)")
    p.add_argument("--lr", type=float, default=0.1, help="initial learning rate, annealed to 0 (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float64", action="store_true", help="train in float64")
    p.add_argument("--plain-bn", action="store_true", help="per-rank batch statistics instead of SyncBatchNorm")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per rank (default: the CPU count divided by the number of ranks)")
    p.add_argument("--save", default=None, help="write the trained model (.npz) from rank 0")
    return p.parse_args(argv)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, world: dist.World, batch: int = 256) -> float:
    """Accuracy on (x, y), each rank scoring every size-th sample."""
    model.eval()
    idx = np.arange(world.rank, len(x), world.size)
    correct = 0
    for b in range(0, len(idx), batch):
        part = idx[b:b + batch]
        correct += int(np.sum(model(x[part]).argmax(axis=1) == y[part]))
    model.train()
    return world.comm.allreduce(correct) / len(x)


def main(argv: Optional[Sequence[str]] = None) -> float:
    args = parse_args(argv)
    world = dist.init()
    if args.batch_size % world.size:
        raise ValueError(f"--batch-size ({args.batch_size}) must be a multiple of the number of ranks ({world.size})")
    rc.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world.size))
    dtype = np.float64 if args.float64 else np.float32
    x, y = make_dataset(args.train, args.seed, dtype)
    xt, yt = make_dataset(args.test, args.seed + 1, dtype)

    nn.manual_seed(args.seed)
    model = build_model(dtype)
    if not args.plain_bn:
        model = dist.SyncBatchNorm.convert_sync_batchnorm(model, world)
    model = dist.DataParallel(model, world)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    batch = args.batch_size // world.size
    per_epoch = (len(x) // world.size) // batch
    # annealed to zero over the run, so the last epochs settle and rounding differences stay small
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * per_epoch)
    dist.print_on_main(f"{world.size} rank(s) x {rc.get_num_threads()} thread(s), batch {batch} per rank; "
                       f"{sum(p.size for p in model.parameters())} parameters, "
                       f"{model.allreduce_calls} allreduce call(s) per step")
    steps, seconds = 0, 0.0
    for epoch in range(args.epochs):
        idx = dist.shard(len(x), world.rank, world.size, seed=args.seed, epoch=epoch, drop_last=True)
        t = time.perf_counter()
        total = 0.0
        for b in range(0, per_epoch * batch, batch):
            part = idx[b:b + batch]
            total += loss_fn(model(x[part]), y[part])
            model.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
            schedule.step()
            steps += 1
        seconds += time.perf_counter() - t
        loss = world.comm.allreduce(total) / (world.size * per_epoch)
        acc = evaluate(model, xt, yt, world)
        dist.print_on_main(f"epoch {epoch}: loss {loss:.4f}, held-out accuracy {acc:.4f}")
    dist.print_on_main(f"{steps / seconds:.1f} steps/s; allreduce {100 * model.allreduce_seconds / seconds:.1f}% "
                       f"of the training time on rank {world.rank}")
    if args.save:
        dist.save_on_main(model.module, args.save, world)
    return acc


if __name__ == "__main__":
    main()
