// The GEMM backend switch, a direct GEMM entry for the tests (strided 2-D views, any trans), and
// the release of the scratch kept between calls.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <new>
#include <string>

#include "relucore/blas.h"
#include "relucore/dispatch.h"
#include "relucore/gemm.h"

namespace relucore {
namespace bind {

namespace py = pybind11;

namespace {

// Row stride in elements of a 2-D array with contiguous, non-overlapping rows in increasing memory
// order; anything else (reversed, broadcast, misaligned rows) is a ValueError, never a wild access.
template <class T> int64_t ld(const py::array& x, const char* name) {
    if (x.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
    if (x.size() == 0) return x.shape(1) > 1 ? x.shape(1) : 1;  // NumPy gives empty arrays zero strides
    const int64_t item = (int64_t)sizeof(T);
    if (x.shape(1) > 1 && x.strides(1) != item)
        throw py::value_error(std::string(name) + " must have contiguous rows");
    if (x.shape(0) == 1) return x.shape(1);
    if (x.strides(0) % item != 0 || x.strides(0) / item < x.shape(1))
        throw py::value_error(std::string(name) + " rows must not overlap or run backwards");
    return x.strides(0) / item;
}

template <class T>
void run(const py::array& a, const py::array& b, py::array& c, bool ta, bool tb, double alpha, double beta) {
    const int64_t lda = ld<T>(a, "a"), ldb = ld<T>(b, "b"), ldc = ld<T>(c, "c");
    const int64_t m = c.shape(0), n = c.shape(1), k = ta ? a.shape(0) : a.shape(1);
    if ((ta ? a.shape(1) : a.shape(0)) != m || (tb ? b.shape(1) : b.shape(0)) != k || (tb ? b.shape(0) : b.shape(1)) != n)
        throw py::value_error("a, b and c have mismatched shapes");
    const T* pa = static_cast<const T*>(a.data());
    const T* pb = static_cast<const T*>(b.data());
    T* pc = static_cast<T*>(c.mutable_data());
    bool ok;
    {
        py::gil_scoped_release nogil;
        ok = ops::gemm(ta ? ops::Tr::T : ops::Tr::N, tb ? ops::Tr::T : ops::Tr::N, m, n, k, (T)alpha, pa, lda, pb,
                       ldb, (T)beta, pc, ldc);
    }
    if (!ok) throw std::bad_alloc();
}

}  // namespace

void bind_gemm(py::module_& m) {
    m.def("set_gemm", [](const std::string& name) {
        if (!ops::set_gemm_backend(name))
            throw py::value_error("GEMM backend must be 'auto', 'own' or 'blas', got '" + name + "'");
    });
    m.def("_release_scratch", &ops::release_scratch,
          "free the scratch buffers relucore keeps between calls (column blocks, packed GEMM panels)");
    m.def("get_gemm", &ops::gemm_backend, "the backend setting: 'auto', 'own' or 'blas'");
    m.def("gemm_info", [] {
        if (!ops::gemm_uses_own()) return std::string(ops::blas_name());
        const auto& g = active_kernels().f32.gemm;
        return std::string("relucore ") + active_kernels().isa + " " + std::to_string(g.mr) + "x" +
               std::to_string(g.nr);
    }, "the GEMM in use on the active ISA");
    m.def(
        "_gemm",
        [](const py::array& a, const py::array& b, py::array& c, bool ta, bool tb, double alpha, double beta) {
            if (!c.writeable()) throw py::value_error("c must be writeable");
            const auto dt = c.dtype();
            if (!a.dtype().is(dt) || !b.dtype().is(dt)) throw py::type_error("a, b and c must share one dtype");
            if (dt.is(py::dtype::of<float>())) run<float>(a, b, c, ta, tb, alpha, beta);
            else if (dt.is(py::dtype::of<double>())) run<double>(a, b, c, ta, tb, alpha, beta);
            else throw py::type_error("supported dtypes: float32, float64");
        },
        py::arg("a"), py::arg("b"), py::arg("c"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        "c = alpha * op(a) @ op(b) + beta * c in place, with the GEMM in use (for tests; c must not share memory "
        "with a or b)");
}

}  // namespace bind
}  // namespace relucore
