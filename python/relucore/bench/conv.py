"""Convolution-path cases: conv2d forward / backward / forward+backward on CNN layers, linear, max-pool.

The layers are the ones the convolution targets are stated for (:data:`LAYERS`); each gives three cases:
``conv2d`` (forward with bias), ``conv2d_backward`` (dx, dweight, dbias) and ``conv2d_fwdbwd`` (one
call of each: the headline figure). ``--sizes`` does not apply here; ``--quick`` runs
:data:`QUICK_LAYERS` only. Rates are GFLOP/s with ``flops = 2*N*F*(C/groups)*kh*kw*OH*OW`` for the
forward pass and twice that for the backward pass, compared with the sgemm rate measured in the same
run (:mod:`relucore.bench.limits`). These are the direct convolution's flops: on 3x3 stride-1 layers
relucore's Winograd path does 2.25x fewer multiply-adds in its GEMMs, so its rate (an effective
one) can exceed the sgemm rate.

* NumPy baseline: what one writes by hand: ``sliding_window_view`` im2col of the whole batch, one
  ``np.matmul`` per (image, group), col2im as a loop over the kernel taps. Not relucore's code.
* PyTorch peer: ``torch.nn.functional.conv2d`` and ``torch.ops.aten.convolution_backward`` (what
  autograd runs), with relucore's thread count.
* Peak extra memory: relucore's conv cases are run once more in a fresh process (see
  :mod:`relucore.bench.memory`); the table's ``scratch`` column and the footnote compare it with
  the batch's whole column matrix, which relucore never materializes.

Every result is checked against the NumPy baseline (by the CLI) or :mod:`relucore.reference` (by
``benchmarks/test_bench_conv.py``) to ``1000 * eps`` of the result's largest magnitude.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import relucore as rc

from .cases import Case, assert_results_match
from .noise import any_noisy


def _ref():
    import relucore.reference as reference

    return reference


# ---- layers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """A conv layer: input ``(n, c, h, w)``, ``f`` filters of ``k x k``, square stride and padding."""

    name: str  # the table's "size" column
    kind: str  # "resnet", "stem", "mnist", "batch1", "depthwise": what the targets group by
    n: int
    c: int
    h: int
    w: int
    f: int
    k: int
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def x_shape(self) -> tuple:
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self) -> tuple:
        return (self.f, self.c // self.groups, self.k, self.k)

    @property
    def out_hw(self) -> tuple:
        o = lambda size: (size + 2 * self.padding - self.k) // self.stride + 1  # noqa: E731
        return (o(self.h), o(self.w))

    @property
    def y_shape(self) -> tuple:
        return (self.n, self.f) + self.out_hw

    @property
    def flops(self) -> int:
        """Forward multiply-adds x 2 (the backward pass is twice this)."""
        oh, ow = self.out_hw
        return 2 * self.n * self.f * (self.c // self.groups) * self.k * self.k * oh * ow

    def cols_bytes(self, itemsize: int, images: Optional[int] = None) -> int:
        """Bytes of the column matrix ``(C*kh*kw, OH*OW)`` for ``images`` images (default: the batch)."""
        oh, ow = self.out_hw
        return (self.n if images is None else images) * self.c * self.k * self.k * oh * ow * itemsize

    @property
    def describe(self) -> str:
        s = f"{self.n}x{self.c}x{self.h}x{self.w} -> {self.f}, {self.k}x{self.k}"
        s += f" stride {self.stride}" if self.stride != 1 else ""
        s += f" pad {self.padding}" if self.padding else ""
        s += f" groups {self.groups}" if self.groups != 1 else ""
        return s


LAYERS = (
    Layer("res56", "resnet", 16, 64, 56, 56, 64, 3, padding=1),
    Layer("res28", "resnet", 16, 128, 28, 28, 128, 3, padding=1),
    Layer("res14", "resnet", 16, 256, 14, 14, 256, 3, padding=1),
    Layer("stem", "stem", 16, 3, 64, 64, 32, 7, stride=2, padding=3),
    Layer("mnist", "mnist", 64, 1, 28, 28, 16, 3, padding=1),
    Layer("b1", "batch1", 1, 64, 56, 56, 64, 3, padding=1),
    Layer("dw56", "depthwise", 16, 64, 56, 56, 64, 3, padding=1, groups=64),
)
QUICK_LAYERS = ("mnist", "b1", "res14")

LINEAR = (256, 1024, 1024)  # rows, in_features, out_features
LINEAR_WT = (100, 4320, 100)  # the same, weights kept (in, out) for ``x @ W``: long depth, small output
POOL_SMALL = (100, 30, 24, 24)  # max_pool2d rows narrower than a float32 vector of outputs
POOL_SHAPE = (16, 64, 56, 56)  # max_pool2d 2x2 (stride 2)

# Targets: forward+backward, float32.
TARGET_VS_NUMPY = 3.0  # every layer
TARGET_VS_TORCH_SMALL = 1.5  # MNIST-size and batch-1 layers
TARGET_VS_TORCH_RESNET = 0.8  # ResNet 3x3 layers
# linear W.T forward+backward (100x4320 -> 100), float32 and float64
TARGET_LINEAR_WT_VS_TORCH = 1.2
TARGET_LINEAR_WT_VS_NUMPY = 1.5


@dataclass(frozen=True)
class ConvCase(Case):
    """A :class:`Case` named by its layer (the ``size`` column) that also asks for its peak memory."""

    layer: Optional[Layer] = None
    tag: str = ""  # shown as the size: the layer's name, "256x1K", ...
    peak_memory: bool = False  # run it in a fresh process and report its peak extra memory

    @property
    def size(self) -> str:
        return self.tag or super().size

    def row_info(self) -> Dict[str, object]:
        """Extra fields for the JSON row (and the conv footnotes and targets)."""
        if self.layer is None:
            return {}
        lay, itemsize = self.layer, np.dtype(self.dtype).itemsize
        return {"layer": {"name": lay.name, "kind": lay.kind, "shape": lay.describe, "x": list(lay.x_shape),
                          "weight": list(lay.w_shape), "y": list(lay.y_shape), "stride": lay.stride,
                          "padding": lay.padding, "groups": lay.groups,
                          "cols_batch_bytes": lay.cols_bytes(itemsize),
                          "cols_image_bytes": lay.cols_bytes(itemsize, 1)}}


# ---- inputs ------------------------------------------------------------------------------------


class Inputs:
    """Operands of one layer (x, weight, bias, dy), each generated on first use and then shared."""

    def __init__(self, layer: Layer, dtype, seed: int = 0):
        self.layer, self.dtype, self._seed = layer, np.dtype(dtype), seed

    def _normal(self, shape, salt: int, scale: float = 1.0) -> np.ndarray:
        rng = np.random.default_rng([self._seed, salt, *shape])
        a = rng.standard_normal(shape, dtype=np.float64)
        return (a * scale).astype(self.dtype) if scale != 1.0 else a.astype(self.dtype)

    @functools.cached_property
    def x(self):
        return self._normal(self.layer.x_shape, 1)

    @functools.cached_property
    def weight(self):
        fan_in = (self.layer.c // self.layer.groups) * self.layer.k ** 2
        return self._normal(self.layer.w_shape, 2, fan_in ** -0.5)

    @functools.cached_property
    def bias(self):
        return self._normal((self.layer.f,), 3, 0.1)

    @functools.cached_property
    def dy(self):
        return self._normal(self.layer.y_shape, 4)


# ---- NumPy baselines: im2col of the whole batch + matmul, written as one would by hand ------------


def np_im2col(x, k, stride, padding):
    """``(N, C*k*k, OH*OW)`` columns of the whole batch (a copy), via ``sliding_window_view``."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]  # (N, C, OH, OW, k, k)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * k * k, oh * ow), (oh, ow)


