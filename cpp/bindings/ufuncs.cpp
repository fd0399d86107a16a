// relucore.ufuncs: the elementwise kernels as real NumPy ufuncs (float32 and float64 loops).
//
// The only translation unit that uses NumPy's C API. Built against numpy>=2 headers with
// NPY_TARGET_VERSION at the oldest NumPy declared in pyproject.toml (set in CMakeLists.txt), so one
// build runs on NumPy 1.x and 2.x. NumPy supplies broadcasting, casting, out=, where= and the
// __array_ufunc__ protocol; the inner loops below call the same dispatched kernels as the
// functional API:
// - contiguous operands with a broadcast (stride-0) parameter: relucore::ops::forward/backward, which
//   thread large runs (NumPy has released the GIL: these loops never touch Python objects);
// - strided operands: chunks gathered into a stack buffer, the kernel, scattered back;
// - a parameter that varies along the loop (PReLU: `leaky_relu(x, w[:, None, None])` when the inner
//   dimension is not the channel's): runs of equal parameter values, each as above;
// - an input that overlaps the output other than element for element (NumPy's reduce and
//   accumulate pass the running result as an input: out[i] = f(out[i-1], in[i])): one element at a
//   time, in order, as NumPy's own loops do.
// The loops leave the floating-point exception flags as they found them: a ufunc is as total as its
// functional twin (relu(NaN) is NaN without an "invalid value" warning; sigmoid(-1000) is 0 without
// an "overflow" one), whichever thread and ISA computed it.
#include <pybind11/pybind11.h>

#include <string.h>

#include <string>
#include <type_traits>

#include <fenv.h>
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define RC_SSE_CSR 1
#endif

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <numpy/ufuncobject.h>

#include "relucore/dispatch.h"
#include "relucore/kernels.h"
#include "relucore/ops.h"

namespace py = pybind11;

namespace relucore {
namespace bind {
namespace {

using ops::Act;

constexpr npy_intp kChunk = 256;  // elements per gather/kernel/scatter round of a strided loop

// ---- floating-point flags ------------------------------------------------------------------------

// Saves the exception flags on entry and restores them on exit (NumPy reads them after the loop).
class KeepFpFlags {
   public:
    KeepFpFlags() {
#if RC_SSE_CSR
        csr_ = _mm_getcsr();
#else
        fegetexceptflag(&flags_, FE_ALL_EXCEPT);
#endif
    }
    ~KeepFpFlags() {
#if RC_SSE_CSR
        const unsigned kFlags = 0x3F;  // IE DE ZE OE UE PE
        _mm_setcsr((_mm_getcsr() & ~kFlags) | (csr_ & kFlags));
#else
        fesetexceptflag(&flags_, FE_ALL_EXCEPT);
#endif
    }

