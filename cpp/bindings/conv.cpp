// Bindings of im2col/col2im, conv2d, pooling and linear. The Python layer (relucore.functional)
// validates and parses every argument (so errors have one source) and passes C-contiguous arrays of
// one dtype and plain ints; here they are only checked for memory safety.
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "common.h"
#include "ops/winograd.h"
#include "relucore/conv_ops.h"

namespace relucore {
namespace bind {
namespace {

View need(py::handle h, const char* name, int type = 0, bool writeable = false) {
    View v = plain(h, writeable);
    if (!v.a || (type && v.type != type))
        throw std::invalid_argument(std::string("relucore internal: ") + name +
                                    " must be a C-contiguous float32/float64 array of the call's dtype");
    return v;
}

py::array empty(int type, std::vector<py::ssize_t> shape) {
    return type == kF32 ? py::array(py::dtype::of<float>(), shape) : py::array(py::dtype::of<double>(), shape);
}

template <class T> T* ptr(const View& v) { return reinterpret_cast<T*>(v.data); }
template <class T> T* ptr(py::array& a) { return reinterpret_cast<T*>(a.mutable_data()); }

// a * b, or invalid_argument if it overflows int64 (sizes come from the caller, not from memory).
i64 mul(i64 a, i64 b) {
    i64 r;
    if (__builtin_mul_overflow(a, b, &r)) throw std::invalid_argument("relucore internal: size overflows int64");
    return r;
}

// Sizes and paddings within [0, 2**61], so that H + 2*ph cannot overflow; the span is checked.
ConvGeom geom(i64 C, i64 H, i64 W, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw) {
    const i64 top = i64(1) << 61;
    for (i64 v : {kh, kw, sh, sw, dh, dw})
        if (v < 1) throw std::invalid_argument("relucore internal: kernel, stride or dilation out of range");
    for (i64 v : {C, H, W, ph, pw})
        if (v < 0 || v > top) throw std::invalid_argument("relucore internal: size or padding out of range");
    ConvGeom g{C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, 0, 0};
    g.OH = (H + 2 * ph - mul(dh, kh - 1) - 1) / sh + 1;
    g.OW = (W + 2 * pw - mul(dw, kw - 1) - 1) / sw + 1;
    if (g.OH < 1 || g.OW < 1) throw std::invalid_argument("relucore internal: empty convolution output");
    return g;
}

// Calls f.template operator()<T>() with T = float or double per the array type.
template <class F> auto by_type(int type, F&& f) {
    return type == kF32 ? f((float)0) : f((double)0);
}

py::array im2col(py::handle x_h, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw) {
    View x = need(x_h, "x");
    const auto* d = dims(x);
    const ConvGeom g = geom(d[1], d[2], d[3], kh, kw, sh, sw, ph, pw, dh, dw);
    py::array cols = empty(x.type, {d[0], (py::ssize_t)(g.C * kh * kw), (py::ssize_t)(g.OH * g.OW)});
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
    View cols = need(cols_h, "cols");
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

ops::Conv2dShape conv_shape(const View& x, const View& w, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw, i64 groups) {
    const auto* d = dims(x);
    const auto* wd = dims(w);
    ops::Conv2dShape s;
    s.N = d[0], s.C = d[1], s.H = d[2], s.W = d[3], s.F = wd[0], s.groups = groups;
    s.g = geom(s.C / groups, s.H, s.W, wd[2], wd[3], sh, sw, ph, pw, dh, dw);
    if (wd[1] != s.C / groups || s.C % groups || s.F % groups)
        throw std::invalid_argument("relucore internal: conv2d shapes");
    return s;
}

py::array conv2d(py::handle x_h, py::handle w_h, py::handle b_h, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw,
                 i64 groups) {
    View x = need(x_h, "x"), w = need(w_h, "weight", x.type);
    View b;
    if (!b_h.is_none()) b = need(b_h, "bias", x.type);
    const ops::Conv2dShape s = conv_shape(x, w, sh, sw, ph, pw, dh, dw, groups);
    py::array y = empty(x.type, {s.N, s.F, s.g.OH, s.g.OW});
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::conv2d<T>(ptr<T>(x), ptr<T>(w), b.a ? ptr<T>(b) : nullptr, ptr<T>(y), s);
        return 0;
    });
    return y;
}

py::tuple conv2d_backward(py::handle dy_h, py::handle x_h, py::handle w_h, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh,
                          i64 dw, i64 groups) {
    View dy = need(dy_h, "dy"), x = need(x_h, "x", dy.type), w = need(w_h, "weight", dy.type);
    const ops::Conv2dShape s = conv_shape(x, w, sh, sw, ph, pw, dh, dw, groups);
    if (dy.size != mul(mul(s.N, s.F), mul(s.g.OH, s.g.OW))) throw std::invalid_argument("relucore internal: dy size");
    std::vector<py::ssize_t> wshape(dims(w), dims(w) + 4);
    py::array dx = empty(dy.type, {s.N, s.C, s.H, s.W}), dwt = empty(dy.type, wshape), db = empty(dy.type, {s.F});
    by_type(dy.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::conv2d_backward<T>(ptr<T>(dy), ptr<T>(x), ptr<T>(w), ptr<T>(dx), ptr<T>(dwt), ptr<T>(db), s);
        return 0;
    });
    return py::make_tuple(dx, dwt, db);
}

py::tuple max_pool2d(py::handle x_h, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
    View x = need(x_h, "x");
    const auto* d = dims(x);
    const ConvGeom g = geom(1, d[2], d[3], kh, kw, sh, sw, ph, pw, 1, 1);
    py::array y = empty(x.type, {d[0], d[1], g.OH, g.OW});
    py::array_t<int64_t> idx(std::vector<py::ssize_t>{d[0], d[1], g.OH, g.OW});
    int64_t* ip = idx.mutable_data();
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::max_pool2d<T>(ptr<T>(x), ptr<T>(y), ip, d[0] * d[1], g);
        return 0;
    });
    return py::make_tuple(y, idx);
}

