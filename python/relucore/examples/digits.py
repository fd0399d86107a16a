"""Train a small CNN on 8x8 digits with :mod:`relucore.nn` and :mod:`relucore.optim`.

Run ``python -m relucore.examples.digits [--epochs N] [--batch B] [--seed S] [--dtype float32|float64]
[--optimizer sgd|adam] [--data sklearn|generated] [--quick] [--distributed] [--threads T]``. The data
is scikit-learn's bundled 8x8 digits (``sklearn.datasets.load_digits``, from the ``examples`` extra)
when it is installed, else a generated digit-like set: noisy, shifted renderings of ten fixed stroke
patterns, the same for the same seed. Each epoch prints the mean training loss and the held-out
accuracy (a tqdm bar when tqdm is installed).

With ``--distributed``, under ``mpiexec -n N`` (``pip install 'relucore[mpi]'``), the training is
data-parallel over the N ranks: ``--batch`` stays the global batch and each rank takes ``batch / N``
samples of it (N must divide it), the batch norms become :class:`~relucore.distributed.SyncBatchNorm`
and the gradients are averaged by :class:`~relucore.distributed.DataParallel`, so the run takes the
same steps as one process with the same ``--batch`` and ``--seed`` and ends with the same held-out
accuracy (up to float rounding). Only rank 0 prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

import relucore as rc
from relucore import distributed as dist
from relucore import nn, optim
from relucore.runtime import thread_limit

__all__ = ["generated_digits", "load_data", "make_model", "train", "main"]

# Seven-segment-like strokes on an 8x8 grid, as (row0, col0, row1, col1) inclusive line ends.
_SEGMENTS = {
    "top": (1, 2, 1, 5), "mid": (4, 2, 4, 5), "bot": (7, 2, 7, 5),
    "ul": (1, 2, 4, 2), "ur": (1, 5, 4, 5), "ll": (4, 2, 7, 2), "lr": (4, 5, 7, 5),
    "diag": (1, 5, 7, 2), "stem": (1, 4, 7, 4),
}
_DIGIT_STROKES = [
    ("top", "bot", "ul", "ur", "ll", "lr"), ("stem",), ("top", "ur", "mid", "ll", "bot"),
    ("top", "ur", "mid", "lr", "bot"), ("ul", "mid", "ur", "lr"), ("top", "ul", "mid", "lr", "bot"),
    ("top", "ul", "mid", "ll", "lr", "bot"), ("top", "diag"), ("top", "mid", "bot", "ul", "ur", "ll", "lr"),
    ("top", "ul", "ur", "mid", "lr", "bot"),
]


def _pattern(strokes: Sequence[str]) -> np.ndarray:
    """An 8x8 image of ``strokes`` drawn with unit intensity."""
    img = np.zeros((8, 8))
    for s in strokes:
        r0, c0, r1, c1 = _SEGMENTS[s]
        n = max(abs(r1 - r0), abs(c1 - c0)) + 1
        img[np.round(np.linspace(r0, r1, n)).astype(int), np.round(np.linspace(c0, c1, n)).astype(int)] = 1
    return img


def generated_digits(n: int, seed: int = 0, noise: float = 0.15) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` digit-like 8x8 images (values about 0..1) and their labels 0..9: each a stroke pattern
    shifted by up to one pixel (never wrapping), with a random stroke intensity and Gaussian noise of std ``noise``.
    The same ``(n, seed, noise)`` gives the same data."""
    rng = np.random.default_rng(seed)
    patterns = np.stack([_pattern(s) for s in _DIGIT_STROKES])
    labels = rng.integers(0, 10, n)
    images = patterns[labels]
    # the strokes span rows 1..7 and columns 2..5, so these shifts never wrap a stroke around
    shifts = np.stack([rng.integers(-1, 1, n), rng.integers(-1, 2, n)], axis=1)
    for i, (dr, dc) in enumerate(shifts):
        images[i] = np.roll(images[i], (dr, dc), axis=(0, 1))
    images = images * rng.uniform(0.6, 1.0, (n, 1, 1)) + rng.normal(0, noise, images.shape)
    return images, labels