   private:
#if RC_SSE_CSR
    unsigned csr_;
#else
    fexcept_t flags_;
#endif
};

// ---- one run with a fixed parameter ----------------------------------------------------------------

template <class T> inline T load(const char* p) {
    T v;
    memcpy(&v, p, sizeof(T));
    return v;
}

// The end of the run of parameter values bitwise equal to the one at i (j in (i, n]). NumPy hands a
// broadcast parameter over as a buffer of repeated values when it buffers (PReLU's w[:, None, None]
// arrives as runs of H*W equal values), so the contiguous case is scanned 16 values at a time.
template <class T> npy_intp run_end(const char* p, npy_intp sp, npy_intp i, npy_intp n) {
    using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
    U v;
    memcpy(&v, p + i * sp, sizeof(U));
    npy_intp j = i + 1;
    if (sp == (npy_intp)sizeof(T)) {
        for (; j + 16 <= n; j += 16) {
            U d = 0;
            for (int k = 0; k < 16; ++k) {
                U u;
                memcpy(&u, p + (j + k) * sp, sizeof(U));
                d |= u ^ v;
            }
            if (d) break;
        }
    }
    for (; j < n; ++j) {
        U u;
        memcpy(&u, p + j * sp, sizeof(U));
        if (u != v) break;
    }
    return j;
}

// Strided operand -> contiguous buffer (or the operand itself when it already is contiguous).
template <class T> inline const T* gather(const char* p, npy_intp step, npy_intp m, T* buf) {
    if (step == (npy_intp)sizeof(T)) return (const T*)p;
    for (npy_intp i = 0; i < m; ++i) buf[i] = load<T>(p + i * step);
    return buf;
}

template <class T> inline void scatter(const T* buf, char* p, npy_intp step, npy_intp m) {
    for (npy_intp i = 0; i < m; ++i) memcpy(p + i * step, &buf[i], sizeof(T));
}

// y = act(x; param) over n elements with byte steps sx, sy.
template <class T>
void forward_run(Act act, const char* x, npy_intp sx, char* y, npy_intp sy, npy_intp n, T param) {
    const npy_intp s = (npy_intp)sizeof(T);
    if (sx == s && sy == s) {  // aligned or not: the kernels use unaligned loads and stores
        ops::forward<T>(act, (const T*)x, (T*)y, (i64)n, param, nullptr, nullptr, 1, 1);
        return;
    }
    const auto k = ops::forward_kernel<T>(act);
    T bx[kChunk], by[kChunk];
    for (npy_intp i = 0; i < n; i += kChunk) {
        const npy_intp m = n - i < kChunk ? n - i : kChunk;
        const T* xs = gather<T>(x + i * sx, sx, m, bx);
        T* ys = sy == s ? (T*)(y + i * sy) : by;
        k(xs, ys, (i64)m, param, nullptr, 0, 0);
        if (ys == by) scatter<T>(by, y + i * sy, sy, m);
    }
}

// dx = g(dy, v; param) over n elements (v is x or the forward output y).
template <class T>
void backward_run(Act act, const char* dy, npy_intp sd, const char* v, npy_intp sv, char* dx, npy_intp so,
                  npy_intp n, T param) {
    const npy_intp s = (npy_intp)sizeof(T);
    if (sd == s && sv == s && so == s) {
        ops::backward<T>(act, (const T*)dy, (const T*)v, (T*)dx, (i64)n, param);
        return;
    }
    const auto k = ops::backward_kernel<T>(act);
    T bd[kChunk], bv[kChunk], bo[kChunk];
    for (npy_intp i = 0; i < n; i += kChunk) {
        const npy_intp m = n - i < kChunk ? n - i : kChunk;
        const T* ds = gather<T>(dy + i * sd, sd, m, bd);
        const T* vs = gather<T>(v + i * sv, sv, m, bv);
        T* os = so == s ? (T*)(dx + i * so) : bo;
        k(ds, vs, os, (i64)m, param, 0);
        if (os == bo) scatter<T>(bo, dx + i * so, so, m);
    }
}

// ---- overlapping operands (reduce, accumulate) ------------------------------------------------------

struct Span {
    uintptr_t lo, hi;  // [lo, hi)
};

inline Span span(const char* p, npy_intp step, npy_intp n, size_t size) {
    const npy_intp last = step * (n - 1);
    const uintptr_t a = (uintptr_t)p;
    return {a + (uintptr_t)(last < 0 ? last : 0), a + (uintptr_t)(last > 0 ? last : 0) + size};
}

// True when an input shares memory with the output other than at the same element (same pointer and
// step), or the output has step 0: then each output must be written before the next input is read.
template <class T>
bool overlapping(char** args, npy_intp const* steps, npy_intp n, int nin) {
    if (n <= 1) return false;
    if (steps[nin] == 0) return true;  // reduce: every element goes to one accumulator
    const Span out = span(args[nin], steps[nin], n, sizeof(T));
    for (int k = 0; k < nin; ++k) {
        if (args[k] == args[nin] && steps[k] == steps[nin]) continue;  // in place, elementwise
        const Span in = span(args[k], steps[k], n, sizeof(T));
        if (in.lo < out.hi && out.lo < in.hi) return true;
    }
    return false;
}

// One element at a time through the kernels (n = 1), each input read after the previous output was
// written. nin: 1 (x), 2 (x, param or dy, v), 3 (dy, x, param); `backward` picks the kernel kind.
template <class T>
void sequential(Act act, bool backward, int nin, char** args, npy_intp const* steps, npy_intp n) {
    const auto fk = ops::forward_kernel<T>(act);
    const auto bk = ops::backward_kernel<T>(act);
    for (npy_intp i = 0; i < n; ++i) {
        T in[3], out;
        for (int k = 0; k < nin; ++k) in[k] = load<T>(args[k] + i * steps[k]);
        if (!backward)
            fk(&in[0], &out, 1, nin == 2 ? in[1] : T(0), nullptr, 0, 0);
        else
            bk(&in[0], &in[1], &out, 1, nin == 3 ? in[2] : T(0), 0);
        memcpy(args[nin] + i * steps[nin], &out, sizeof(T));
    }
}

// ---- the inner loops (PyUFuncGenericFunction) --------------------------------------------------------

// (x) -> y.
template <class T, Act A>
void loop_f1(char** args, npy_intp const* dims, npy_intp const* steps, void*) {
    KeepFpFlags keep;
    const SettingsScope settings;  // one kernel table for every run of the loop
    if (overlapping<T>(args, steps, dims[0], 1)) return sequential<T>(A, false, 1, args, steps, dims[0]);
    forward_run<T>(A, args[0], steps[0], args[1], steps[1], dims[0], T(0));
}

// (x, param) -> y.
template <class T, Act A>
void loop_f2(char** args, npy_intp const* dims, npy_intp const* steps, void*) {
    KeepFpFlags keep;
    const SettingsScope settings;  // one kernel table for every run of the loop
    if (overlapping<T>(args, steps, dims[0], 2)) return sequential<T>(A, false, 2, args, steps, dims[0]);
    const npy_intp n = dims[0], sx = steps[0], sp = steps[1], sy = steps[2];
    const char *x = args[0], *p = args[1];
    char* y = args[2];
    if (sp == 0 || n <= 1) {
        forward_run<T>(A, x, sx, y, sy, n, n ? load<T>(p) : T(0));
        return;
    }
    for (npy_intp i = 0; i < n;) {  // runs of one parameter value
        const npy_intp j = run_end<T>(p, sp, i, n);
        forward_run<T>(A, x + i * sx, sx, y + i * sy, sy, j - i, load<T>(p + i * sp));
        i = j;
    }
}

// (dy, v) -> dx (relu_backward: gradient 0 at x == 0).
template <class T, Act A>
void loop_b2(char** args, npy_intp const* dims, npy_intp const* steps, void*) {
    KeepFpFlags keep;
    const SettingsScope settings;  // one kernel table for every run of the loop
    if (overlapping<T>(args, steps, dims[0], 2)) return sequential<T>(A, true, 2, args, steps, dims[0]);
    backward_run<T>(A, args[0], steps[0], args[1], steps[1], args[2], steps[2], dims[0], T(0));
}

// (dy, x, param) -> dx.
template <class T, Act A>
void loop_b3(char** args, npy_intp const* dims, npy_intp const* steps, void*) {
    KeepFpFlags keep;
    const SettingsScope settings;  // one kernel table for every run of the loop
    if (overlapping<T>(args, steps, dims[0], 3)) return sequential<T>(A, true, 3, args, steps, dims[0]);
    const npy_intp n = dims[0], sd = steps[0], sv = steps[1], sp = steps[2], so = steps[3];
    const char *dy = args[0], *v = args[1], *p = args[2];
    char* dx = args[3];
    if (sp == 0 || n <= 1) {
        backward_run<T>(A, dy, sd, v, sv, dx, so, n, n ? load<T>(p) : T(0));
        return;
    }
    for (npy_intp i = 0; i < n;) {
        const npy_intp j = run_end<T>(p, sp, i, n);
        backward_run<T>(A, dy + i * sd, sd, v + i * sv, sv, dx + i * so, so, j - i, load<T>(p + i * sp));
        i = j;
    }
}

// ---- the tables (static storage: NumPy keeps the pointers) -------------------------------------------

// The loops of one activation by the number of parameter operands its ufuncs take.
template <class T, Act A, int P> struct Loops;
template <class T, Act A> struct Loops<T, A, 0> {
    static constexpr PyUFuncGenericFunction forward = &loop_f1<T, A>, backward = &loop_b2<T, A>;
};
template <class T, Act A> struct Loops<T, A, 1> {
    static constexpr PyUFuncGenericFunction forward = &loop_f2<T, A>, backward = &loop_b3<T, A>;
};

#define RC_ACTIVATION(name, Op, from, cost, mask, up, ...)                                             \
    PyUFuncGenericFunction name##_loops[2] = {Loops<float, Act::name, up>::forward,                     \
                                              Loops<double, Act::name, up>::forward};                   \
    PyUFuncGenericFunction name##_backward_loops[2] = {Loops<float, Act::name, up>::backward,           \
                                                       Loops<double, Act::name, up>::backward};
#include "relucore/activations.inc"
#undef RC_ACTIVATION

void* no_data[2] = {nullptr, nullptr};

// Types per loop, inputs then output: float32 first, so NumPy's safe casting sends bool, int8/16,
// uint8/16 and float16 to float32, and int32/64, uint32/64 to float64 (as for np.sin).
char types2[4] = {NPY_FLOAT, NPY_FLOAT, NPY_DOUBLE, NPY_DOUBLE};
char types3[6] = {NPY_FLOAT, NPY_FLOAT, NPY_FLOAT, NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE};
char types4[8] = {NPY_FLOAT, NPY_FLOAT, NPY_FLOAT, NPY_FLOAT, NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE};

const char* const kCommon =
    "\n\nA NumPy ufunc (float32 and float64 loops; other real dtypes are cast by NumPy's rules, "
    "complex is a TypeError) running relucore's dispatched SIMD kernels. Parameters are broadcast "
    "operands. Never sets floating-point warnings. Same values as the function of the same name in "
    "relucore (docs/api.md).";

struct Spec {
    const char* name;
    PyUFuncGenericFunction* loops;
    char* types;
    int nin;
    const char* doc;
};

// Two ufuncs per activation, (x[, param]) -> y and (dy, x or y[, param]) -> dx; kCommon is
// appended to the summary lines (the strings live as long as the process).
const Spec kSpecs[] = {
#define RC_ACTIVATION(name, Op, from, cost, mask, up, forward_doc, backward_doc) \
    {#name, name##_loops, up ? types3 : types2, 1 + up, forward_doc},             \
    {#name "_backward", name##_backward_loops, up ? types4 : types3, 2 + up, backward_doc},
#include "relucore/activations.inc"
#undef RC_ACTIVATION
};

}  // namespace

void bind_ufuncs(py::module_& m) {
    if (PyArray_ImportNumPyAPI() < 0 || _import_umath() < 0) throw py::error_already_set();
    static std::string docs[sizeof(kSpecs) / sizeof(kSpecs[0])];  // never changed after this
    py::dict ufuncs;
    for (size_t i = 0; i < sizeof(kSpecs) / sizeof(kSpecs[0]); ++i) {
        const Spec& s = kSpecs[i];
        if (docs[i].empty()) docs[i] = std::string(s.doc) + kCommon;
        PyObject* f = PyUFunc_FromFuncAndData(s.loops, no_data, s.types, 2, s.nin, 1, PyUFunc_None, s.name,
                                              docs[i].c_str(), 0);
        if (!f) throw py::error_already_set();
        ufuncs[s.name] = py::reinterpret_steal<py::object>(f);
    }
    // Kept under a private name: relucore.ufuncs holds them by their own names (how pickle finds them).
    m.attr("_ufuncs") = ufuncs;
}

}  // namespace bind
}  // namespace relucore
