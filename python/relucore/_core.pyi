"""Type stubs for relucore._core, the compiled extension (cpp/bindings/).

The entry points are fast paths for relucore.activations: each takes only arrays that need no
preparation (exact ndarray, float32/float64, native byte order, C-contiguous, aligned; ``out``
writeable and either the input itself or disjoint from every input) and returns None for anything
else, leaving validation and error messages to the Python layer.
"""

from typing import Final, Literal, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

_F = npt.NDArray[np.floating]

# Activation codes for forward/backward/backward_mask (cpp/include/relucore/activations.inc).
ACTIVATIONS: Final[dict[str, int]]

def forward(
    act: int, x: object, param: float, out: object, want_mask: bool, want_counts: bool
) -> Union[None, np.ndarray, Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """y = act(x) (param: slope or alpha), optionally with the bit mask and per-channel counts."""

def backward(act: int, dy: object, s: object, param: float, out: object) -> Optional[np.ndarray]:
    """dx from dy and s (x, or the forward output y for sigmoid/tanh)."""

def backward_mask(act: int, dy: object, mask: object, param: float, out: object) -> Optional[np.ndarray]:
    """dx from dy and the forward bit mask (activations with a mask); None for the others."""

def prelu(x: object, weight: object, out: object) -> Optional[np.ndarray]: ...
def prelu_backward(dy: object, x: object, weight: object) -> Optional[Tuple[np.ndarray, np.ndarray]]: ...

def get_isa() -> str: ...
def set_isa(name: str, /) -> None:
    """Switch the kernel table; ValueError if the ISA is not compiled in or the CPU lacks it."""

def compiled_isas() -> list[str]: ...
def usable_isas() -> list[str]: ...
def _isa_features() -> dict[str, list[str]]:
    """{isa: [CPU features dispatch verifies before using it]}, from CMakeLists.txt's feature list."""
def _compiled_features() -> dict[str, list[str]]:
    """{isa: [CPU features the compiler enabled in its objects]}."""
def _cpu_features() -> list[str]:
    """The CPU features dispatch knows that this CPU and OS support."""
def _usable_isas_with(features: list[str]) -> list[str]:
    """The ISAs dispatch would use on a CPU with exactly these features (ValueError: unknown name)."""
def tiles() -> dict[str, int]:
    """Elements per main-loop iteration of the active ISA's kernels, by dtype name."""

def _set_stream_threshold(nbytes: int, /) -> None:
    """Bytes above which outputs bypass the cache (-1: last-level cache size); for benchmarks."""

def blas_info() -> str:
    """The BLAS library and its own configuration string (the GEMM in use: gemm_info)."""

# Convolution path: arguments validated and parsed by relucore.conv; arrays C-contiguous,
# one float dtype per call (ValueError otherwise).
def set_gemm(name: str, /) -> None:
    """'auto' (relucore's own GEMM on the avx512 table, else OpenBLAS), 'own' or 'blas'."""
def get_gemm() -> str: ...
def gemm_info() -> str:
    """The GEMM in use on the active ISA, e.g. 'relucore avx512 8x48' or 'scipy-openblas32'."""
def _gemm(a: _F, b: _F, c: _F, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
          beta: float = 0.0) -> None:
    """c = alpha * op(a) @ op(b) + beta * c in place (rows contiguous; for tests)."""
def _release_scratch() -> None:
    """Free the scratch buffers kept between calls."""
def set_conv_algo(name: str, /) -> None:
    """3x3 stride-1 convolutions: 'auto' (Winograd F(2x2, 3x3) with >= 16 channels), 'gemm' or 'winograd'."""
def get_conv_algo() -> str: ...

def im2col(x: _F, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, /) -> _F: ...
def col2im(cols: _F, N: int, C: int, H: int, W: int, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
           dh: int, dw: int, /) -> _F: ...
def conv2d(x: _F, weight: _F, bias: Optional[_F], sh: int, sw: int, ph: int, pw: int, dh: int, dw: int,
           groups: int, act: int, param: float, /) -> _F: ...
def conv2d_moments(x: _F, weight: _F, bias: Optional[_F], sh: int, sw: int, ph: int, pw: int, dh: int, dw: int,
                   groups: int, /) -> tuple[_F, Optional[npt.NDArray[np.float64]]]: ...
def conv2d_backward(dy: _F, x: _F, weight: _F, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int,
                    groups: int, want_dx: bool, want_dweight: bool, want_dbias: bool, /
                    ) -> tuple[Optional[_F], Optional[_F], Optional[_F]]: ...
def max_pool2d(x: _F, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, /) -> tuple[_F, npt.NDArray[np.int64]]: ...
def max_pool2d_backward(dy: _F, indices: npt.NDArray[np.int64], N: int, C: int, H: int, W: int, /) -> _F: ...
def max_pool2d_positions(x: _F, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, /) -> tuple[_F, npt.NDArray[np.uint8]]: ...
def max_pool2d_positions_backward(dy: _F, positions: npt.NDArray[np.uint8], N: int, C: int, H: int, W: int, kh: int,
                                  kw: int, sh: int, sw: int, ph: int, pw: int, /) -> _F | None: ...
def avg_pool2d(x: _F, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, count_include_pad: bool, /) -> _F: ...
def avg_pool2d_backward(dy: _F, N: int, C: int, H: int, W: int, kh: int, kw: int, sh: int, sw: int, ph: int,
                        pw: int, count_include_pad: bool, /) -> _F: ...
def linear(x: _F, x_t: bool, weight: _F, weight_t: bool, bias: Optional[_F], /) -> _F: ...
def linear_backward(dy: _F, x: _F, x_t: bool, weight: _F, weight_t: bool, /) -> tuple[_F, _F, _F]: ...

# batch norm (relucore.norm): None when an array needs preparation
NORM_ACTIVATIONS: Final[dict[str, int]]
def batch_norm(x: object, running_mean: object, running_var: object, weight: object, bias: object,
               training: bool, momentum: float, eps: float, act: int, param: float, out: object,
               return_counts: bool) -> Optional[Tuple[np.ndarray, ...]]: ...
def batch_norm_backward(dy: object, s: object, from_y: bool, weight: object, bias: object, save_mean: object,
                        save_invstd: object, act: int, param: float, training: bool,
                        out: object) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]: ...
