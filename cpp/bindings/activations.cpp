// Bindings of the elementwise activations (fast paths; see module.cpp for the contract).
#include <string>

#include "common.h"
#include "relucore/ops.h"

namespace relucore {
namespace bind {
namespace {

using ops::Act;

constexpr bool kHasMask[kActs] = {
#define RC_ACTIVATION(name, Op, from, cost, mask, ...) mask != 0,
#include "relucore/activations.inc"
#undef RC_ACTIVATION
};

Act act_of(int act) {
    if (act < 0 || act >= kActs) throw py::value_error("unknown activation code " + std::to_string(act));
    return static_cast<Act>(act);
}

// output_array, with `also` (a non-elementwise input) disjoint from the output.
bool take_out(py::handle out_h, const View& like, std::initializer_list<const View*> inputs, const View* also,
              py::object& out, View& out_v) {
    return output_array(out_h, like, inputs, out, out_v) && (!also || out_h.is_none() || disjoint(out_v, *also));
}

py::object forward(int act_code, py::handle x_h, double param, py::handle out_h, bool want_mask,
                   bool want_counts) {
    const Act act = act_of(act_code);
    View x = plain(x_h);
    if (!x.a) return py::none();
    py::object out;
    View out_v;
    if (!take_out(out_h, x, {&x}, nullptr, out, out_v)) return py::none();
    i64 outer, channels, inner;
    geometry(x, outer, channels, inner);
    py::array_t<uint8_t> mask;
    py::array_t<int64_t> counts;
    uint8_t* mp = nullptr;
    int64_t* cp = nullptr;
    if (want_mask) {
        mask = py::reinterpret_steal<py::array_t<uint8_t>>(
            new_array(py::dtype::of<uint8_t>(), {(py::ssize_t)((x.size + 7) / 8)}).release());
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
            ops::forward<float>(act, (const float*)x.data, (float*)out_v.data, x.size, (float)param, mp,
                                          cp, channels, inner);
        else
            ops::forward<double>(act, (const double*)x.data, (double*)out_v.data, x.size, param, mp, cp,
                                           channels, inner);
    }
    if (!want_mask && !want_counts) return out;
    if (want_mask && want_counts) return py::make_tuple(out, mask, counts);
    if (want_mask) return py::make_tuple(out, mask);
    return py::make_tuple(out, counts);
}

py::object backward(int act_code, py::handle dy_h, py::handle s_h, double param, py::handle out_h) {
    const Act act = act_of(act_code);
    View dy = plain(dy_h), s = plain(s_h);
    if (!dy.a || !s.a || dy.type != s.type || !same_shape(dy, s)) return py::none();
    py::object out;
    View out_v;
    if (!take_out(out_h, dy, {&dy, &s}, nullptr, out, out_v)) return py::none();
    {
        py::gil_scoped_release nogil;
        if (dy.type == kF32)
            ops::backward<float>(act, (const float*)dy.data, (const float*)s.data, (float*)out_v.data,
                                           dy.size, (float)param);
        else
            ops::backward<double>(act, (const double*)dy.data, (const double*)s.data,
                                            (double*)out_v.data, dy.size, param);
    }
    return out;
}

py::object backward_mask(int act_code, py::handle dy_h, py::handle mask_h, double param, py::handle out_h) {
    const Act act = act_of(act_code);
    if (!kHasMask[(int)act]) return py::none();
    View dy = plain(dy_h);
    if (!dy.a) return py::none();
    if (Py_TYPE(mask_h.ptr()) != ndarray_type()) return py::none();
    const auto mask = py::reinterpret_borrow<py::array>(mask_h);
    if (mask.dtype().num() != 2 /* NPY_UBYTE */ || mask.ndim() != 1 || (mask.flags() & kCContiguous) == 0 ||
        (i64)mask.shape(0) != (dy.size + 7) / 8)
        return py::none();
    View m;  // for the overlap test only
    m.data = static_cast<char*>(const_cast<void*>(mask.data()));
    m.nbytes = (i64)mask.shape(0);
    py::object out;
    View out_v;
    if (!take_out(out_h, dy, {&dy}, &m, out, out_v)) return py::none();
    {
        py::gil_scoped_release nogil;
        const uint8_t* bits = (const uint8_t*)m.data;
        if (dy.type == kF32)
            ops::backward_mask<float>(act, (const float*)dy.data, bits, (float*)out_v.data, dy.size,
                                                (float)param);
        else
            ops::backward_mask<double>(act, (const double*)dy.data, bits, (double*)out_v.data, dy.size,
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
    if (!take_out(out_h, x, {&x}, &w, out, out_v)) return py::none();
    {
        py::gil_scoped_release nogil;
        if (x.type == kF32)
            ops::prelu_forward<float>((const float*)x.data, (const float*)w.data, (float*)out_v.data, outer,
                                                channels, inner);
        else
            ops::prelu_forward<double>((const double*)x.data, (const double*)w.data, (double*)out_v.data,
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
            ops::prelu_backward<float>((const float*)dy.data, (const float*)x.data, (const float*)w.data,
                                                 (float*)dx_v.data, (float*)dw_v.data, outer, channels, inner);
        else
            ops::prelu_backward<double>((const double*)dy.data, (const double*)x.data,
                                                  (const double*)w.data, (double*)dx_v.data, (double*)dw_v.data,
                                                  outer, channels, inner);
    }
    return py::make_tuple(dx, dw);
}

}  // namespace

void bind_activations(py::module_& m) {
    py::dict acts;  // name -> the `act` code of forward/backward/backward_mask
#define RC_ACTIVATION(name, ...) acts[#name] = (int)Act::name;
#include "relucore/activations.inc"
#undef RC_ACTIVATION
    m.attr("ACTIVATIONS") = acts;
    m.def("forward", &forward, py::arg("act"), py::arg("x"), py::arg("param"), py::arg("out"), py::arg("want_mask"),
          py::arg("want_counts"));
    m.def("backward", &backward, py::arg("act"), py::arg("dy"), py::arg("s"), py::arg("param"), py::arg("out"));
    m.def("backward_mask", &backward_mask, py::arg("act"), py::arg("dy"), py::arg("mask"), py::arg("param"),
          py::arg("out"));
    m.def("prelu", &prelu, py::arg("x"), py::arg("weight"), py::arg("out"));
    m.def("prelu_backward", &prelu_backward, py::arg("dy"), py::arg("x"), py::arg("weight"));
}

}  // namespace bind
}  // namespace relucore