// None if an index lies outside its plane: the Python layer then names the bad values.
py::object max_pool2d_backward(py::handle dy_h, py::array_t<int64_t, py::array::c_style> idx, i64 N, i64 C, i64 H,
                               i64 W) {
    View dy = need(dy_h, "dy");
    if (idx.size() != dy.size) throw std::invalid_argument("relucore internal: indices size");
    if (N < 0 || C < 0 || H < 0 || W < 0) throw std::invalid_argument("relucore internal: input_shape");
    py::array dx = empty(dy.type, {N, C, H, W});  // NumPy refuses a shape too big for memory
    const i64 planes = N * C, out_plane = planes ? dy.size / planes : 0;
    bool ok = true;
    by_type(dy.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ok = ops::max_pool2d_backward<T>(ptr<T>(dy), idx.data(), ptr<T>(dx), planes, out_plane, H * W);
        return 0;
    });
    if (!ok) return py::none();
    return dx;
}

py::array avg_pool2d(py::handle x_h, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, bool include_pad) {
    View x = need(x_h, "x");
    const auto* d = dims(x);
    const ConvGeom g = geom(1, d[2], d[3], kh, kw, sh, sw, ph, pw, 1, 1);
    py::array y = empty(x.type, {d[0], d[1], g.OH, g.OW});
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::avg_pool2d<T>(ptr<T>(x), ptr<T>(y), d[0] * d[1], g, include_pad);
        return 0;
    });
    return y;
}

py::array avg_pool2d_backward(py::handle dy_h, i64 N, i64 C, i64 H, i64 W, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph,
                              i64 pw, bool include_pad) {
    View dy = need(dy_h, "dy");
    const ConvGeom g = geom(1, H, W, kh, kw, sh, sw, ph, pw, 1, 1);
    if (N < 0 || dy.size != mul(mul(N, C), mul(g.OH, g.OW))) throw std::invalid_argument("relucore internal: dy size");
    py::array dx = empty(dy.type, {N, C, H, W});
    by_type(dy.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::avg_pool2d_backward<T>(ptr<T>(dy), ptr<T>(dx), N * C, g, include_pad);
        return 0;
    });
    return dx;
}

py::array linear(py::handle x_h, py::handle w_h, py::handle b_h) {
    View x = need(x_h, "x"), w = need(w_h, "weight", x.type);
    View b;
    if (!b_h.is_none()) b = need(b_h, "bias", x.type);
    const i64 M = dims(x)[0], in = dims(x)[1], out = dims(w)[0];
    if (dims(w)[1] != in) throw std::invalid_argument("relucore internal: linear shapes");
    py::array y = empty(x.type, {M, out});
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::linear<T>(ptr<T>(x), ptr<T>(w), b.a ? ptr<T>(b) : nullptr, ptr<T>(y), M, in, out);
        return 0;
    });
    return y;
}

py::tuple linear_backward(py::handle dy_h, py::handle x_h, py::handle w_h) {
    View dy = need(dy_h, "dy"), x = need(x_h, "x", dy.type), w = need(w_h, "weight", dy.type);
    const i64 M = dims(x)[0], in = dims(x)[1], out = dims(w)[0];
    if (dims(dy)[0] != M || dims(dy)[1] != out) throw std::invalid_argument("relucore internal: linear shapes");
    py::array dx = empty(dy.type, {M, in}), dw = empty(dy.type, {out, in}), db = empty(dy.type, {out});
    by_type(dy.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::linear_backward<T>(ptr<T>(dy), ptr<T>(x), ptr<T>(w), ptr<T>(dx), ptr<T>(dw), ptr<T>(db), M, in, out);
        return 0;
    });
    return py::make_tuple(dx, dw, db);
}

}  // namespace

void bind_conv(py::module_& m) {
    m.def("set_conv_algo", [](const std::string& name) {
        if (!ops::set_conv_algo(name))
            throw py::value_error("conv algorithm must be 'auto', 'gemm' or 'winograd', got '" + name + "'");
    });
    m.def("get_conv_algo", &ops::conv_algo, "the 3x3 stride-1 algorithm setting: 'auto', 'gemm' or 'winograd'");
    m.def("im2col", &im2col);
    m.def("col2im", &col2im);
    m.def("conv2d", &conv2d);
    m.def("conv2d_backward", &conv2d_backward);
    m.def("max_pool2d", &max_pool2d);
    m.def("max_pool2d_backward", &max_pool2d_backward);
    m.def("avg_pool2d", &avg_pool2d);
    m.def("avg_pool2d_backward", &avg_pool2d_backward);
    m.def("linear", &linear);
    m.def("linear_backward", &linear_backward);
}

}  // namespace bind
}  // namespace relucore
