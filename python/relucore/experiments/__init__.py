"""The classic ReLU questions answered by measurement: ``python -m relucore.experiments NAME``.

Each experiment trains small networks on generated data (no downloads) over several seeds, prints a
table and a one-sentence conclusion computed from its own numbers, and writes ``NAME.csv`` and,
with matplotlib installed (the ``examples`` extra), ``NAME.png``.

Example::

    >>> from relucore import experiments
    >>> result = experiments.run("zigzag", seeds=3, quick=True, out="runs")
    >>> print(result.conclusion)
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

from ._common import Result, seed_list, write_outputs

__all__ = ["EXPERIMENTS", "Result", "run", "main"]

#: experiment name -> module in this package
EXPERIMENTS = {
    "negative-weights": "negative_weights",
    "zigzag": "zigzag",
    "relu-grad-at-zero": "relu_grad_at_zero",
    "vanishing": "vanishing",
    "bn-relu-order": "bn_relu_order",
    "dying-relu": "dying_relu",
}


def _module(name: str):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")


def run(name: str, seed: int = 0, seeds: int = 3, quick: bool = False, out: Optional[str] = None,
        progress: bool = False) -> Result:
    """Run experiment ``name`` over the seeds ``seed .. seed + seeds - 1``.

    Args:
        name: one of :data:`EXPERIMENTS`.
        seed: the first seed. Default: ``0``.
        seeds: how many seeds (the conclusion reports their spread). Default: ``3``.
        quick: a smaller run (seconds instead of about a minute), for tests. Default: ``False``.
        out: a directory for ``NAME.csv`` and ``NAME.png`` (listed in ``result.files``), or ``None``
            to write nothing.
        progress: draw a progress bar on stderr. Default: ``False``.
    """
    module = _module(name)
    result = module.run(seed_list(seed, seeds), quick=quick, progress=progress)
    if out is not None:
        result.files = write_outputs(result, out, module.plot)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relucore.experiments",
                                     description="Answer a classic ReLU question by measurement.")
    parser.add_argument("name", choices=list(EXPERIMENTS), help="the experiment")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--out", default="experiments-out", help="output directory (default ./experiments-out)")
    parser.add_argument("--quick", action="store_true", help="a small run, for tests")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    try:  # the output directory before the run, not after it
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        parser.error(f"--out: cannot create {args.out!r}: {e.strerror or e}")
    if not os.access(args.out, os.W_OK):
        parser.error(f"--out: {args.out!r} is not writable")
    result = run(args.name, args.seed, args.seeds, args.quick, args.out, progress=True)
    print(f"{result.name} (seeds {result.seeds[0]}..{result.seeds[-1]}{', quick' if args.quick else ''})")
    print(result.table())
    print(result.conclusion)
    print("wrote " + ", ".join(result.files))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
