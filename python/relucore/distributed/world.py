"""The MPI communicator relucore.distributed works on, rank-0-only helpers, and ending the whole job
when one rank fails."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from typing import Optional, Union

__all__ = ["World", "init", "get_world", "is_main", "print_on_main", "save_on_main", "abort_on_error",
           "MPI_EXTRA_HINT"]

MPI_EXTRA_HINT = ("relucore.distributed needs mpi4py and an MPI library: pip install 'relucore[mpi]' "
                  "(mpi4py and the mpich wheel, which brings mpiexec)")

# How long a failing rank waits between flushing its traceback and aborting the job.
ABORT_GRACE_SECONDS = 0.25


def mpi():
    """The ``mpi4py.MPI`` module, imported on first use so that relucore never requires it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"{MPI_EXTRA_HINT}: {e}") from e
    return MPI


class World:
    r"""A communicator with its rank and size, as returned by :func:`init`.

    Attributes:
        comm: the ``mpi4py`` communicator.
        rank: this process's rank, ``0 <= rank < size``.
        size: the number of processes.

    Example::

        >>> world = distributed.init()
        >>> world.rank, world.size
        (0, 1)
    """

    def __init__(self, comm) -> None:
        if not (callable(getattr(comm, "Get_rank", None)) and callable(getattr(comm, "Get_size", None))):
            raise TypeError(f"comm must be an mpi4py communicator or a World, got {type(comm).__name__}")
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()

    def is_main(self) -> bool:
        """Whether this is rank 0, the rank that logs and writes checkpoints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank has reached this call."""
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every process of the job with exit code ``code``, after flushing stdout and stderr and a
        pause of ``ABORT_GRACE_SECONDS`` (0.25 s) for the launcher to pass them on."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # The launcher forwards each rank's output through a pipe and kills the job on the first
        # Abort; without a pause, text already flushed (the traceback) could be dropped unread.
        time.sleep(ABORT_GRACE_SECONDS)
        self.comm.Abort(code)

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"


_world: Optional[World] = None
_hooked = False


def init(comm=None, *, abort_on_error: bool = True) -> World:
    r"""Start (or join) the MPI job and make ``comm`` the default communicator of relucore.distributed.

    Args:
        comm: an ``mpi4py`` communicator. Default: ``MPI.COMM_WORLD``.
        abort_on_error: install a ``sys.excepthook`` that, when an exception escapes on any rank,
            prints that rank's traceback and then calls ``comm.Abort(1)``, so the whole job ends with
            that error instead of the other ranks waiting forever in their next collective call.
            Default: ``True``.

    Returns:
        A :class:`World` with ``rank``, ``size`` and ``comm``.

    Raises:
        ImportError: mpi4py is not installed (``pip install 'relucore[mpi]'``).

    Example::

        >>> world = distributed.init()      # run with: mpiexec -n 2 python train.py
        >>> if world.is_main():
        ...     print(f"{world.size} ranks")
    """
    global _world, _hooked
    MPI = mpi()
    if isinstance(comm, World):
        comm = comm.comm
    _world = World(MPI.COMM_WORLD if comm is None else comm)
    if abort_on_error and not _hooked:
        previous = sys.excepthook

        def hook(kind, value, tb):
            w = _world
            if w is None or w.size == 1:
                previous(kind, value, tb)
                return
            _report(w, kind, value, tb)
            w.abort(1)

        sys.excepthook = hook
        _hooked = True
    return _world


def get_world(comm=None) -> World:
    """``comm`` as a :class:`World` (a World is returned as is); without one, the communicator given
    to :func:`init` (which is called with ``MPI.COMM_WORLD`` if it has not been)."""
    if isinstance(comm, World):
        return comm
    if comm is not None:
        return World(comm)
    return _world if _world is not None else init()


def _report(world: World, kind, value, tb) -> None:
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(f"relucore.distributed: rank {world.rank} of {world.size} failed; aborting the job\n"
                     f"{text}")
    sys.stderr.flush()


@contextlib.contextmanager
def abort_on_error(comm=None):
    r"""End the whole MPI job if the block raises: the traceback is printed with this rank's number,
    then ``comm.Abort(1)`` stops every rank (the others may be waiting in a collective call that
    would otherwise never return). With one rank the exception propagates normally.

    Use it where :func:`init`'s excepthook does not reach, e.g. in a thread, or when
    ``init(abort_on_error=False)`` was chosen.

    Example::

        >>> with distributed.abort_on_error():
        ...     train()
    """
    world = get_world(comm)
    try:
        yield world
    except BaseException:
        if world.size == 1:
            raise
        _report(world, *sys.exc_info())
        world.abort(1)


def is_main(comm=None) -> bool:
    """Whether this process is rank 0 of ``comm`` (default: the communicator of :func:`init`)."""
    return get_world(comm).rank == 0


def print_on_main(*args, comm=None, **kwargs) -> None:
    """``print(*args, **kwargs)`` on rank 0 only (flushed, so lines are not held back by mpiexec)."""
    if is_main(comm):
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def save_on_main(model, path: Union[str, os.PathLike], comm=None) -> None:
    r"""Write ``model`` (its :meth:`~relucore.nn.Module.save` ``.npz``) on rank 0 only, then wait for
    every rank, so that any rank may read the file once this returns. Every rank must call it.

    Args:
        model: a :class:`relucore.nn.Module` (for a :class:`DataParallel`, pass ``dp.module`` to
            keep the plain parameter names).
        path: the file to write.
        comm: the communicator. Default: the one of :func:`init`.
    """
    world = get_world(comm)
    error = None
    if world.is_main():
        try:
            model.save(path)
        except Exception as e:  # noqa: BLE001  (every rank must learn of it, or they wait forever)
            error = f"{type(e).__name__}: {e}"
    error = world.comm.bcast(error, root=0)
    if error is not None:
        raise OSError(f"save_on_main: rank 0 could not write {os.fspath(path)!r}: {error}")
