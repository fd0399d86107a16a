// relucore._core: the module definition. pybind11 is seen only by the files in cpp/bindings/.
//
// Each entry point is a fast path: it accepts only arrays that need no preparation (exact ndarray,
// float32/float64 in native byte order, C-contiguous, aligned; `out` writeable and either the input
// itself or disjoint from every input) and returns None for anything else. The Python layer then
// validates (raising the documented errors) and prepares arguments, so error messages live in one
// place (relucore/_checks.py) and the common call costs one C++ hop.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>
#include <vector>

#include "relucore/blas.h"
#include "relucore/dispatch.h"
#include "relucore/ops.h"
#include "relucore/threads.h"

namespace py = pybind11;

namespace relucore {
namespace bind {
void bind_activations(py::module_& m);
void bind_ufuncs(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_linear(py::module_& m);
void bind_gemm(py::module_& m);
void bind_norm(py::module_& m);
void bind_loss(py::module_& m);
void bind_output_cache(py::module_& m);
void bind_optim(py::module_& m);
}  // namespace bind
}  // namespace relucore

namespace {

// {isa: [features]} for every compiled ISA: those dispatch verifies, or those the compiler enabled.
py::dict isa_feature_lists(bool compiled) {
    py::dict d;
    for (const relucore::IsaFeatures& f : relucore::isa_features())
        d[py::str(f.isa)] = compiled ? f.compiled : f.required;
    return d;
}

py::dict tiles() {
    py::dict d;
    const relucore::KernelTable& k = relucore::active_kernels();
    d["float32"] = k.f32.act.tile;
    d["float64"] = k.f64.act.tile;
    return d;
}

// Takes any object so that a wrong type is a plain TypeError, never pybind11's overload listing.
void set_num_threads(const py::object& n) {
    if (!py::isinstance<py::int_>(n) || py::isinstance<py::bool_>(n))
        throw py::type_error("n must be an int, got " + std::string(py::str(py::type::of(n).attr("__name__"))));
    const int limit = relucore::ops::thread_limit();
    const bool in_range = py::int_(1) <= n && n <= py::int_(limit);
    if (!in_range)
        throw py::value_error("n must be in [1, " + std::to_string(limit) + "], got " + std::string(py::str(n)));
    relucore::ops::set_num_threads(n.cast<int>());
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
    relucore::bind::bind_pool(m);
    relucore::bind::bind_linear(m);
    relucore::bind::bind_gemm(m);
    relucore::bind::bind_norm(m);
    relucore::bind::bind_loss(m);
    relucore::bind::bind_output_cache(m);
    relucore::bind::bind_optim(m);
    m.def("get_isa", &relucore::active_isa);
    m.def("set_isa", [](const std::string& name) {
        if (!relucore::set_isa(name)) throw py::value_error("ISA '" + name + "' is not usable here");
    });
    m.def("compiled_isas", &relucore::compiled_isas);
    m.def("usable_isas", &relucore::usable_isas);
    m.def("_isa_features", [] { return isa_feature_lists(false); },
          "{isa: [CPU features dispatch verifies before using it]}, from CMakeLists.txt's feature list");
    m.def("_compiled_features", [] { return isa_feature_lists(true); },
          "{isa: [CPU features the compiler enabled in its objects]}");
    m.def("_cpu_features", &relucore::cpu_features, "the CPU features dispatch knows that this CPU and OS support");
    m.def("_usable_isas_with", &relucore::usable_isas_with, py::arg("features"),
          "the ISAs dispatch would use on a CPU with exactly these features");
    m.def("tiles", &tiles, "elements per main-loop iteration of the active ISA's kernels, by dtype");
    m.def("_set_stream_threshold", &relucore::ops::set_stream_threshold,
          "bytes above which outputs bypass the cache (-1: last-level cache size); for benchmarks");
    m.def("blas_info", [] { return std::string(relucore::ops::blas_name()) + " (" + relucore::ops::blas_config() + ")"; });
    m.def("get_num_threads", &relucore::ops::get_num_threads, "the process-wide thread count");
    m.def("set_num_threads", &set_num_threads, py::arg("n"),
          "set the process-wide thread count (an int in [1, thread_limit()])");
    m.def("thread_limit", &relucore::ops::thread_limit, "the largest thread count set_num_threads accepts");
    m.def("_pool_stats", [] {
        const relucore::ops::PoolStats s = relucore::ops::pool_stats();
        py::dict d;
        d["parallel_jobs"] = s.parallel_jobs;
        d["most_threads"] = s.most_threads;
        d["workers"] = s.workers;
        d["stragglers"] = s.stragglers;
        d["fallbacks"] = s.fallbacks;
        d["fewer_jobs"] = s.fewer_jobs;
        return d;
    }, "thread pool counters since _reset_pool_stats (for tests)");
    m.def("_reset_pool_stats", &relucore::ops::reset_pool_stats);
    m.def("_pool_late_worker", [](double seconds) { relucore::ops::set_late_worker((int64_t)(seconds * 1e9)); },
          py::arg("seconds"), "pool workers sleep this long before each piece (0: off; for tests)");
    m.def("_pool_detector_replay", [](const std::vector<std::array<int64_t, 4>>& jobs) {
        std::vector<int64_t> windows(jobs.size());
        relucore::ops::replay_detector(jobs.empty() ? nullptr : jobs[0].data(), (int64_t)jobs.size(), windows.data());
        return windows;
    }, py::arg("jobs"), "window lengths (ns, 0: none) a fresh straggler detector opens for (end, wait, "
       "caller CPU, caller pieces) job records, all in ns (for tests)");
    m.attr("compiler") = __VERSION__;
}
