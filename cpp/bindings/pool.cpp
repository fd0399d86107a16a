// Bindings of max and average pooling and their gradients (argument contract: layers.h).
#include <stdexcept>

#include "layers.h"
#include "relucore/pool.h"

namespace relucore {
namespace bind {
namespace {

// (y, kept): kept is the int64 index of each maximum in its plane (PyTorch's indices), or with K
// uint8 its position in the window (kh * kw <= 255), what MaxPool2d keeps for backward.
template <class K>
py::tuple max_pool2d(py::handle x_h, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
    View x = need(x_h, "x", 4);
    const auto* d = dims(x);
    const ConvGeom g = geom(1, d[2], d[3], kh, kw, sh, sw, ph, pw, 1, 1);
    if (sizeof(K) == 1 && mul(kh, kw) > 255) throw std::invalid_argument("relucore internal: window over 255 positions");
    py::array y = empty(x.type, {d[0], d[1], g.OH, g.OW});
    auto kept = py::reinterpret_steal<py::array_t<K>>(new_array(py::dtype::of<K>(), {d[0], d[1], g.OH, g.OW}).release());
    K* kp = kept.mutable_data();
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        if constexpr (sizeof(K) == 1) ops::max_pool2d_pos<T>(ptr<T>(x), ptr<T>(y), kp, d[0] * d[1], g);
        else ops::max_pool2d<T>(ptr<T>(x), ptr<T>(y), kp, d[0] * d[1], g);
        return 0;
    });
    return py::make_tuple(y, kept);
}

// None if an index lies outside its plane: the Python layer then names the bad values.
py::object max_pool2d_backward(py::handle dy_h, py::array_t<int64_t, py::array::c_style> idx, i64 N, i64 C, i64 H,
                               i64 W) {
    View dy = need(dy_h, "dy", 4);
    if (idx.size() != dy.size) throw std::invalid_argument("relucore internal: indices size");
    if (N < 0 || C < 0 || H < 0 || W < 0) throw std::invalid_argument("relucore internal: input_shape");
    py::array dx = empty(dy.type, {N, C, H, W});  // NumPy refuses a shape too big for memory
    const i64 planes = mul(N, C), out_plane = planes ? dy.size / planes : 0;
    if (mul(planes, out_plane) != dy.size) throw std::invalid_argument("relucore internal: dy size");
    const i64 plane = mul(H, W);
    bool ok = true;
    by_type(dy.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ok = ops::max_pool2d_backward<T>(ptr<T>(dy), idx.data(), ptr<T>(dx), planes, out_plane, plane);
        return 0;
    });
    if (!ok) return py::none();
    return dx;
}

// None if a position lies outside the image.
py::object max_pool2d_positions_backward(py::handle dy_h, py::array_t<uint8_t, py::array::c_style> pos, i64 N, i64 C,
                                         i64 H, i64 W, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
    View dy = need(dy_h, "dy", 4);
    const ConvGeom g = geom(1, H, W, kh, kw, sh, sw, ph, pw, 1, 1);
    if (N < 0 || C < 0 || dy.size != mul(mul(N, C), mul(g.OH, g.OW))) throw std::invalid_argument("relucore internal: dy size");
    if (pos.size() != dy.size) throw std::invalid_argument("relucore internal: positions size");
    py::array dx = empty(dy.type, {N, C, H, W});
    bool ok = true;
    by_type(dy.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ok = ops::max_pool2d_pos_backward<T>(ptr<T>(dy), pos.data(), ptr<T>(dx), N * C, g);
        return 0;
    });
    if (!ok) return py::none();
    return dx;
}

py::array avg_pool2d(py::handle x_h, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, bool include_pad) {
    View x = need(x_h, "x", 4);
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
    View dy = need(dy_h, "dy", 4);
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

}  // namespace

void bind_pool(py::module_& m) {
    m.def("max_pool2d", &max_pool2d<int64_t>);
    m.def("max_pool2d_backward", &max_pool2d_backward);
    m.def("max_pool2d_positions", &max_pool2d<uint8_t>);
    m.def("max_pool2d_positions_backward", &max_pool2d_positions_backward);
    m.def("avg_pool2d", &avg_pool2d);
    m.def("avg_pool2d_backward", &avg_pool2d_backward);
}

}  // namespace bind
}  // namespace relucore
