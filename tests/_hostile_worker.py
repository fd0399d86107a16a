"""Worker process of tests/test_hostile.py: builds each hostile call from its recipe, runs it on
the native module and on relucore.reference, and judges the pair.

Run as ``python _hostile_worker.py``: reads a pickled list of ``(name, kwargs, faults)`` recipes
on stdin (``faults``: how many arguments were made hostile) and writes, per case, a pickled
``("start", i)`` before the call and ``("done", i, problem)`` after it (``problem`` is None or a
sentence). A crash or hang therefore leaves a "start" without
its "done", and the parent names that case. The address space is capped, so a genuinely huge
request is a MemoryError here instead of swapping the machine.
"""

from __future__ import annotations

import inspect
import os
import pickle
import resource
import sys

import numpy as np

#: Address-space cap of the worker: far above any case that should run, far below the machine.
ADDRESS_SPACE = 8 << 30

ALLOWED = (TypeError, ValueError, MemoryError)


class Sub(np.ndarray):
    """An ndarray subclass (as a user's own array type would be)."""


# --------------------------------------------------------------------------- building arguments
# A recipe is plain data (picklable, printable): ("array", shape, dtype, seed, mods) for an array,
# ("bcast", shape, dtype) for a huge zero-stride view, ("same", name) / ("overlap", name) for an
# ``out=`` that is argument ``name`` or overlaps it shifted by one element (``name`` is then moved
# into a bigger buffer), ("mask", recipe) for
# the bit mask of relu(recipe), ("indices", recipe, k) for max_pool2d's indices of recipe with a
# k x k window; anything else is passed as it is.


def _array(shape, dtype, seed, mods):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind in "fc":
        a = rng.standard_normal(shape).astype(dt)
    elif dt.kind == "b":
        a = rng.random(shape) < 0.5
    elif dt.kind in "iu":
        a = rng.integers(0, 4, shape).astype(dt)
    else:
        a = np.empty(shape, dt)
    if "positive" in mods and dt.kind == "f":  # variances, inverse standard deviations
        a = np.abs(a) + dt.type(0.5)
    if "noncontig" in mods and a.ndim:
        buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dt)
        buf[..., ::2] = a
        a = buf[..., ::2]
    if "fortran" in mods:
        a = np.asfortranarray(a)
    if "subclass" in mods:
        a = a.view(Sub)
    if "readonly" in mods:
        a.setflags(write=False)
    return a


def build(recipe):
    if isinstance(recipe, tuple) and recipe and isinstance(recipe[0], str):
        kind = recipe[0]
        if kind == "array":
            return _array(*recipe[1:])
        if kind == "bcast":
            return np.broadcast_to(np.ones((), recipe[2]), recipe[1])
        if kind == "mask":
            import relucore.reference as ref

            return ref.relu(_array(*recipe[1][1:]), return_mask=True)[1]
        if kind == "indices":
            import relucore.reference as ref

            return ref.max_pool2d(_array(*recipe[1][1:]), recipe[2])[1]
    return recipe


def build_call(kwargs):
    """Arguments for one call (fresh for each backend: a call may write into its ``out``)."""
    built = {k: build(r) for k, r in kwargs.items() if not _is_alias(r)}
    for k, (kind, target) in ((k, r) for k, r in kwargs.items() if _is_alias(r)):
        src = built.get(target)
        if kind == "same" or not isinstance(src, np.ndarray):
            built[k] = src
        else:  # out overlaps the input, shifted by one element
            buf = np.empty(src.size + 1, src.dtype)
            buf[1:] = src.ravel()
            built[target] = buf[1:].reshape(src.shape)
            built[k] = buf[:-1].reshape(src.shape)
    return built


def _is_alias(r):
    return isinstance(r, tuple) and len(r) == 2 and r[0] in ("same", "overlap")


# --------------------------------------------------------------------------- judging


def _run(fn, kwargs):
    try:
        return True, fn(**kwargs)
    except BaseException as exc:  # noqa: BLE001  (judged below, whatever it is)
        return False, exc


def _names_an_argument(fn, msg):
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = []
    return any(p in msg for p in params) or "argument" in msg


def _flat(r):
    return list(r) if isinstance(r, tuple) else [r]


