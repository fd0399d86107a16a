// Shared by the layer bindings (conv.cpp, pool.cpp, linear.cpp, norm.cpp). The Python layer
// (relucore.conv) validates and parses every argument (so errors have one source) and passes
// C-contiguous arrays of one dtype and plain ints; here they are only checked for memory safety.
#pragma once
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "relucore/conv.h"

namespace relucore {
namespace bind {

// `h` as an array the kernels can use as is, with `nd` dimensions (the shape is read by index).
inline View need(py::handle h, const char* name, int nd, int type = 0) {
    View v = plain(h);
    if (!v.a || (type && v.type != type) || v.nd != nd)
        throw std::invalid_argument(std::string("relucore internal: ") + name + " must be a C-contiguous " +
                                    std::to_string(nd) + "-d float32/float64 array of the call's dtype");
    return v;
}

// An optional bias: None, or n elements of the call's dtype.
inline View need_bias(py::handle h, i64 n, int type) {
    View b;
    if (h.is_none()) return b;
    b = need(h, "bias", 1, type);
    if (b.size != n) throw std::invalid_argument("relucore internal: bias size");
    return b;
}

inline py::array empty(int type, std::vector<py::ssize_t> shape) {
    return new_array(type == kF32 ? py::dtype::of<float>() : py::dtype::of<double>(), shape);
}

template <class T> T* ptr(const View& v) { return reinterpret_cast<T*>(v.data); }
template <class T> T* ptr(py::array& a) { return reinterpret_cast<T*>(a.mutable_data()); }

// a * b, or invalid_argument if it overflows int64 (sizes come from the caller, not from memory).
inline i64 mul(i64 a, i64 b) {
    i64 r;
    if (__builtin_mul_overflow(a, b, &r)) throw std::invalid_argument("relucore internal: size overflows int64");
    return r;
}

// Sizes and paddings within [0, 2**61], so that H + 2*ph cannot overflow; the span is checked.
inline ConvGeom geom(i64 C, i64 H, i64 W, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw) {
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

// x (N, C, H, W) and w (F, C/groups, kh, kw) as a convolution's shape.
inline ops::Conv2dShape conv_shape(const View& x, const View& w, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw,
                                   i64 groups) {
    const auto* d = dims(x);
    const auto* wd = dims(w);
    if (groups < 1) throw std::invalid_argument("relucore internal: groups");
    ops::Conv2dShape s;
    s.N = d[0], s.C = d[1], s.H = d[2], s.W = d[3], s.F = wd[0], s.groups = groups;
    s.g = geom(s.C / groups, s.H, s.W, wd[2], wd[3], sh, sw, ph, pw, dh, dw);
    if (wd[1] != s.C / groups || s.C % groups || s.F % groups)
        throw std::invalid_argument("relucore internal: conv2d shapes");
    return s;
}

// Calls f(T()) with T = float or double per the array type (f: a generic lambda).
template <class F> auto by_type(int type, F&& f) {
    return type == kF32 ? f((float)0) : f((double)0);
}

}  // namespace bind
}  // namespace relucore
