"""Data-parallel scaling of a small CNN over MPI: steps per second with 1 and 2 ranks (1 thread
each, the same per-rank batch), with plain batch norm and with SyncBatchNorm in the same run, where
a step's time goes on each rank (compute, and the wall time inside each kind of collective call),
and the cost of an allreduce by size (for the cost model in docs/performance.md).

Run by hand (not collected by pytest; needs ``pip install '.[mpi]'``)::

    python benchmarks/mpi_scaling.py [--rounds 5] [--batch 32] [--steps 40] [--bn plain|sync|both] [--json FILE]

Each round launches ``mpiexec -n 1`` and ``mpiexec -n 2`` with each batch norm, in an order that
rotates every round, and the report gives the medians over the rounds of each run's median step.
On a shared machine the 2-rank runs need both cores free: a third busy process slows whichever rank
it lands on, and the other waits for it inside the next collective call, so the load average is
printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

RESNET18_PARAMETERS = 11_689_512
VARIANTS = ("plain", "sync")  # batch norm: per rank, or SyncBatchNorm


def build_model(dtype="float32"):
    """Two conv + batch norm + ReLU + pool stages and two linear layers on 1x16x16 images, 4 classes
    (37,988 parameters)."""
    import relucore.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 4)).to(dtype)


class TimedComm:
    """An mpi4py communicator whose collective calls add their wall and CPU time to ``spent``, by
    name. MPICH waits by polling, so a rank waiting for the other burns CPU time inside the call."""

    def __init__(self, comm) -> None:
        self._comm = comm
        self.spent = {}

    def __getattr__(self, name: str):
        f = getattr(self._comm, name)
        if not name[:1].isupper() or name.startswith("Get_"):
            return f

        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                sw, sc, n = self.spent.get(name, (0.0, 0.0, 0))
                self.spent[name] = (sw + time.perf_counter() - w, sc + time.process_time() - c, n + 1)
        return timed


def worker(args) -> None:
    import numpy as np

    import relucore as rc
    import relucore.distributed as dist
    import relucore.nn as nn
    import relucore.optim as optim

    from mpi4py import MPI

    rc.set_num_threads(1)
    comm = TimedComm(MPI.COMM_WORLD)
    world = dist.init(comm)
    rng = np.random.default_rng(world.rank)
    x = rng.standard_normal((args.batch * 8, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 4, args.batch * 8)
    nn.manual_seed(0)
    model = build_model()
    if args.bn == "sync":
        model = dist.SyncBatchNorm.convert_sync_batchnorm(model, world)
    dp = dist.DataParallel(model, world)
    opt = optim.SGD(dp.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    rows = []  # per step: wall, cpu, gradient allreduce wall, other collectives' wall, collectives' cpu, calls
    names = []  # per step: name -> (wall, calls) of the other collectives (SyncBatchNorm's, the buffers')
    for step in range(args.warmup + args.steps):
        part = slice((step % 8) * args.batch, (step % 8 + 1) * args.batch)
        comm.spent.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        loss_fn(dp(x[part]), y[part])
        dp.zero_grad()
        model.backward(loss_fn.backward())
        other = {k: (v[0], v[2]) for k, v in comm.spent.items()}
        t1 = time.perf_counter()
        dp.average_gradients()
        t2 = time.perf_counter()
        opt.step()
        t3, c3 = time.perf_counter(), time.process_time()
        if step >= args.warmup:
            rows.append((t3 - t0, c3 - c0, t2 - t1, sum(v[0] for v in other.values()),
                         sum(v[1] for v in comm.spent.values()), sum(v[1] for v in other.values())))
            names.append(other)

    def allreduce_seconds(n: int, repeats: int) -> float:
        buf = np.ones(n, np.float32)
        times = []
        for _ in range(repeats):
            MPI.COMM_WORLD.Barrier()  # time the transfer, not the wait for the other rank
            t = time.perf_counter()
            MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    grad_values = sum(p.size for p in dp.parameters())
    pure = {"1": allreduce_seconds(1, 50), "grad": allreduce_seconds(grad_values, 50),
            "resnet18": allreduce_seconds(RESNET18_PARAMETERS, 5)} if world.size > 1 else {}
    keys = ("step", "cpu", "allreduce", "collectives", "collectives_cpu", "other_calls")
    med = dict(zip(keys, (statistics.median(col) for col in zip(*rows))))
    med["by_name"] = {k: (statistics.median(n.get(k, (0.0, 0))[0] for n in names), names[0].get(k, (0.0, 0))[1])
                      for k in names[0]}
    gathered = MPI.COMM_WORLD.gather(med, root=0)
    if world.rank == 0:
        print(json.dumps(dict(size=world.size, bn=args.bn, batch=args.batch, grad_values=grad_values,
                              calls=dp.allreduce_calls, ranks=gathered, pure=pure, load=os.getloadavg()[0])),
              flush=True)


def launch(n: int, bn: str, args) -> dict:
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        sys.exit("mpiexec not found: pip install '.[mpi]' (mpi4py and the mpich wheel)")
    cmd = [exe, "-n", str(n), sys.executable, os.path.abspath(__file__), "--worker", "--batch", str(args.batch),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--bn", bn]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def report(bn: str, one: list, two: list, rounds: int, batch: int) -> None:
    med = statistics.median
    g = two[0]["grad_values"]
    loads = [r["load"] for r in one + two]
    print(f"\n{'SyncBatchNorm' if bn == 'sync' else 'plain BatchNorm2d'}: {g} parameters ({4 * g / 1e3:.0f} kB of "
          f"float32 gradients, {two[0]['calls']} allreduce call(s) a step); per-rank batch {batch}, 1 thread per "
          f"rank; {rounds} rounds; load average {min(loads):.1f}-{max(loads):.1f} during the runs")
    sps1 = [1 / o["ranks"][0]["step"] for o in one]
    sps2 = [1 / t["ranks"][0]["step"] for t in two]
    print(f"  steps/s (wall)  1 rank: {med(sps1):.1f} (runs {min(sps1):.1f}-{max(sps1):.1f}); 2 ranks: {med(sps2):.1f} "
          f"(runs {min(sps2):.1f}-{max(sps2):.1f}); samples/s 2 ranks / 1 rank: {2 * med(sps2) / med(sps1):.2f}")
    share = [r["allreduce"] / r["step"] for t in two for r in t["ranks"]]
    print(f"  2 ranks, share of a step's wall time: gradient allreduce {100 * med(share):.1f}% "
          f"(runs {100 * min(share):.1f}-{100 * max(share):.1f}%), including the wait for the other rank")
    for name in two[0]["ranks"][0]["by_name"]:
        wall = [r["by_name"][name][0] for t in two for r in t["ranks"]]
        frac = [r["by_name"][name][0] / r["step"] for t in two for r in t["ranks"]]
        print(f"  2 ranks, {name} ({two[0]['ranks'][0]['by_name'][name][1]} calls a step): {1e6 * med(wall):.0f} us "
              f"a step, {100 * med(frac):.1f}% of it (runs {100 * min(frac):.1f}-{100 * max(frac):.1f}%)")
    # CPU time outside the collective calls: the compute, whatever share of a core the rank was given
    compute1 = med([o["ranks"][0]["cpu"] for o in one])
    compute2 = med([r["cpu"] - r["collectives_cpu"] for t in two for r in t["ranks"]])
    pure = {k: med([t["pure"][k] for t in two]) for k in two[0]["pure"]}
    # a step on two free cores: the compute, the gradient allreduce, and the small collectives
    # (SyncBatchNorm's, the buffers' broadcast) at the 1-value latency each
    projected = compute2 + pure["grad"] + two[0]["ranks"][0]["other_calls"] * pure["1"]
    print(f"  compute CPU time per step: 1 rank {1e3 * compute1:.2f} ms, 2 ranks {1e3 * compute2:.2f} ms; "
          f"on 2 free cores a 2-rank step would take {1e3 * projected:.2f} ms: samples/s ratio "
          f"{2 * compute1 / projected:.2f}, gradient allreduce {100 * pure['grad'] / projected:.1f}% of the step")
    print(f"  allreduce after a barrier, 2 ranks: 1 value {1e6 * pure['1']:.1f} us, the gradients "
          f"{1e6 * pure['grad']:.1f} us ({4 * g / pure['grad'] / 1e9:.2f} GB/s), ResNet-18's "
          f"{RESNET18_PARAMETERS / 1e6:.1f}M float32 {1e3 * pure['resnet18']:.1f} ms "
          f"({4 * RESNET18_PARAMETERS / pure['resnet18'] / 1e9:.2f} GB/s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=32, help="per-rank batch (default 32)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--bn", choices=VARIANTS + ("both",), default="both", help="which batch norm (default both)")
    p.add_argument("--json", default=None, help="also write every run's figures here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    variants = VARIANTS if args.bn == "both" else (args.bn,)
    jobs = [(bn, n) for bn in variants for n in (1, 2)]
    runs = {bn: {1: [], 2: []} for bn in variants}
    for r in range(args.rounds):
        for bn, n in jobs[r % len(jobs):] + jobs[:r % len(jobs)]:
            runs[bn][n].append(launch(n, bn, args))
    for bn in variants:
        report(bn, runs[bn][1], runs[bn][2], args.rounds, args.batch)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
