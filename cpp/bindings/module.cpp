// relucore._core: the module definition. pybind11 is seen only by the files in cpp/bindings/.
//
// Each entry point is a fast path: it accepts only arrays that need no preparation (exact ndarray,
// float32/float64 in native byte order, C-contiguous, aligned; `out` writeable and either the input
// itself or disjoint from every input) and returns None for anything else. The Python layer then
// validates (raising the documented errors) and prepares arguments, so error messages live in one
// place (relucore/_checks.py) and the common call costs one C++ hop.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "relucore/dispatch.h"
#include "relucore/ops.h"
#include "ops/blas.h"

namespace py = pybind11;

namespace relucore {
namespace bind {
void bind_activations(py::module_& m);
void bind_ufuncs(py::module_& m);
void bind_conv(py::module_& m);
void bind_gemm(py::module_& m);
void bind_norm(py::module_& m);
}  // namespace bind
}  // namespace relucore

namespace {

py::dict tiles() {
    py::dict d;
    const relucore::KernelTable& k = relucore::active_kernels();
    d["float32"] = k.f32.act.tile;
    d["float64"] = k.f64.act.tile;
    return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "relucore native kernels (fast paths; see relucore.activations for the public API)";
    // Our OpenBLAS never runs threads of its own (parallelism is ours, see cpp/ops/conv.cpp); one
    // thread from the start also keeps its idle server threads from spinning on our cores.
    relucore::ops::blas_threads(1);
    relucore::bind::bind_activations(m);
    relucore::bind::bind_ufuncs(m);
    relucore::bind::bind_conv(m);
    relucore::bind::bind_gemm(m);
    relucore::bind::bind_norm(m);
    m.def("get_isa", &relucore::active_isa);
    m.def("set_isa", [](const std::string& name) {
        if (!relucore::set_isa(name)) throw py::value_error("ISA '" + name + "' is not usable here");
    });
    m.def("compiled_isas", &relucore::compiled_isas);
    m.def("usable_isas", &relucore::usable_isas);
    m.def("tiles", &tiles, "elements per main-loop iteration of the active ISA's kernels, by dtype");
    m.def("_set_stream_threshold", &relucore::ops::set_stream_threshold,
          "bytes above which outputs bypass the cache (-1: last-level cache size); for benchmarks");
    m.def("blas_info", [] { return std::string(relucore::ops::blas_name()) + " (" + relucore::ops::blas_config() + ")"; });
    m.def("get_num_threads", &relucore::ops::get_num_threads);
    m.def("set_num_threads", &relucore::ops::set_num_threads);
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
    m.attr("compiler") = __VERSION__;
}