def np_col2im(cols, x_shape, k, stride, padding, out_hw):
    """Sum the columns ``(N, C*k*k, OH*OW)`` back into an image: one strided add per kernel tap."""
    n, c, h, w = x_shape
    oh, ow = out_hw
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), cols.dtype)
    taps = cols.reshape(n, c, k, k, oh, ow)
    for i in range(k):
        for j in range(k):
            xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += taps[:, :, i, j]
    return xp[:, :, padding:padding + h, padding:padding + w]


def np_conv2d(x, w, b, stride, padding, groups):
    n, f, k = x.shape[0], w.shape[0], w.shape[-1]
    cols, (oh, ow) = np_im2col(x, k, stride, padding)
    cols = cols.reshape(n, groups, -1, oh * ow)
    y = np.matmul(w.reshape(groups, f // groups, -1), cols).reshape(n, f, oh, ow)
    if b is not None:
        y += b.reshape(1, f, 1, 1)
    return y


def np_conv2d_backward(dy, x, w, stride, padding, groups):
    n, f, k = x.shape[0], w.shape[0], w.shape[-1]
    cols, out_hw = np_im2col(x, k, stride, padding)
    cols = cols.reshape(n, groups, -1, out_hw[0] * out_hw[1])  # (N, G, C/G*k*k, L)
    dyg = dy.reshape(n, groups, f // groups, -1)  # (N, G, F/G, L)
    dw = np.matmul(dyg, cols.swapaxes(-1, -2)).sum(axis=0).reshape(w.shape)
    dcols = np.matmul(w.reshape(groups, f // groups, -1).swapaxes(-1, -2), dyg)
    dx = np_col2im(dcols.reshape(n, -1, out_hw[0] * out_hw[1]), x.shape, k, stride, padding, out_hw)
    return np.ascontiguousarray(dx), dw, dy.sum(axis=(0, 2, 3))


def np_linear(x, w, b):
    return x @ w.T + b


def np_linear_backward(dy, x, w):
    return dy @ w, dy.T @ x, dy.sum(axis=0)


def np_max_pool2x2(x):
    """2x2 / stride 2 max-pool with PyTorch's flat indices (first maximum wins): argmax per window."""
    n, c, h, w = x.shape
    oh, ow = h // 2, w // 2
    win = x[:, :, :2 * oh, :2 * ow].reshape(n, c, oh, 2, ow, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, 4)
    arg = win.argmax(axis=-1)
    y = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    rows = 2 * np.arange(oh).reshape(oh, 1) + arg // 2
    idx = rows * w + 2 * np.arange(ow) + arg % 2
    return y, idx.astype(np.int64)


def np_max_pool_backward(dy, idx, x):
    """Scatter of ``dy`` to the argmax positions (2x2 / stride 2 windows do not overlap: a put)."""
    n, c, h, w = x.shape
    dx = np.zeros((n * c, h * w), dy.dtype)
    np.put_along_axis(dx, idx.reshape(n * c, -1), dy.reshape(n * c, -1), axis=1)
    return dx.reshape(x.shape)


# ---- PyTorch peers -----------------------------------------------------------------------------


def _t_conv2d(lay: Layer):
    def make(t):
        conv = t.nn.functional.conv2d
        return lambda x, w, b: conv(x, w, b, lay.stride, lay.padding, 1, lay.groups)

    return make


def _t_conv_backward_fn(t, lay: Layer):
    op = t.ops.aten.convolution_backward
    s, p, bias_sizes = [lay.stride] * 2, [lay.padding] * 2, [lay.f]
    return lambda dy, x, w: op(dy, x, w, bias_sizes, s, p, [1, 1], False, [0, 0], lay.groups, [True, True, True])


def _t_conv2d_backward(lay: Layer):
    return lambda t: _t_conv_backward_fn(t, lay)


def _t_conv2d_fwdbwd(lay: Layer):
    def make(t):
        fwd, bwd = _t_conv2d(lay)(t), _t_conv_backward_fn(t, lay)
        return lambda x, w, b, dy: (fwd(x, w, b),) + tuple(bwd(dy, x, w))

    return make


def _t_linear_backward(t):
    return lambda dy, x, w: (dy @ w, dy.T @ x, dy.sum(0))


def _t_max_pool(t):
    pool = t.nn.functional.max_pool2d
    return lambda x: pool(x, 2, return_indices=True)


def _t_max_pool_backward(t):
    op = t.ops.aten.max_pool2d_with_indices_backward
    return lambda dy, idx, x: op(dy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)


# ---- checks ------------------------------------------------------------------------------------


def check_close(dtype):
    """Shapes and dtypes equal; every result within ``1000 * eps`` of its largest magnitude.

    A float32 GEMM over thousands of terms rounds differently in every library; a bug is off by
    O(1) of the result's scale, rounding by ~1e-6 of it.
    """
    tol = 1000 * float(np.finfo(dtype).eps)

    def check(got, want, inputs):
        got_t = got if isinstance(got, tuple) else (got,)
        want_t = want if isinstance(want, tuple) else (want,)
        assert_results_match(tuple(np.asarray(g).shape for g in got_t), tuple(np.asarray(w).shape for w in want_t))
        for i, (g, w) in enumerate(zip(got_t, want_t)):
            g, w = np.asarray(g), np.asarray(w)
            if g.dtype != w.dtype and not (g.dtype.kind == w.dtype.kind == "i"):
                raise AssertionError(f"result {i}: dtype {g.dtype}, expected {w.dtype}")
            if g.dtype.kind != "f":
                np.testing.assert_array_equal(g, w, err_msg=f"result {i}")
                continue
            scale = float(np.max(np.abs(w), initial=0.0)) or 1.0
            err = float(np.max(np.abs(g.astype(np.float64) - w), initial=0.0))
            if not err <= tol * scale:
                raise AssertionError(f"result {i} {list(g.shape)}: max |difference| {err:.3g} > "
                                     f"{tol:.1e} x max |expected| {scale:.3g}")

    return check


# ---- the cases ---------------------------------------------------------------------------------


def layer_cases(lay: Layer, dtype, peak_memory: bool = True) -> List[ConvCase]:
    """``conv2d``, ``conv2d_backward`` and ``conv2d_fwdbwd`` for one layer."""
    dtype = np.dtype(dtype)
    d = Inputs(lay, dtype)
    s, p, g = lay.stride, lay.padding, lay.groups
    ref = lambda: _ref()  # noqa: E731

    def rc_fwdbwd(x, w, b, dy):
        return (rc.conv2d(x, w, b, s, p, 1, g),) + tuple(rc.conv2d_backward(dy, x, w, s, p, 1, g))

    def np_fwdbwd(x, w, b, dy):
        return (np_conv2d(x, w, b, s, p, g),) + np_conv2d_backward(dy, x, w, s, p, g)

    def ref_fwdbwd(x, w, b, dy):
        return (ref().conv2d(x, w, b, s, p, 1, g),) + tuple(ref().conv2d_backward(dy, x, w, s, p, 1, g))

    common = dict(n=int(np.prod(lay.x_shape)), dtype=dtype.name, shape=lay.x_shape, limit="sgemm",
                  check=check_close(dtype), suite=__name__, layer=lay, tag=lay.name, peak_memory=peak_memory)
    return [
        ConvCase("conv2d", "conv2d", make_inputs=lambda: (d.x, d.weight, d.bias),
                 relucore=lambda x, w, b: rc.conv2d(x, w, b, s, p, 1, g),
                 numpy=lambda x, w, b: np_conv2d(x, w, b, s, p, g), torch=_t_conv2d(lay),
                 reference=lambda x, w, b: ref().conv2d(x, w, b, s, p, 1, g), flops=lay.flops, **common),
        ConvCase("conv2d_backward", "conv2d_backward", make_inputs=lambda: (d.dy, d.x, d.weight),
                 relucore=lambda dy, x, w: rc.conv2d_backward(dy, x, w, s, p, 1, g),
                 numpy=lambda dy, x, w: np_conv2d_backward(dy, x, w, s, p, g), torch=_t_conv2d_backward(lay),
                 reference=lambda dy, x, w: ref().conv2d_backward(dy, x, w, s, p, 1, g),
                 flops=2 * lay.flops, **common),
        ConvCase("conv2d_fwdbwd", "conv2d fwd+bwd", make_inputs=lambda: (d.x, d.weight, d.bias, d.dy),
                 relucore=rc_fwdbwd, numpy=np_fwdbwd, torch=_t_conv2d_fwdbwd(lay), reference=ref_fwdbwd,
                 flops=3 * lay.flops, **common),
    ]


def linear_cases(dtype, rows: int = LINEAR[0], n_in: int = LINEAR[1], n_out: int = LINEAR[2]) -> List[ConvCase]:
    dtype = np.dtype(dtype)

    @functools.lru_cache(maxsize=None)
    def operands():  # x, weight, bias, dy
        rng = np.random.default_rng([7, rows, n_in, n_out])
        return (rng.standard_normal((rows, n_in)).astype(dtype),
                (rng.standard_normal((n_out, n_in)) * n_in ** -0.5).astype(dtype),
                (0.1 * rng.standard_normal(n_out)).astype(dtype),
                rng.standard_normal((rows, n_out)).astype(dtype))

    flops = 2 * rows * n_in * n_out
    common = dict(n=rows * n_in, dtype=dtype.name, shape=(rows, n_in), limit="sgemm", check=check_close(dtype),
                  suite=__name__, tag=f"{rows}x{n_in}")
    return [
        ConvCase("linear", f"linear ->{n_out}", make_inputs=lambda: operands()[:3], relucore=rc.linear,
                 numpy=np_linear, torch=lambda t: t.nn.functional.linear,
                 reference=lambda x, w, b: _ref().linear(x, w, b), flops=flops, **common),
        ConvCase("linear_backward", "linear_backward", make_inputs=lambda: operands()[3:] + operands()[:2],
                 relucore=rc.linear_backward, numpy=np_linear_backward, torch=_t_linear_backward,
                 reference=lambda dy, x, w: _ref().linear_backward(dy, x, w), flops=2 * flops, **common),
    ]


def np_linear_wt_fwdbwd(x, wt, b, dy):
    """``x @ W + b`` and its gradients, W kept ``(in, out)``; dweight as the ``(out, in)`` view."""
    return x @ wt + b, dy @ wt.T, (x.T @ dy).T, dy.sum(axis=0)


def _t_linear_wt_fwdbwd(t):
    def run(x, wt, b, dy):
        w = wt.T
        return t.nn.functional.linear(x, w, b), dy @ w, dy.T @ x, dy.sum(0)

    return run


def linear_wt_cases(dtype, rows: int = LINEAR_WT[0], n_in: int = LINEAR_WT[1],
                    n_out: int = LINEAR_WT[2]) -> List[ConvCase]:
    """linear forward+backward with the weight passed as ``W.T`` of an ``(in, out)`` array (read in
    place, dweight returned as the transposed view of an ``(in, out)`` array: no copy)."""
    dtype = np.dtype(dtype)

    @functools.lru_cache(maxsize=None)
    def operands():  # x, W (in, out), bias, dy
        rng = np.random.default_rng([10, rows, n_in, n_out])
        return (rng.standard_normal((rows, n_in)).astype(dtype),
                (rng.standard_normal((n_in, n_out)) * n_in ** -0.5).astype(dtype),
                (0.1 * rng.standard_normal(n_out)).astype(dtype),
                rng.standard_normal((rows, n_out)).astype(dtype))

    def rc_fwdbwd(x, wt, b, dy):
        return (rc.linear(x, wt.T, b),) + tuple(rc.linear_backward(dy, x, wt.T))

    def ref_fwdbwd(x, wt, b, dy):
        return (_ref().linear(x, wt.T, b),) + tuple(_ref().linear_backward(dy, x, wt.T))

    return [ConvCase("linear_wt_fwdbwd", "linear W.T fwd+bwd", make_inputs=operands, relucore=rc_fwdbwd,
                     numpy=np_linear_wt_fwdbwd, torch=_t_linear_wt_fwdbwd, reference=ref_fwdbwd,
                     flops=3 * 2 * rows * n_in * n_out, n=rows * n_in, dtype=dtype.name, shape=(rows, n_in),
                     limit="sgemm", check=check_close(dtype), suite=__name__, tag=f"{rows}x{n_in}")]


def pool_cases(dtype, shape: tuple = POOL_SHAPE) -> List[ConvCase]:
    """max_pool2d 2x2 forward (with indices) and backward: bandwidth-bound, so GB/s and % of copy."""
    dtype = np.dtype(dtype)

    @functools.lru_cache(maxsize=None)
    def operands():  # x, and the backward's dy and indices (from the NumPy baseline)
        x = np.random.default_rng([8, *shape]).standard_normal(shape).astype(dtype)
        y, idx = np_max_pool2x2(x)
        dy = np.random.default_rng([9, *shape]).standard_normal(y.shape).astype(dtype)
        return x, dy, idx

    n, out = int(np.prod(shape)), int(np.prod(shape)) // 4
    item = dtype.itemsize
    common = dict(n=n, dtype=dtype.name, shape=shape, limit="copy", suite=__name__,
                  tag="x".join(map(str, shape)))
    return [
        ConvCase("max_pool2d", "max_pool2d 2x2", make_inputs=lambda: operands()[:1],
                 relucore=lambda x: rc.max_pool2d(x, 2), numpy=np_max_pool2x2, torch=_t_max_pool,
                 reference=lambda x: _ref().max_pool2d(x, 2),
                 bytes=n * item + out * (item + 8), **common),  # read x, write y and int64 indices
        ConvCase("max_pool2d_backward", "max_pool2d_backward", make_inputs=lambda: operands()[1:] + operands()[:1],
                 relucore=lambda dy, idx, x: rc.max_pool2d_backward(dy, idx, x.shape), numpy=np_max_pool_backward,
                 torch=_t_max_pool_backward,
                 reference=lambda dy, idx, x: _ref().max_pool2d_backward(dy, idx, x.shape),
                 bytes=out * (item + 8) + n * item, **common),  # read dy and indices, write dx
    ]


def cases(sizes: Sequence[int], dtype, quick: bool = False, layers: Optional[Sequence[str]] = None) -> List[Case]:
    """Conv cases per layer (ops in the order fwd, bwd, fwd+bwd), then linear and max_pool2d.

    ``sizes`` is not used (the layers are fixed shapes); ``quick`` keeps :data:`QUICK_LAYERS` and
    drops linear and pooling; ``layers`` picks layers by name.
    """
    names = layers if layers is not None else (QUICK_LAYERS if quick else [lay.name for lay in LAYERS])
    out: List[Case] = []
    for lay in LAYERS:
        if lay.name in names:
            out += layer_cases(lay, dtype)
    if not quick and layers is None:
        out += linear_cases(dtype) + linear_wt_cases(dtype) + pool_cases(dtype) + pool_cases(dtype, POOL_SMALL)[:1]
    return out


# ---- what the CLI prints after the table ---------------------------------------------------------


def _fwdbwd(rows: List[dict]) -> List[dict]:
    return [r for r in rows if r["op"] == "conv2d_fwdbwd" and r.get("layer")]


def targets(rows: List[dict]) -> List[dict]:
    """The convolution targets, judged on the forward+backward rows of this run (float32 only)."""
    fb = [r for r in _fwdbwd(rows) if r["dtype"] == "float32"]
    out = []

    def judge(text: str, sel: List[dict], key: str, want: float) -> None:
        if not sel:
            return
        got = {r["layer"]["name"]: r[key] for r in sel}
        if any(v is None for v in got.values()):
            out.append({"target": text, "met": None, "values": got,
                        "detail": "not measured (" + ("no torch)" if key == "speedup_vs_torch" else "missing)")})
            return
        worst = min(got, key=got.get)
        detail = ", ".join(f"{k} {v:.2f}x" for k, v in got.items())
        out.append({"target": text, "met": got[worst] >= want, "values": got, "worst": worst, "detail": detail,
                    "noisy": any_noisy(sel)})

    judge(f"conv2d fwd+bwd >= {TARGET_VS_NUMPY:g}x NumPy im2col+matmul everywhere", fb,
          "speedup_vs_numpy", TARGET_VS_NUMPY)
    judge(f"MNIST-size and batch-1 conv2d fwd+bwd >= {TARGET_VS_TORCH_SMALL:g}x PyTorch",
          [r for r in fb if r["layer"]["kind"] in ("mnist", "batch1")], "speedup_vs_torch", TARGET_VS_TORCH_SMALL)
    judge(f"ResNet 3x3 conv2d fwd+bwd >= {TARGET_VS_TORCH_RESNET:g}x PyTorch",
          [r for r in fb if r["layer"]["kind"] == "resnet"], "speedup_vs_torch", TARGET_VS_TORCH_RESNET)
    for r in rows:
        if r["op"] != "linear_wt_fwdbwd":
            continue
        for key, peer, want in (("speedup_vs_torch", "PyTorch", TARGET_LINEAR_WT_VS_TORCH),
                                ("speedup_vs_numpy", "NumPy x @ W", TARGET_LINEAR_WT_VS_NUMPY)):
            text = f"linear W.T fwd+bwd {r['size']} {r['dtype']} >= {want:g}x {peer}"
            v = r.get(key)
            out.append({"target": text, "met": None, "detail": "not measured"} if v is None else
                       {"target": text, "met": v >= want, "detail": f"{v:.2f}x", "noisy": r.get("noisy", False)})
    return out


def notes(rows: List[dict], threads: int) -> List[str]:
    """The layer legend and the peak-memory footnote."""
    seen: Dict[str, dict] = {}
    for r in rows:
        if r.get("layer"):
            seen.setdefault(r["layer"]["name"], r["layer"])
    if not seen:
        return []
    lines = ["conv layers: " + "; ".join(f"{k} {v['shape']}" for k, v in seen.items()),
             "GFLOP/s: the direct convolution's flops over the time (the 3x3 stride-1 layers with >= 16 channels "
             "here run Winograd F(2x2, 3x3): effective rates, %sgemm may exceed 100%)"]
    mem = [r for r in rows if r.get("layer") and r.get("memory")]
    if mem:
        lines.append("scratch MB: peak RSS growth (VmHWM, resolution ~0.25 MB) of one relucore call beyond its inputs "
                     "and outputs, in a fresh process, its kept scratch freed first; relucore's bound is")
        lines.append(f"  {threads} threads x the GEMM's packed blocks (~1.2 MB float32), plus backward one image's "
                     "column gradient per thread and min(N, 2) dweight partials, never the whole batch's")
        lines.append("  N*C*kh*kw*OH*OW; Winograd layers: per thread the 16 transformed tile matrices (in and out) of one "
                     "block of tiles (96 if that fits ~1 MB, else up to 768, or a few small images), plus the")
        lines.append("  transformed kernels (16 x F x C/groups) and, backward, two dweight partials of that size.")
        lines.append("  The scratch stays allocated between calls (kept: resident after the call):")
        by_layer: Dict[str, Dict[str, float]] = {}
        kept: Dict[str, float] = {}
        for r in mem:
            name = r["layer"]["name"]
            by_layer.setdefault(name, {})[r["op"]] = r["memory"]["scratch_bytes"]
            kept[name] = max(kept.get(name, 0), r["memory"].get("retained_bytes", 0))
        width = max(len(name) for name in by_layer)
        for name, ops in by_layer.items():
            lay = seen[name]
            full, one = lay["cols_batch_bytes"], lay["cols_image_bytes"]
            figs = ", ".join(f"{_short(op)} {v / 2**20:.1f}" for op, v in ops.items())
            lines.append(f"  {name:{width}}  {figs} MB, kept {kept[name] / 2**20:.1f}; whole-batch columns "
                         f"{full / 2**20:.1f} MB, {threads} x one image {threads * one / 2**20:.1f} MB")
    return lines


def _short(op: str) -> str:
    return {"conv2d": "fwd", "conv2d_backward": "bwd", "conv2d_fwdbwd": "fwd+bwd"}.get(op, op)
