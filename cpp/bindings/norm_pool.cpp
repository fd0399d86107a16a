// Bindings of batch norm + activation + max pooling (what nn.Sequential runs for BatchNorm2d ->
// activation -> MaxPool2d in training). The Python layer validates every argument and passes
// C-contiguous arrays of one dtype; here they are checked for memory safety only.
#include <stdexcept>

#include "layers.h"
#include "relucore/norm.h"

namespace relucore {
namespace bind {
namespace {

// A (C,) vector of the call's dtype, or null for None.
template <class T> T* channel_vec(py::handle h, const char* name, i64 C, int type, bool writeable = false) {
    if (h.is_none()) return nullptr;
    View v = plain(h, writeable);
    if (!v.a || v.type != type || v.nd != 1 || v.size != C)
        throw std::invalid_argument(std::string("relucore internal: ") + name + " must be a (C,) array of the call's dtype");
    return reinterpret_cast<T*>(v.data);
}

ConvGeom pool_geom(const py::ssize_t* d, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
    const ConvGeom g = geom(1, d[2], d[3], kh, kw, sh, sw, ph, pw, 1, 1);
    if (mul(kh, kw) > 255) throw std::invalid_argument("relucore internal: window over 255 positions");
    return g;
}

// (y, positions, save_mean, save_invstd)
py::tuple batch_norm_max_pool2d(py::handle x_h, py::handle rm_h, py::handle rv_h, py::handle w_h, py::handle b_h,
                                bool training, double momentum, double eps, int act, double param, i64 kh, i64 kw,
                                i64 sh, i64 sw, i64 ph, i64 pw) {
    if (act < 0 || act >= kNormActs) throw std::invalid_argument("relucore internal: batch norm activation code");
    View x = need(x_h, "x", 4);
    const auto* d = dims(x);
    const ConvGeom g = pool_geom(d, kh, kw, sh, sw, ph, pw);
    const ops::BatchNormShape shape{d[0], d[1], mul(d[2], d[3])};
    if (training && mul(shape.N, shape.S) <= 1) throw std::invalid_argument("relucore internal: one value per channel");
    py::array y = empty(x.type, {d[0], d[1], g.OH, g.OW});
    auto pos = py::reinterpret_steal<py::array_t<uint8_t>>(
        new_array(py::dtype::of<uint8_t>(), {d[0], d[1], g.OH, g.OW}).release());
    py::array mean = empty(x.type, {d[1]}), invstd = empty(x.type, {d[1]});
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        T* rm = channel_vec<T>(rm_h, "running_mean", shape.C, x.type, true);
        T* rv = channel_vec<T>(rv_h, "running_var", shape.C, x.type, true);
        const T* w = channel_vec<T>(w_h, "weight", shape.C, x.type);
        const T* b = channel_vec<T>(b_h, "bias", shape.C, x.type);
        if (!training && (!rm || !rv)) throw std::invalid_argument("relucore internal: eval needs running statistics");
        uint8_t* pp = pos.mutable_data();
        py::gil_scoped_release nogil;
        ops::batch_norm_max_pool_forward<T>(ptr<T>(x), ptr<T>(y), pp, shape, g, w, b, rm, rv, training, momentum,
                                            eps, (NormAct)act, (T)param, ptr<T>(mean), ptr<T>(invstd));
        return 0;
    });
    return py::make_tuple(y, pos, mean, invstd);
}

// (dx, dweight, dbias), or None if a position lies outside its window or the image.
py::object batch_norm_max_pool2d_backward(py::handle dy_h, py::array_t<uint8_t, py::array::c_style> pos,
                                          py::handle x_h, py::handle w_h, py::handle b_h, py::handle mean_h,
                                          py::handle invstd_h, int act, double param, bool training, i64 kh, i64 kw,
                                          i64 sh, i64 sw, i64 ph, i64 pw) {
    if (act < 0 || act >= kNormActs) throw std::invalid_argument("relucore internal: batch norm activation code");
    View x = need(x_h, "x", 4), dy = need(dy_h, "dy", 4, x.type);
    const auto* d = dims(x);
    const ConvGeom g = pool_geom(d, kh, kw, sh, sw, ph, pw);
    const ops::BatchNormShape shape{d[0], d[1], mul(d[2], d[3])};
    const auto* e = dims(dy);
    if (e[0] != d[0] || e[1] != d[1] || e[2] != g.OH || e[3] != g.OW) throw std::invalid_argument("relucore internal: dy shape");
    if (pos.size() != dy.size) throw std::invalid_argument("relucore internal: positions size");
    py::array dx = empty(x.type, {d[0], d[1], d[2], d[3]});
    py::array dw = empty(x.type, {d[1]}), db = empty(x.type, {d[1]});
    bool ok = true;
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        const T* w = channel_vec<T>(w_h, "weight", shape.C, x.type);
        const T* b = channel_vec<T>(b_h, "bias", shape.C, x.type);
        const T* m = channel_vec<T>(mean_h, "save_mean", shape.C, x.type);
        const T* s = channel_vec<T>(invstd_h, "save_invstd", shape.C, x.type);
        if (!m || !s) throw std::invalid_argument("relucore internal: saved statistics missing");
        py::gil_scoped_release nogil;
        ok = ops::batch_norm_max_pool_backward<T>(ptr<T>(dy), pos.data(), ptr<T>(x), ptr<T>(dx), shape, g, w, b, m,
                                                  s, (NormAct)act, (T)param, training, ptr<T>(dw), ptr<T>(db));
        return 0;
    });
    if (!ok) return py::none();
    return py::make_tuple(dx, dw, db);
}

}  // namespace

void bind_norm_pool(py::module_& m) {
    m.def("batch_norm_max_pool2d", &batch_norm_max_pool2d,
          "Batch norm + activation + max pooling on plain arrays: (y, positions, save_mean, save_invstd)");
    m.def("batch_norm_max_pool2d_backward", &batch_norm_max_pool2d_backward,
          "Gradients of batch_norm_max_pool2d: (dx, dweight, dbias), or None for positions outside the image");
}

}  // namespace bind
}  // namespace relucore