# batch norm + activation + max pooling (nn.BatchNorm2d in a Sequential): validated plain arrays
def batch_norm_max_pool2d(x: _F, running_mean: Optional[_F], running_var: Optional[_F], weight: Optional[_F],
                          bias: Optional[_F], training: bool, momentum: float, eps: float, act: int, param: float,
                          kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                          run_sums: Optional[npt.NDArray[np.float64]] = None,
                          ) -> tuple[_F, npt.NDArray[np.uint8], _F, _F]: ...
def batch_norm_max_pool2d_backward(dy: _F, positions: npt.NDArray[np.uint8], x: _F, weight: Optional[_F],
                                   bias: Optional[_F], save_mean: _F, save_invstd: _F, act: int, param: float,
                                   training: bool, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                                   input_sums: bool = False, /) -> tuple[_F, ...] | Literal[False] | None: ...
def batch_norm_max_pool2d_conv_backward(dy: _F, positions: npt.NDArray[np.uint8], x: _F, weight: Optional[_F],
                                        bias: Optional[_F], save_mean: _F, save_invstd: _F, act: int, param: float,
                                        training: bool, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                                        conv_x: _F, conv_weight: _F, csh: int, csw: int, cph: int, cpw: int,
                                        cdh: int, cdw: int, conv_bias: bool, /
                                        ) -> tuple[_F, _F, _F, Optional[_F]] | Literal[False] | None: ...

# SGD's update of a group's parameters (relucore.optim.SGD): False (nothing changed) unless all are plain
def sgd_step(items: list[tuple[_F, _F, Optional[_F], bool]], lr: float, momentum: float, dampening: float,
             weight_decay: float, nesterov: bool, /) -> bool: ...

# softmax and cross-entropy (relucore.loss): None when an array needs preparation
REDUCTIONS: Final[dict[str, int]]
def softmax(x: object, axis: int, log: bool, out: object) -> Optional[np.ndarray]: ...
def softmax_backward(dy: object, y: object, axis: int, log: bool, out: object) -> Optional[np.ndarray]: ...
def cross_entropy(logits: object, target: object, reduction: int, smoothing: float, ignore_index: int,
                  out: object) -> Optional[Tuple[object, np.ndarray]]: ...

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None:
    """Set the process-wide thread count: TypeError unless an int, ValueError outside [1, thread_limit()]."""
def thread_limit() -> int: ...
def _pool_stats() -> dict[str, int]:
    """Thread pool counters since _reset_pool_stats: parallel_jobs, most_threads, workers, stragglers."""
def _reset_pool_stats() -> None: ...
def _output_cache_stats() -> dict[str, int]:
    """Output cache counters: hits, misses, cached_bytes, blocks, enabled and its bounds."""
def _output_cache_release() -> None: ...
def _output_cache_zeros(n: int) -> np.ndarray:
    """n float64 zeros allocated through the output cache's calloc (for tests)."""

compiler: Final[str]

# The NumPy ufuncs (float32 'f' and float64 'd' loops), exposed as relucore.ufuncs: for each
# activation NAME, NAME (x[, param]) -> y and NAME_backward (dy, x or y[, param]) -> dx.
_ufuncs: Final[dict[str, np.ufunc]]
