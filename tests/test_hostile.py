"""Hostile arguments for every public function: no crash, no hang, no internal error.

For each name in ``relucore.__all__`` hypothesis draws batches of calls: a valid call of the
function with one or two arguments replaced by something hostile (wrong dtypes, big-endian and
object arrays, huge, negative and beyond-64-bit sizes, bools and floats for ints, zero-size
dimensions, huge zero-stride views, non-contiguous, read-only and subclassed arrays, ``out=``
that is read-only, wrong, the input itself or overlapping it). Each batch runs in a worker
process (tests/_hostile_worker.py), so a crash or a hang fails the test instead of the run. A
call must either succeed with the reference's result, or raise TypeError/ValueError naming an
argument, as the reference does (MemoryError only for a valid request too big for memory).

``RELUCORE_HOSTILE_EXAMPLES=N`` runs N batches per function (default 3); the seed is fixed, so a
failure reproduces.
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import relucore

WORKER = Path(__file__).with_name("_hostile_worker.py")
BATCH = 25
EXAMPLES = int(os.environ.get("RELUCORE_HOSTILE_EXAMPLES", "3"))
TIMEOUT = 20.0  # seconds per batch

# ----------------------------------------------------------------------------- hostile values

BIG_INTS = [-1, -(2**63), 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 + 1, 2**100, -(2**100),
            np.int64(2**62), np.uint64(2**64 - 1)]
NOT_INTS = [True, np.bool_(False), 1.0, 2.5, "2", b"2", None, 1j, np.float32(2)]
GEOMS = BIG_INTS + NOT_INTS + [0, (1, 2, 3), (), [2, 2], (2**62, 1), (1, 2**63), (2, -1), (2, None),
                              np.array([2, 2]), np.array([2.0, 2.0])]
SCALARS = [float("nan"), float("inf"), -0.0, 1e308, 2**100, "x", None, 1j, np.float16(0.5),
           np.array(0.25), [1.0], np.array([1.0, 2.0]), True]
FLAGS = [None, "yes", 2, np.bool_(True), 0.5, []]
FLOAT_DTYPES = ["float32", "float64"]
BAD_DTYPES = ["float16", "int32", "int64", "uint8", "bool", "complex64", ">f4", ">f8", "object", "<U1"]
MODS = ["readonly", "noncontig", "fortran", "subclass"]
HUGE_VIEWS = [(2**40, 1, 1, 1), (1, 1, 2**20, 2**20), (2**62,), (2**31, 2**31)]

ARRAY_ARGS = {"x", "dy", "y", "weight", "bias", "cols", "running_mean", "running_var", "save_mean", "save_invstd",
              "logits"}
GEOM_ARGS = {"kernel_size", "stride", "padding", "dilation"}
SCALAR_ARGS = {"negative_slope", "alpha", "grad_at_zero", "label_smoothing"}
FLAG_ARGS = {"return_mask", "return_counts", "count_include_pad", "compute_dx", "compute_dweight", "compute_dbias"}
#: Fused activations (batch norm, conv2d): valid spellings, and wrong ones.
ACTIVATIONS = [None, "relu", "leaky_relu", ("leaky_relu", 0.1), "elu", ("elu", 1.0)]
BAD_ACTIVATIONS = ["gelu", "", ("relu", 0.1), ("leaky_relu", "x"), ("elu", None), ("elu",), ("elu", 1.0, 2), 3,
                   ["relu"], b"relu", ("leaky_relu", float("nan")), ("elu", float("inf")), ("elu", np.float16(0.5)),
                   ("elu", np.array(0.25)), ("elu", 1j)]

#: Public names that are not array functions, with why they have no entry here.
EXEMPT = {
    "reference": "a module (its functions are the oracle of every call below)",
    "set_num_threads": "its argument validation has its own tests (tests/test_runtime.py)",
    "runtime": "a module (its public functions are checked here by their top-level names)",
    "ufuncs": "a module of numpy.ufunc objects: NumPy validates their arguments",
    "layers": "a module of CS231n-style wrappers over the public functions (tests/test_layers.py: bad arguments)",
    "gradcheck": "takes callables; its own tests cover bad arguments (tests/test_gradcheck.py)",
    "nn": "a module of layer classes over the functions checked here (tests/test_nn*.py check its errors)",
    "optim": "a module of optimizers over relucore.nn parameters (tests/test_optim.py checks its errors)",
}


def arr(shape, dtype="float32", seed=0, mods=()):
    return ("array", tuple(shape), dtype, seed, tuple(mods))


@st.composite
def hostile_array(draw, recipe):
    """Something else where the array ``recipe`` belongs."""
    _, shape, dtype, seed, _ = recipe
    kind = draw(st.sampled_from(["dtype", "mods", "shape", "huge", "other"]))
    if kind == "dtype":
        return arr(shape, draw(st.sampled_from(BAD_DTYPES)), seed)
    if kind == "mods":  # a valid array in an unusual layout or type: the call must still work
        return arr(shape, dtype, seed, draw(st.lists(st.sampled_from(MODS), min_size=1, max_size=3, unique=True)))
    if kind == "shape":
        options = [(), (0,), (3,), shape + (1,), shape[:-1], tuple(0 if i == 1 else d for i, d in enumerate(shape)),
                   tuple(0 if i == 0 else d for i, d in enumerate(shape)), tuple(d + 1 for d in shape)]
        return arr(draw(st.sampled_from(options)), dtype, seed)
    if kind == "huge":
        return ("bcast", draw(st.sampled_from(HUGE_VIEWS)), dtype)
    return draw(st.sampled_from([None, [[1.0, -2.0]], 3.0, "x", np.float32(1.0)]))


@st.composite
def hostile_shape(draw, shape):
    kind = draw(st.sampled_from(["entry", "length", "other"]))
    if kind == "entry":
        i = draw(st.integers(0, len(shape) - 1))
        v = draw(st.sampled_from(BIG_INTS + NOT_INTS + [0]))
        return tuple(shape[:i]) + (v,) + tuple(shape[i + 1:])
    if kind == "length":
        return draw(st.sampled_from([tuple(shape[:3]), tuple(shape) + (1,), ()]))
    return draw(st.sampled_from([5, None, "abcd", np.array(shape), (2**40, 0, 1, 1), (0, 2**62, 2**62, 1),
                                 (2**62, 2**62, 0, 0)]))


def hostile_value(name, value):
    """A strategy for a hostile replacement of argument ``name`` (valid value ``value``)."""
    if name in ARRAY_ARGS or name == "out" and isinstance(value, tuple) and value[:1] == ("array",):
        if isinstance(value, tuple) and value[:1] == ("array",):
            return hostile_array(value)
        return hostile_array(arr((2, 3)))
    if name == "out":
        return st.sampled_from([("same", "x"), ("overlap", "x"), ("same", "dy"), ("overlap", "dy"), [], 1.0,
                                arr((2, 3)), arr((0,), "float64")])
    if name in GEOM_ARGS or name == "groups":
        return st.sampled_from(GEOMS)
    if name in SCALAR_ARGS:
        return st.sampled_from(SCALARS)
    if name in FLAG_ARGS:
        return st.sampled_from(FLAGS)
    if name == "activation":
        return st.sampled_from(BAD_ACTIVATIONS)
    if name == "input_shape":
        return hostile_shape(value)
    if name == "mask":
        return st.sampled_from([arr((1,), "uint8"), arr((100,), "uint8"), arr((3,), "bool"), arr((2, 2), "uint8"),
                                ("mask", arr((9,)))])
    if name == "target":
        return st.sampled_from([arr((2,), "float32"), arr((2, 3), "int32"), arr((1, 1), "int64"), np.array(1.5),
                                np.full(2, 2**62), np.full(2, -1), np.full(2, -(2**63)),
                                np.array([2**64 - 1, 0], np.uint64), arr((2,), "bool"), arr((2,), "complex64"),
                                ("bcast", (2**40,), "int64"), [0, 1], None, "0"])
    if name == "reduction":
        return st.sampled_from(["MEAN", "", None, 0, b"sum", "elementwise_mean"])
    if name == "indices":
        one = (1, 1, 1, 1)
        return st.sampled_from([arr(one, "int32"), arr(one, "float32"), np.full(one, -1), np.full(one, 2**62),
                                np.full(one, -(2**63)), ("bcast", (2**40, 1, 1, 1), "int64")])
    return st.sampled_from(BIG_INTS + NOT_INTS)


# ----------------------------------------------------------------------------- valid calls

small = st.integers(1, 4)
geom1 = st.integers(1, 3)


@st.composite
def elementwise(draw, name):
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
    dt = draw(st.sampled_from(FLOAT_DTYPES))
    seeds = draw(st.integers(0, 2**16))
    sig = inspect.signature(getattr(relucore, name)).parameters
    kw = {}
    for i, p in enumerate(a for a in sig if a in ("x", "dy", "y")):
        kw[p] = arr(shape, dt, seeds + i)
    if name == "relu_backward" and draw(st.booleans()):
        kw["mask"] = ("mask", kw.pop("x"))
    if name in ("prelu", "prelu_backward"):
        c = shape[1] if len(shape) >= 2 else 1
        kw["weight"] = arr((draw(st.sampled_from([1, c])),), dt, seeds + 7)
    for p in sig:
        if p in SCALAR_ARGS and draw(st.booleans()):
            kw[p] = draw(st.sampled_from([0.0, 0.2, -1.5, 1.0]))
        if p in FLAG_ARGS and draw(st.booleans()):
            kw[p] = draw(st.booleans())
    if "out" in sig and draw(st.booleans()):
        first = "x" if "x" in kw else "dy"
        kw["out"] = draw(st.sampled_from([("same", first), ("overlap", first), arr(shape, dt, 99)]))
    if name == "relu_backward" and "mask" in kw:
        kw.pop("grad_at_zero", None)
    return kw


def _out(size, k, s, p, d=1):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_geometry(draw, pool=False):
    n, c, h, w = draw(small), draw(small), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    k, s = draw(geom1), draw(geom1)
    p = draw(st.integers(0, k // 2)) if pool else draw(st.integers(0, 2))
    d = 1 if pool else draw(st.integers(1, 2))
    if _out(h, k, s, p, d) < 1 or _out(w, k, s, p, d) < 1:
        k, p, d = 1, 0, 1
    return n, c, h, w, k, s, p, d


@st.composite
def conv_family(draw, name):
    dt = draw(st.sampled_from(FLOAT_DTYPES))
    seed = draw(st.integers(0, 2**16))
    n, c, h, w, k, s, p, d = draw(conv_geometry(pool="pool" in name))
    oh, ow = _out(h, k, s, p, d), _out(w, k, s, p, d)
    x = arr((n, c, h, w), dt, seed)
    if name == "im2col":
        return dict(x=x, kernel_size=k, stride=s, padding=p, dilation=d)
    if name == "col2im":
        return dict(cols=arr((n, c * k * k, oh * ow), dt, seed), input_shape=(n, c, h, w), kernel_size=k,
                    stride=s, padding=p, dilation=d)
    if name in ("conv2d", "conv2d_backward"):
        g = draw(st.sampled_from([1, c]))
        f = g * draw(small)
        kw = dict(x=x, weight=arr((f, c // g, k, k), dt, seed + 1), stride=s, padding=p, dilation=d, groups=g)
        if name == "conv2d":
            kw["bias"] = draw(st.sampled_from([None, arr((f,), dt, seed + 2)]))
            kw["activation"] = draw(st.sampled_from(ACTIVATIONS))
        else:
            kw["dy"] = arr((n, f, oh, ow), dt, seed + 3)
            for flag in ("compute_dx", "compute_dweight", "compute_dbias"):
                kw[flag] = draw(st.booleans())
        return kw
    if name == "max_pool2d":
        return dict(x=x, kernel_size=k, stride=s, padding=p)
    if name == "max_pool2d_backward":
        oh, ow = _out(h, k, k, 0), _out(w, k, k, 0)
        return dict(dy=arr((n, c, oh, ow), dt, seed + 3), indices=("indices", x, k), input_shape=(n, c, h, w))
    if name == "avg_pool2d":
        return dict(x=x, kernel_size=k, stride=s, padding=p, count_include_pad=draw(st.booleans()))
    if name == "avg_pool2d_backward":
        return dict(dy=arr((n, c, oh, ow), dt, seed + 3), input_shape=(n, c, h, w), kernel_size=k, stride=s,
                    padding=p, count_include_pad=draw(st.booleans()))
    raise AssertionError(name)


@st.composite
def linear_family(draw, name):
    dt = draw(st.sampled_from(FLOAT_DTYPES))
    seed = draw(st.integers(0, 2**16))
    lead = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    i, o = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    kw = dict(x=arr(lead + (i,), dt, seed), weight=arr((o, i), dt, seed + 1))
    if name == "linear":
        kw["bias"] = draw(st.sampled_from([None, arr((o,), dt, seed + 2)]))
    else:
        kw["dy"] = arr(lead + (o,), dt, seed + 3)
    return kw


@st.composite
def norm_family(draw, name):
    dt = draw(st.sampled_from(FLOAT_DTYPES))
    seed = draw(st.integers(0, 2**16))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    shape = (n, c) + spatial
    vec = lambda k, *mods: arr((c,), dt, seed + k, mods)  # noqa: E731
    act = draw(st.sampled_from([None, "relu", ("leaky_relu", 0.1), ("elu", 1.0)]))
    kw = dict(x=arr(shape, dt, seed), weight=draw(st.sampled_from([None, vec(1)])), activation=act)
    if name == "batch_norm":
        training = draw(st.booleans()) and n * max(1, int(np.prod(spatial))) > 1
        kw.update(running_mean=vec(2), running_var=vec(3, "positive"), bias=draw(st.sampled_from([None, vec(4)])),
                  training=training)
    else:
        kw.update(dy=arr(shape, dt, seed + 5), save_mean=vec(2), save_invstd=vec(3, "positive"), bias=vec(4))
        if kw["weight"] is None:
            kw["weight"] = vec(1)
    return kw


@st.composite
def loss_family(draw, name):
    dt = draw(st.sampled_from(FLOAT_DTYPES))
    seed = draw(st.integers(0, 2**16))
    shape = tuple(draw(st.lists(st.integers(0 if name != "cross_entropy" else 1, 4), min_size=1, max_size=4)))
    if name != "cross_entropy":
        kw = {p: arr(shape, dt, seed + i) for i, p in enumerate(("dy", "y") if "backward" in name else ("x",))}
        kw["axis"] = draw(st.integers(-len(shape), len(shape) - 1))
        if draw(st.booleans()):
            first = "dy" if "dy" in kw else "x"
            kw["out"] = draw(st.sampled_from([("same", first), ("overlap", first), arr(shape, dt, 99)]))
        return kw
    c = shape[1] if len(shape) > 1 else shape[0]
    positions = shape[:1] + shape[2:] if len(shape) > 1 else ()
    rng = np.random.default_rng(seed)
    target = draw(st.sampled_from(["index", "prob"]))
    if target == "index":
        t = rng.integers(0, c, positions)
        if t.size and draw(st.booleans()):
            t.flat[0] = -100
    else:
        t = arr(shape, dt, seed + 1, ("positive",))
    kw = dict(logits=arr(shape, dt, seed), target=t, reduction=draw(st.sampled_from(["mean", "sum", "none"])))
    if draw(st.booleans()):
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 1.0]))
    if draw(st.booleans()):
        kw["out"] = draw(st.sampled_from([("same", "logits"), ("overlap", "logits"), arr(shape, dt, 99)]))
    return kw


LOSS = {"softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "cross_entropy"}
CONV = {"im2col", "col2im", "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
        "avg_pool2d_backward"}
RUNTIME = {"runtime_info", "show_runtime", "get_num_threads", "get_isa", "get_gemm", "get_conv_algorithm", "get_backend",
           "release_scratch"}
#: The settings and a valid value of each (the worker is a process of its own: changing them is fine).
SETTINGS = {"use_isa": st.sampled_from(relucore.runtime_info()["usable_isas"]),
            "use_gemm": st.sampled_from(["auto", "own", "blas"]),
            "use_conv_algorithm": st.sampled_from(["auto", "gemm", "winograd"]),
            "use_backend": st.sampled_from(["native", "numpy"])}


def valid_call(name):
    if name in CONV:
        return conv_family(name)
    if name in ("linear", "linear_backward"):
        return linear_family(name)
    if name in ("batch_norm", "batch_norm_backward"):
        return norm_family(name)
    if name in LOSS:
        return loss_family(name)
    if name in RUNTIME:
        return st.just({})
    if name in SETTINGS:
        return st.fixed_dictionaries({"name": SETTINGS[name]})
    if name in relucore.activations.__all__:
        return elementwise(name)
    return None  # no entry: test_every_public_function_has_an_entry fails


@st.composite
def hostile_call(draw, name):
    kw = dict(draw(valid_call(name)))
    params = list(inspect.signature(getattr(relucore, name)).parameters)
    faults = draw(st.lists(st.sampled_from(params or ["extra"]), max_size=2, unique=True))
    for p in faults:
        kw[p] = draw(hostile_value(p, kw.get(p)))
    return name, kw, len(faults)


# ----------------------------------------------------------------------------- running


def run_batch(cases, timeout=TIMEOUT):
    """Run ``cases`` in a worker; return a list of failure descriptions (empty: all behaved)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(WORKER.parent)] + sys.path))
    proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(pickle.dumps(cases), timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        hung = True
    records, started = [], None
    stream = io.BytesIO(out)
    while True:
        try:
            rec = pickle.load(stream)
        except EOFError:
            break
        except Exception:  # noqa: BLE001  (a truncated record: the worker died while writing it)
            break
        if rec[0] == "start":
            started = rec[1]
        else:
            started = None
            records.append(rec)
    problems = [f"{cases[i][0]}(**{cases[i][1]!r}): {msg}" for _, i, msg in records if msg]
    if started is not None or hung or proc.returncode:
        what = f"hung (> {timeout:g} s)" if hung else f"exited with {proc.returncode}"
        at = f" in {cases[started][0]}(**{cases[started][1]!r})" if started is not None else ""
        tail = err.decode(errors="replace")[-2000:]
        problems.append(f"worker {what}{at}\n{tail}")
    return problems


def public_functions():
    return [n for n in relucore.__all__ if n not in EXEMPT]


def test_every_public_function_has_an_entry():
    missing = [n for n in public_functions() if valid_call(n) is None]
    assert not missing, f"public functions without a hostile-argument entry in tests/test_hostile.py: {missing}"
    assert set(EXEMPT) <= set(relucore.__all__), "EXEMPT lists names that are no longer public"


@pytest.mark.parametrize("name", public_functions())
def test_hostile_arguments(name):
    strategy = hostile_call(name)
    if valid_call(name) is None:
        pytest.fail(f"relucore.{name} has no hostile-argument entry")

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(st.lists(strategy, min_size=BATCH, max_size=BATCH))
    def check(cases):
        cases = list({repr(c): c for c in cases}.values())  # hypothesis's first batch repeats one case
        problems = run_batch(cases)
        assert not problems, f"{len(problems)} of {len(cases)} hostile calls misbehaved:\n" + "\n".join(problems[:10])

    check()


# Hand-picked: absurd geometries that reach the loops, work with no memory behind it, sizes beyond
# 64 bits, zero in_features.
HAND_PICKED = [
    ("max_pool2d", dict(x=arr((1, 1, 2, 2)), kernel_size=2**62, stride=2**62, padding=2**61)),
    ("max_pool2d", dict(x=arr((1, 1, 1, 3)), kernel_size=(2**40, 1), stride=1, padding=(2**39, 0))),
    ("col2im", dict(cols=arr((2**40, 0, 1)), input_shape=(2**40, 0, 1, 1), kernel_size=1)),
    ("conv2d", dict(x=arr((1, 1, 2, 2)), weight=arr((1, 1, 1, 1)), stride=2**62, padding=2**62)),
    ("conv2d_backward", dict(dy=arr((1, 1, 3, 3)), x=arr((1, 1, 2, 2)), weight=arr((1, 1, 1, 1)), stride=2**62,
                             padding=2**62)),
    ("im2col", dict(x=arr((1, 1, 2, 2)), kernel_size=1, stride=2**62, padding=2**62)),
    ("conv2d", dict(x=arr((1, 1, 2, 2)), weight=arr((1, 1, 1, 1)), stride=2**70)),
    ("conv2d", dict(x=arr((2**40, 1, 0, 0)), weight=arr((1, 1, 1, 1)), activation="elu")),
    ("conv2d_backward", dict(dy=arr((2**40, 1, 0, 0)), x=arr((2**40, 1, 0, 0)), weight=arr((1, 1, 1, 1)),
                             compute_dx=False, compute_dbias=False)),
    ("linear", dict(x=arr((3, 0)), weight=arr((2, 0)), bias=arr((2,)))),
    ("linear_backward", dict(dy=arr((3, 2)), x=arr((3, 0)), weight=arr((2, 0)))),
    ("avg_pool2d", dict(x=arr((1, 1, 2, 2)), kernel_size=2**32, stride=2**32, padding=2**31)),
    ("linear", dict(x=arr((2**40, 0)), weight=arr((0, 0)))),
    ("max_pool2d_backward", dict(dy=arr((2**40, 1, 0, 0)), indices=np.zeros((2**40, 1, 0, 0), np.int64),
                                 input_shape=(2**40, 1, 0, 0))),
]


def test_hand_picked_cases():
    problems = run_batch([(name, kw, 1) for name, kw in HAND_PICKED])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("hook, says", [("__abort__", "worker exited with -6"), ("__hang__", "worker hung")])
def test_worker_reports_a_crash_or_hang(hook, says):
    """The harness itself: a call that kills the worker or never returns is reported by name."""
    problems = run_batch([("runtime_info", {}, 0), (hook, {}, 0)], timeout=5)
    assert len(problems) == 1 and says in problems[0] and hook in problems[0], problems