def load_data(source: str = "auto", seed: int = 0, n_generated: int = 2000, test_fraction: float = 0.2):
    """``(x_train, y_train, x_test, y_test, name)``: images shaped (N, 1, 8, 8), standardised with the
    training set's mean and std, and int64 labels. ``source`` is ``"sklearn"``, ``"generated"`` or
    ``"auto"`` (sklearn's digits if scikit-learn is installed)."""
    if source in ("auto", "sklearn"):
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            if source == "sklearn":
                raise
            source = "generated"
        else:
            d = load_digits()
            images, labels, source = d.images / 16.0, d.target, "sklearn"
    if source == "generated":
        images, labels = generated_digits(n_generated, seed)
    elif source != "sklearn":
        raise ValueError(f"source must be 'auto', 'sklearn' or 'generated', got {source!r}")
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(len(labels) * test_fraction)
    test, tr = order[:n_test], order[n_test:]
    x = images[:, None, :, :]
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    return x[tr], labels[tr].astype(np.int64), x[test], labels[test].astype(np.int64), source


def make_model(dtype=np.float32, side: int = 8) -> nn.Sequential:
    """conv-BN-ReLU-pool twice, then a linear layer to the 10 class logits: (N, 1, side, side) -> (N, 10)
    (``side`` a multiple of 4: 8 for the digits, 28 for MNIST-sized images)."""
    q = side // 4
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, dtype=dtype), nn.BatchNorm2d(16, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, dtype=dtype), nn.BatchNorm2d(32, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * q * q, 10, dtype=dtype),
    )


def batches(n: int, batch: int, epoch: int, seed: int = 0, rank: int = 0, size: int = 1) -> Iterator[np.ndarray]:
    """This rank's part of each global batch of ``batch`` indices covering ``range(n)`` once, in the
    epoch's order (:func:`relucore.distributed.shard`, seeded by ``(seed, epoch)``): positions
    ``rank, rank + size, ...`` of each batch. A last global batch smaller than ``size`` leaves some
    ranks an empty part."""
    mine = dist.shard(n, rank, size, seed=seed, epoch=epoch)  # padded to equal parts: the padding is not used
    for start in range(0, n, batch):
        yield mine[start // size:start // size + len(range(rank, min(batch, n - start), size))]


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, world: Optional[dist.World] = None) -> float:
    """Fraction of ``x`` classified as ``y``, in evaluation mode; with ``world``, each rank scores
    every ``size``-th sample and the counts are summed over the ranks."""
    rank, size = (0, 1) if world is None else (world.rank, world.size)
    model.eval()
    correct = int(np.sum(model(x[rank::size]).argmax(axis=1) == y[rank::size]))
    model.train()
    return (correct if world is None else world.comm.allreduce(correct)) / len(y)


