// relucore._core: the only translation unit that sees pybind11.
//
// Each entry point is a fast path: it accepts only arrays that need no preparation (exact ndarray,
// float32/float64 in native byte order, C-contiguous, aligned; `out` writeable and either the input
// itself or disjoint from every input) and returns None for anything else. The Python layer then
// validates (raising the documented errors) and prepares arguments, so error messages live in one
// place (relucore/_checks.py) and the common call costs one C++ hop.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "relucore/dispatch.h"
#include "relucore/ops.h"

namespace py = pybind11;
using relucore::i64;
using relucore::ops::Act;

namespace {

constexpr int kF32 = 11, kF64 = 12;  // NPY_FLOAT, NPY_DOUBLE

struct View {
    PyObject* a = nullptr;
    int type = 0;  // kF32, kF64 or 0
    char* data = nullptr;
    i64 size = 0, nbytes = 0;
};

// The array behind `h` if it can be used as is, else nullopt-like (a.a == nullptr).
View plain(py::handle h, bool writeable = false) {
    View v;
    auto& api = py::detail::npy_api::get();
    if (Py_TYPE(h.ptr()) != api.PyArray_Type_) return v;
    auto* p = py::detail::array_proxy(h.ptr());
    auto* d = py::detail::array_descriptor_proxy(p->descr);
    if (d->type_num != kF32 && d->type_num != kF64) return v;
    if (d->byteorder == '>') return v;
    const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                     (writeable ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0);
    if ((p->flags & need) != need) return v;
    v.a = h.ptr();
    v.type = d->type_num;
    v.data = p->data;
    v.size = 1;
    for (int i = 0; i < p->nd; ++i) v.size *= (i64)p->dimensions[i];
    v.nbytes = v.size * (v.type == kF32 ? 4 : 8);
    return v;
}

int ndim(const View& v) { return py::detail::array_proxy(v.a)->nd; }
const py::ssize_t* dims(const View& v) { return py::detail::array_proxy(v.a)->dimensions; }

bool same_shape(const View& a, const View& b) {
    if (ndim(a) != ndim(b)) return false;
    for (int i = 0; i < ndim(a); ++i)
        if (dims(a)[i] != dims(b)[i]) return false;
    return true;
}

bool disjoint(const View& a, const View& b) {
    return a.nbytes == 0 || b.nbytes == 0 || a.data + a.nbytes <= b.data || b.data + b.nbytes <= a.data;
}

// `out` may be the same memory as an input (elementwise in place) or disjoint from all of them.
bool out_ok(const View& out, const View& like, std::initializer_list<const View*> inputs) {
    if (!out.a || out.type != like.type || !same_shape(out, like)) return false;
    for (const View* in : inputs)
        if (!(in->data == out.data && in->nbytes == out.nbytes) && !disjoint(*in, out)) return false;
    return true;
}

py::array new_like(const View& v) {
    std::vector<py::ssize_t> shape(dims(v), dims(v) + ndim(v));
    return v.type == kF32 ? py::array(py::dtype::of<float>(), shape) : py::array(py::dtype::of<double>(), shape);
}

// (outer, channels, inner) with channels on axis 1; 0-d and 1-d arrays are one channel.
void geometry(const View& v, i64& outer, i64& channels, i64& inner) {
    const int nd = ndim(v);
    outer = nd >= 2 ? (i64)dims(v)[0] : 1;
    channels = nd >= 2 ? (i64)dims(v)[1] : 1;
    inner = 1;
    for (int i = 2; i < nd; ++i) inner *= (i64)dims(v)[i];
    if (nd < 2) inner = v.size;
}

py::object forward(int act, py::handle x_h, double param, py::handle out_h, bool want_mask, bool want_counts) {
    View x = plain(x_h);
    if (!x.a) return py::none();
    py::object out;
    View out_v;
    if (out_h.is_none()) {
        out = new_like(x);
        out_v = plain(out, true);
    } else {
        out_v = plain(out_h, true);
        if (!out_ok(out_v, x, {&x})) return py::none();
        out = py::reinterpret_borrow<py::object>(out_h);
    }
    i64 outer, channels, inner;
    geometry(x, outer, channels, inner);
    py::array_t<uint8_t> mask;
    py::array_t<int64_t> counts;
    uint8_t* mp = nullptr;
    int64_t* cp = nullptr;
    if (want_mask) {
        mask = py::array_t<uint8_t>((py::ssize_t)((x.size + 7) / 8));
        mp = mask.mutable_data();
        if (x.size) mp[(x.size - 1) / 8] = 0;  // unused high bits stay 0
    }
    if (want_counts) {
        counts = ndim(x) >= 2 ? py::array_t<int64_t>((py::ssize_t)channels) : py::array_t<int64_t>(std::vector<py::ssize_t>{});
        cp = counts.mutable_data();
        for (i64 c = 0; c < (ndim(x) >= 2 ? channels : 1); ++c) cp[c] = 0;
    }
    {
        py::gil_scoped_release nogil;
        if (x.type == kF32)
            relucore::ops::forward<float>((Act)act, (const float*)x.data, (float*)out_v.data, x.size, (float)param, mp,
                                          cp, channels, inner);
        else
            relucore::ops::forward<double>((Act)act, (const double*)x.data, (double*)out_v.data, x.size, param, mp, cp,
                                           channels, inner);
    }
    if (!want_mask && !want_counts) return out;
    if (want_mask && want_counts) return py::make_tuple(out, mask, counts);
    if (want_mask) return py::make_tuple(out, mask);
    return py::make_tuple(out, counts);
}

py::object backward(int act, py::handle dy_h, py::handle s_h, double param, py::handle out_h) {
    View dy = plain(dy_h), s = plain(s_h);
    if (!dy.a || !s.a || dy.type != s.type || !same_shape(dy, s)) return py::none();
    py::object out;
    View out_v;
    if (out_h.is_none()) {
        out = new_like(dy);
        out_v = plain(out, true);
    } else {
        out_v = plain(out_h, true);
        if (!out_ok(out_v, dy, {&dy, &s})) return py::none();
        out = py::reinterpret_borrow<py::object>(out_h);
    }
    {
        py::gil_scoped_release nogil;
        if (dy.type == kF32)
            relucore::ops::backward<float>((Act)act, (const float*)dy.data, (const float*)s.data, (float*)out_v.data,
                                           dy.size, (float)param);
        else
            relucore::ops::backward<double>((Act)act, (const double*)dy.data, (const double*)s.data,
                                            (double*)out_v.data, dy.size, param);
    }
    return out;
}

py::object backward_mask(int act, py::handle dy_h, py::handle mask_h, double param, py::handle out_h) {
    View dy = plain(dy_h);
    if (!dy.a) return py::none();
    auto& api = py::detail::npy_api::get();
    if (Py_TYPE(mask_h.ptr()) != api.PyArray_Type_) return py::none();
    auto* mp = py::detail::array_proxy(mask_h.ptr());
    const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;
    if (py::detail::array_descriptor_proxy(mp->descr)->type_num != 2 /* NPY_UBYTE */ || mp->nd != 1 ||
        (mp->flags & need) != need || (i64)mp->dimensions[0] != (dy.size + 7) / 8)
        return py::none();
    View m;  // for the overlap test only
    m.data = mp->data;
    m.nbytes = (i64)mp->dimensions[0];
    py::object out;
    View out_v;
    if (out_h.is_none()) {
        out = new_like(dy);
        out_v = plain(out, true);
    } else {
        out_v = plain(out_h, true);
        if (!out_ok(out_v, dy, {&dy}) || !disjoint(out_v, m)) return py::none();
        out = py::reinterpret_borrow<py::object>(out_h);
    }
    {
        py::gil_scoped_release nogil;
        const uint8_t* bits = (const uint8_t*)m.data;
        if (dy.type == kF32)
            relucore::ops::backward_mask<float>((Act)act, (const float*)dy.data, bits, (float*)out_v.data, dy.size,
                                                (float)param);
        else
            relucore::ops::backward_mask<double>((Act)act, (const double*)dy.data, bits, (double*)out_v.data, dy.size,
                                                 param);
    }
    return out;
}

// weight: 1-D, same dtype, `channels` or 1 elements (1 = shared by every channel).
bool weight_ok(const View& w, const View& x, i64 channels) {
    return w.a && w.type == x.type && ndim(w) == 1 && (w.size == channels || w.size == 1);
}

py::object prelu(py::handle x_h, py::handle w_h, py::handle out_h) {
    View x = plain(x_h), w = plain(w_h);
    i64 outer, channels, inner;
    if (!x.a) return py::none();
    geometry(x, outer, channels, inner);
    if (!weight_ok(w, x, channels)) return py::none();
    if (w.size == 1) outer = 1, channels = 1, inner = x.size;
    py::object out;
    View out_v;
    if (out_h.is_none()) {
        out = new_like(x);
        out_v = plain(out, true);
    } else {
        out_v = plain(out_h, true);
        if (!out_ok(out_v, x, {&x}) || !disjoint(out_v, w)) return py::none();
        out = py::reinterpret_borrow<py::object>(out_h);
    }
    {
        py::gil_scoped_release nogil;
        if (x.type == kF32)
            relucore::ops::prelu_forward<float>((const float*)x.data, (const float*)w.data, (float*)out_v.data, outer,
                                                channels, inner);
        else
            relucore::ops::prelu_forward<double>((const double*)x.data, (const double*)w.data, (double*)out_v.data,
                                                 outer, channels, inner);
    }
    return out;
}

py::object prelu_backward(py::handle dy_h, py::handle x_h, py::handle w_h) {
    View dy = plain(dy_h), x = plain(x_h), w = plain(w_h);
    if (!dy.a || !x.a || dy.type != x.type || !same_shape(dy, x)) return py::none();
    i64 outer, channels, inner;
    geometry(x, outer, channels, inner);
    if (!weight_ok(w, x, channels)) return py::none();
    if (w.size == 1) outer = 1, channels = 1, inner = x.size;
    py::array dx = new_like(x), dw = new_like(w);
    View dx_v = plain(dx, true), dw_v = plain(dw, true);
    {
        py::gil_scoped_release nogil;
        if (x.type == kF32)
            relucore::ops::prelu_backward<float>((const float*)dy.data, (const float*)x.data, (const float*)w.data,
                                                 (float*)dx_v.data, (float*)dw_v.data, outer, channels, inner);
        else
            relucore::ops::prelu_backward<double>((const double*)dy.data, (const double*)x.data,
                                                  (const double*)w.data, (double*)dx_v.data, (double*)dw_v.data,
                                                  outer, channels, inner);
    }
    return py::make_tuple(dx, dw);
}

py::dict tiles() {
    py::dict d;
    const relucore::KernelTable& k = relucore::active_kernels();
    d["float32"] = k.f32.tile;
    d["float64"] = k.f64.tile;
    return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "relucore native kernels (fast paths; see relucore.functional for the public API)";
    py::enum_<Act>(m, "Act")
        .value("relu", Act::relu)
        .value("leaky_relu", Act::leaky_relu)
        .value("elu", Act::elu)
        .value("sigmoid", Act::sigmoid)
        .value("tanh", Act::tanh);
    m.attr("RELU") = (int)Act::relu;
    m.attr("LEAKY_RELU") = (int)Act::leaky_relu;
    m.attr("ELU") = (int)Act::elu;
    m.attr("SIGMOID") = (int)Act::sigmoid;
    m.attr("TANH") = (int)Act::tanh;
    m.def("forward", &forward, py::arg("act"), py::arg("x"), py::arg("param"), py::arg("out"), py::arg("want_mask"),
          py::arg("want_counts"));
    m.def("backward", &backward, py::arg("act"), py::arg("dy"), py::arg("s"), py::arg("param"), py::arg("out"));
    m.def("backward_mask", &backward_mask, py::arg("act"), py::arg("dy"), py::arg("mask"), py::arg("param"),
          py::arg("out"));
    m.def("prelu", &prelu, py::arg("x"), py::arg("weight"), py::arg("out"));
    m.def("prelu_backward", &prelu_backward, py::arg("dy"), py::arg("x"), py::arg("weight"));
    m.def("get_isa", &relucore::active_isa);
    m.def("set_isa", [](const std::string& name) {
        if (!relucore::set_isa(name)) throw py::value_error("ISA '" + name + "' is not usable here");
    });
    m.def("compiled_isas", &relucore::compiled_isas);
    m.def("usable_isas", &relucore::usable_isas);
    m.def("tiles", &tiles, "elements per main-loop iteration of the active ISA's kernels, by dtype");
    m.def("_set_stream_threshold", &relucore::ops::set_stream_threshold,
          "bytes above which outputs bypass the cache (-1: last-level cache size); for benchmarks");
    m.def("get_num_threads", &relucore::ops::get_num_threads);
    m.def("set_num_threads", &relucore::ops::set_num_threads);
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
    m.attr("compiler") = __VERSION__;
}
