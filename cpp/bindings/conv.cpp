// Bindings of im2col/col2im, conv2d and its gradients, and the 3x3 stride-1 algorithm setting
// (argument contract: layers.h).
#include <stdexcept>
#include <string>

#include "layers.h"
#include "relucore/conv.h"

namespace relucore {
namespace bind {
namespace {

py::array im2col(py::handle x_h, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw) {
    View x = need(x_h, "x", 4);
    const auto* d = dims(x);
    const ConvGeom g = geom(d[1], d[2], d[3], kh, kw, sh, sw, ph, pw, dh, dw);
    py::array cols = empty(x.type, {d[0], (py::ssize_t)mul(g.C, mul(kh, kw)), (py::ssize_t)mul(g.OH, g.OW)});
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::im2col<T>(ptr<T>(x), ptr<T>(cols), d[0], g);
        return 0;
    });
    return cols;
}

py::array col2im(py::handle cols_h, i64 N, i64 C, i64 H, i64 W, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh,
                 i64 dw) {
    View cols = need(cols_h, "cols", 3);
    const ConvGeom g = geom(C, H, W, kh, kw, sh, sw, ph, pw, dh, dw);
    if (N < 0 || cols.size != mul(mul(mul(N, C), mul(kh, kw)), mul(g.OH, g.OW)))
        throw std::invalid_argument("relucore internal: cols size");
    py::array x = empty(cols.type, {N, C, H, W});
    by_type(cols.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::col2im<T>(ptr<T>(cols), ptr<T>(x), N, g);
        return 0;
    });
    return x;
}

// act: a NormAct code (NORM_ACTIVATIONS), param its slope or alpha.
py::array conv2d(py::handle x_h, py::handle w_h, py::handle b_h, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw,
                 i64 groups, int act, double param) {
    if (act < 0 || act >= kNormActs) throw std::invalid_argument("relucore internal: activation code");
    View x = need(x_h, "x", 4), w = need(w_h, "weight", 4, x.type);
    const ops::Conv2dShape s = conv_shape(x, w, sh, sw, ph, pw, dh, dw, groups);
    const View b = need_bias(b_h, s.F, x.type);
    py::array y = empty(x.type, {s.N, s.F, s.g.OH, s.g.OW});
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::conv2d<T>(ptr<T>(x), ptr<T>(w), b.a ? ptr<T>(b) : nullptr, ptr<T>(y), s, act, (T)param);
        return 0;
    });
    return y;
}

// conv2d without activation, and y's per-plane sums for a batch norm's statistics where the forward
// gives them (ops::conv2d_moments): (y, sums (2, N*F) float64 or None).
py::tuple conv2d_moments(py::handle x_h, py::handle w_h, py::handle b_h, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh,
                         i64 dw, i64 groups) {
    View x = need(x_h, "x", 4), w = need(w_h, "weight", 4, x.type);
    const ops::Conv2dShape s = conv_shape(x, w, sh, sw, ph, pw, dh, dw, groups);
    const View b = need_bias(b_h, s.F, x.type);
    py::array y = empty(x.type, {s.N, s.F, s.g.OH, s.g.OW});
    py::array_t<double> sums({(py::ssize_t)2, (py::ssize_t)mul(s.N, s.F)});
    double* ps = sums.mutable_data();
    const bool summed = by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        return ops::conv2d_moments<T>(ptr<T>(x), ptr<T>(w), b.a ? ptr<T>(b) : nullptr, ptr<T>(y), s, ps) ? 1 : 0;
    });
    return py::make_tuple(y, summed ? py::object(sums) : py::none());
}

// Gradients not asked for are None and not computed.
py::tuple conv2d_backward(py::handle dy_h, py::handle x_h, py::handle w_h, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh,
                          i64 dw, i64 groups, bool want_dx, bool want_dw, bool want_db) {
    View dy = need(dy_h, "dy", 4), x = need(x_h, "x", 4, dy.type), w = need(w_h, "weight", 4, dy.type);
    const ops::Conv2dShape s = conv_shape(x, w, sh, sw, ph, pw, dh, dw, groups);
    if (dy.size != mul(mul(s.N, s.F), mul(s.g.OH, s.g.OW))) throw std::invalid_argument("relucore internal: dy size");
    std::vector<py::ssize_t> wshape(dims(w), dims(w) + 4);
    py::array dx, dwt, db;  // empty placeholders for the gradients not asked for
    if (want_dx) dx = empty(dy.type, {s.N, s.C, s.H, s.W});
    if (want_dw) dwt = empty(dy.type, wshape);
    if (want_db) db = empty(dy.type, {s.F});
    by_type(dy.type, [&](auto t) {
        using T = decltype(t);
        T *pdx = want_dx ? ptr<T>(dx) : nullptr, *pdw = want_dw ? ptr<T>(dwt) : nullptr;
        T* pdb = want_db ? ptr<T>(db) : nullptr;
        py::gil_scoped_release nogil;
        ops::conv2d_backward<T>(ptr<T>(dy), ptr<T>(x), ptr<T>(w), pdx, pdw, pdb, s);
        return 0;
    });
    const auto result = [](py::array& a, bool want) { return want ? py::object(a) : py::object(py::none()); };
    return py::make_tuple(result(dx, want_dx), result(dwt, want_dw), result(db, want_db));
}

}  // namespace

void bind_conv(py::module_& m) {
    m.def("set_conv_algo", [](const std::string& name) {
        if (!ops::set_conv_algo(name))
            throw py::value_error("conv algorithm must be 'auto', 'gemm', 'winograd' or 'fft', got '" + name + "'");
    });
    m.def("get_conv_algo", &ops::conv_algo, "the convolution algorithm setting: 'auto', 'gemm', 'winograd' or 'fft'");
    m.def("im2col", &im2col);
    m.def("col2im", &col2im);
    m.def("conv2d", &conv2d);
    m.def("conv2d_moments", &conv2d_moments);
    m.def("conv2d_backward", &conv2d_backward);
}

}  // namespace bind
}  // namespace relucore