def train(model, data, epochs: int = 10, batch: int = 32, optimizer: str = "adam", seed: int = 0,
          log=print, world: Optional[dist.World] = None) -> list:
    """Train ``model`` on ``data`` (as :func:`load_data` returns it); returns the per-epoch
    ``(mean loss, held-out accuracy)``.

    With ``world`` (from :func:`relucore.distributed.init`) ``model`` is a
    :class:`~relucore.distributed.DataParallel` and ``batch`` the global batch, which ``world.size``
    must divide: every rank takes its part of each global batch, and its loss gradient is weighted
    by its share of the batch, so the averaged gradient is the one of the mean over the global
    batch (the last, smaller batch included). ``log`` and the progress bar run on rank 0 only.
    """
    rank, size = (0, 1) if world is None else (world.rank, world.size)
    if batch % size:
        raise ValueError(f"the global batch ({batch}) must be a multiple of the number of ranks ({size})")
    x_train, y_train, x_test, y_test = (np.asarray(a) for a in data[:4])
    dtype = next(model.parameters()).dtype
    x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")  # weighted by each rank's share below
    if optimizer == "adam":
        opt = optim.Adam(model.parameters(), lr=3e-3)
    else:
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    n = len(y_train)
    history = []
    for epoch in range(1, epochs + 1):
        total = 0.0
        for b, idx in enumerate(_progress(list(batches(n, batch, epoch, seed, rank, size)),
                                          f"epoch {epoch}/{epochs}", rank == 0)):
            total += loss_fn(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            # DataParallel averages over the ranks: size / global batch makes it the global mean
            dy = loss_fn.backward() * dtype.type(size / min(batch, n - b * batch))
            model.backward(dy, input_grad=False)
            opt.step()
        loss = (total if world is None else world.comm.allreduce(total)) / n
        history.append((float(loss), accuracy(model, x_test, y_test, world)))
        if rank == 0:
            log(f"epoch {epoch}/{epochs}: loss {history[-1][0]:.4f}, held-out accuracy {history[-1][1]:.2%}")
    return history


def _progress(items: list, desc: str, show: bool = True):
    """``items`` wrapped in a tqdm bar when ``show``, tqdm is installed and stderr is a terminal."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, leave=False, disable=not (show and sys.stderr.isatty()))


def main(argv: Optional[Sequence[str]] = None) -> list:
    p = argparse.ArgumentParser(prog="python -m relucore.examples.digits", description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="default 15 (--quick: 5)")
    p.add_argument("--batch", type=int, default=32, help="the (global) batch (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--data", choices=["auto", "sklearn", "generated"], default="auto")
    p.add_argument("--quick", action="store_true",
                   help="600 generated images, 5 epochs unless --epochs says otherwise (a smoke test)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of mpiexec (pip install 'relucore[mpi]')")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per process (default: relucore's, or the CPU count / ranks with --distributed)")
    a = p.parse_args(argv)
    if a.epochs is None:
        a.epochs = 5 if a.quick else 15
    if a.epochs < 1 or a.batch < 1:
        p.error("--epochs and --batch must be >= 1")
    if a.threads is not None and not 1 <= a.threads <= thread_limit():
        p.error(f"--threads must be in [1, {thread_limit()}], got {a.threads}")
    if a.seed < 0:
        p.error(f"--seed must be >= 0, got {a.seed}")
    if a.quick:
        a.data = "generated"
    world = None
    if a.distributed:
        try:
            world = dist.init()
        except ImportError as e:
            p.error(str(e))
        if a.batch % world.size:  # unequal parts would need per-rank weights in every layer's statistics
            if world.rank == 0:
                p.error(f"--batch ({a.batch}) is the global batch and must be a multiple of the number of "
                        f"ranks ({world.size})")
            sys.exit(2)
        a.threads = a.threads or max(1, (os.cpu_count() or 1) // world.size)
    if a.threads:
        rc.set_num_threads(a.threads)
    nn.manual_seed(a.seed)
    data = load_data(a.data, a.seed, n_generated=600 if a.quick else 2000)
    model = make_model(np.dtype(a.dtype))
    say = print if world is None or world.rank == 0 else (lambda *args: None)
    say(f"{data[4]} digits: {len(data[1])} training, {len(data[3])} held-out images; {a.dtype}, {a.optimizer}")
    if world is not None:
        model = dist.DataParallel(dist.SyncBatchNorm.convert_sync_batchnorm(model, world), world)
        say(f"{world.size} rank(s) x {rc.get_num_threads()} thread(s), batch {a.batch // world.size} per rank "
            f"(global {a.batch})")
    start = time.perf_counter()
    history = train(model, data, a.epochs, a.batch, a.optimizer, a.seed, say, world)
    say(f"final held-out accuracy {history[-1][1]:.2%} in {time.perf_counter() - start:.1f} s")
    return history


if __name__ == "__main__":
    main()
