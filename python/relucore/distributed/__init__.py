r"""Data-parallel training over MPI (through mpi4py): every rank runs the model on its own part of
each batch and the gradients are averaged across ranks before the optimizer step.

mpi4py is imported only when a function here needs it; install it with ``pip install
'relucore[mpi]'`` (mpi4py and the mpich wheel, which brings ``mpiexec``). A training script::

    import relucore.distributed as dist
    world = dist.init()                       # MPI.COMM_WORLD; a failing rank aborts the job
    model = dist.SyncBatchNorm.convert_sync_batchnorm(build_model())
    model = dist.DataParallel(model)          # broadcasts rank 0's parameters and buffers
    opt = optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(epochs):
        idx = dist.shard(len(x), world.rank, world.size, seed=0, epoch=epoch)
        for b in range(0, len(idx), batch):
            loss = loss_fn(model(x[idx[b:b + batch]]), y[idx[b:b + batch]])
            model.zero_grad()
            model.backward(loss_fn.backward())  # gradients averaged over the ranks
            opt.step()
        dist.print_on_main(f"epoch {epoch} loss {loss:.3f}")
    dist.save_on_main(model.module, "model.npz")

and ``mpiexec -n 2 python train.py``.
"""

from .parallel import DEFAULT_BUCKET_BYTES, DataParallel, broadcast_parameters
from .shard import shard
from .sync_batchnorm import SyncBatchNorm, combine_moments
from .world import World, abort_on_error, get_world, init, is_main, print_on_main, save_on_main

__all__ = [
    "init", "World", "get_world", "is_main", "print_on_main", "save_on_main", "abort_on_error",
    "broadcast_parameters", "DataParallel", "DEFAULT_BUCKET_BYTES", "SyncBatchNorm", "combine_moments", "shard",
]