def _same_result(got, exp):
    got, exp = _flat(got), _flat(exp)
    if len(got) != len(exp):
        return f"{len(got)} results, the reference gives {len(exp)}"
    for i, (g, e) in enumerate(zip(got, exp)):
        if isinstance(e, np.floating) and isinstance(g, np.floating):  # a reduced loss: within rounding
            g, e = np.asarray(g), np.asarray(e)
        if not isinstance(e, np.ndarray):
            if g != e and not (isinstance(e, float) and np.isnan(e) and np.isnan(g)):
                return f"result[{i}] is {g!r}, the reference gives {e!r}"
            continue
        if not isinstance(g, np.ndarray):
            return f"result[{i}] is a {type(g).__name__}, the reference gives an ndarray"
        if g.dtype != e.dtype or g.shape != e.shape:
            return f"result[{i}] is {g.dtype}{g.shape}, the reference gives {e.dtype}{e.shape}"
        if e.dtype.kind != "f":
            if not np.array_equal(g, e):
                return f"result[{i}] differs from the reference"
            continue
        # conv/linear round differently (GEMM order, Winograd); elementwise ops are tighter in
        # their own tests: here a few ulp of the result's scale
        tol = 1e-4 if e.dtype == np.float32 else 1e-11
        with np.errstate(all="ignore"):
            scale = max(1.0, float(np.max(np.abs(np.where(np.isfinite(e), e, 0)), initial=0.0)))
            ok = (g == e) | (np.isnan(g) & np.isnan(e)) | (np.abs(g.astype(np.float64) - e) <= tol * scale)
        if not ok.all():
            j = int(np.flatnonzero(~ok.ravel())[0])
            return f"result[{i}] differs from the reference at flat {j}: {g.ravel()[j]!r} vs {e.ravel()[j]!r}"
    return None


def judge(rc, ref, name, kwargs, faults=1):
    """None if the native call behaved, else what went wrong. With several hostile arguments the
    two backends may each name a different one first: then only the error types are free."""
    fn = getattr(rc, name)
    try:
        native_kwargs, ref_kwargs = build_call(kwargs), build_call(kwargs)
    except (ValueError, MemoryError):  # NumPy cannot make these arrays (too big): nothing to call
        return None
    ok, got = _run(fn, native_kwargs)
    if not ok and not isinstance(got, ALLOWED):
        return f"native raised {type(got).__name__}: {got}"
    if not ok and not isinstance(got, MemoryError):
        msg = str(got)
        if "internal" in msg or not _names_an_argument(fn, msg):
            return f"native {type(got).__name__} names no argument: {msg!r}"
    twin = getattr(ref, name, None)
    if twin is None:
        return None
    rok, exp = _run(twin, ref_kwargs)
    if not rok and not isinstance(exp, ALLOWED):
        return f"reference raised {type(exp).__name__}: {exp}"
    if ok and rok:
        return _same_result(got, exp)
    if ok and isinstance(exp, MemoryError):
        return None  # the reference builds the padded input; the native path does not need it
    if ok:
        return f"native succeeded, the reference raised {type(exp).__name__}: {exp}"
    if rok:
        return f"native raised {type(got).__name__} ({got}), the reference succeeded"
    if type(got) is not type(exp) and faults <= 1:
        return f"native raised {type(got).__name__} ({got}), the reference {type(exp).__name__} ({exp})"
    return None


#: Calls that test the harness itself: a crash by a signal, and a hang.
SELF_TEST = {"__abort__": os.abort, "__hang__": lambda: __import__("time").sleep(3600)}


def main():
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan reserves terabytes of shadow address space
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    cases = pickle.load(sys.stdin.buffer)
    out = os.fdopen(os.dup(1), "wb")  # the protocol; whatever a call prints goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import relucore as rc
    import relucore.reference as ref

    for i, (name, kwargs, faults) in enumerate(cases):
        pickle.dump(("start", i), out)
        out.flush()
        if name in SELF_TEST:
            SELF_TEST[name]()
        with np.errstate(all="ignore"):
            problem = judge(rc, ref, name, kwargs, faults)
        pickle.dump(("done", i, problem), out)
        out.flush()


if __name__ == "__main__":
    main()
