// Bindings of batch norm (fast paths; see module.cpp for the contract). relucore.norm validates and
// prepares; these take only plain arrays of one dtype and consistent shapes, and return None otherwise.
#include <algorithm>

#include "layers.h"
#include "relucore/norm.h"
#include "relucore/dweight_planes.h"

namespace relucore {
namespace bind {
namespace {

// An optional (C,) vector of x's type: ok is false when it is given but not usable as is.
struct Vec {
    View v;
    bool ok = true;
    template <class T> T* ptr() const { return v.a ? reinterpret_cast<T*>(v.data) : nullptr; }
};

Vec vec(py::handle h, const View& like, i64 channels, bool writeable = false) {
    Vec r;
    if (h.is_none()) return r;
    r.v = plain(h, writeable);
    // a buffer written while x is read must not overlap it
    r.ok = r.v.a && r.v.type == like.type && ndim(r.v) == 1 && r.v.size == channels &&
           (!writeable || disjoint(r.v, like));
    return r;
}

bool shape_of(const View& x, ops::BatchNormShape& sh) {
    if (!x.a || ndim(x) < 2 || ndim(x) > 5) return false;
    i64 outer, channels, inner;
    geometry(x, outer, channels, inner);
    sh = {outer, channels, inner};
    return true;
}

// The forward's per-channel arguments, each usable as is: running buffers both or neither (needed
// in eval), and disjoint from what is read while they are written.
struct Params {
    Vec rm, rv, w, b;
    bool ok;
};
Params params(py::handle rm_h, py::handle rv_h, py::handle w_h, py::handle b_h, const View& x, i64 C, bool training) {
    Params p{vec(rm_h, x, C, training), vec(rv_h, x, C, training), vec(w_h, x, C), vec(b_h, x, C), false};
    if (!p.rm.ok || !p.rv.ok || !p.w.ok || !p.b.ok || !p.rm.v.a != !p.rv.v.a) return p;
    if (!training && !p.rm.v.a) return p;
    for (const View* other : {&p.rv.v, &p.w.v, &p.b.v})
        if (p.rm.v.a && !disjoint(p.rm.v, *other)) return p;
    for (const View* other : {&p.w.v, &p.b.v})
        if (p.rv.v.a && !disjoint(p.rv.v, *other)) return p;
    p.ok = true;
    return p;
}

py::array channel_array(const View& like, i64 channels) {
    if (like.type == kF32) return py::array_t<float>((py::ssize_t)channels);
    return py::array_t<double>((py::ssize_t)channels);
}

template <class T>
void forward_typed(const View& x, const View& y, const ops::BatchNormShape& sh, const Vec& rm, const Vec& rv,
                   const Vec& w, const Vec& b, bool training, double momentum, double eps, int act, double param,
                   py::array& mean, py::array& invstd, int64_t* counts) {
    T* pm = static_cast<T*>(mean.mutable_data());
    T* pi = static_cast<T*>(invstd.mutable_data());
    py::gil_scoped_release nogil;
    ops::batch_norm_forward<T>(reinterpret_cast<const T*>(x.data), reinterpret_cast<T*>(y.data), sh, w.ptr<T>(),
                               b.ptr<T>(), rm.ptr<T>(), rv.ptr<T>(), training, momentum, eps, (NormAct)act,
                               (T)param, pm, pi, counts);
}

py::object batch_norm(py::handle x_h, py::handle rm_h, py::handle rv_h, py::handle w_h, py::handle b_h,
                      bool training, double momentum, double eps, int act, double param, py::handle out_h,
                      bool want_counts) {
    if (act < 0 || act >= kNormActs) throw py::value_error("unknown batch norm activation code");
    View x = plain(x_h);
    ops::BatchNormShape sh;
    if (!shape_of(x, sh)) return py::none();
    const Params p = params(rm_h, rv_h, w_h, b_h, x, sh.C, training);
    if (!p.ok || (training && sh.N * sh.S == 1)) return py::none();  // one value per channel: an error
    const Vec &rm = p.rm, &rv = p.rv, &w = p.w, &b = p.b;
    py::object out;
    View y;
    if (!output_array(out_h, x, {&x, &rm.v, &rv.v, &w.v, &b.v}, out, y)) return py::none();
    py::array mean = channel_array(x, sh.C), invstd = channel_array(x, sh.C);
    py::array_t<int64_t> counts;
    int64_t* cp = nullptr;
    if (want_counts) {
        counts = py::array_t<int64_t>((py::ssize_t)sh.C);
        cp = counts.mutable_data();
        std::fill(cp, cp + sh.C, int64_t(0));  // channels with no values are counted by no kernel
    }
    if (x.type == kF32)
        forward_typed<float>(x, y, sh, rm, rv, w, b, training, momentum, eps, act, param, mean, invstd, cp);
    else
        forward_typed<double>(x, y, sh, rm, rv, w, b, training, momentum, eps, act, param, mean, invstd, cp);
    if (want_counts) return py::make_tuple(out, mean, invstd, counts);
    return py::make_tuple(out, mean, invstd);
}

template <class T>
void backward_typed(const View& dy, const View& s, bool from_y, const View& dx, const ops::BatchNormShape& sh,
                    const Vec& w, const Vec& b, const Vec& mean, const Vec& invstd, int act, double param,
                    bool training, py::array& dw, py::array& db) {
    T* pw = static_cast<T*>(dw.mutable_data());
    T* pb = static_cast<T*>(db.mutable_data());
    py::gil_scoped_release nogil;
    ops::batch_norm_backward<T>(reinterpret_cast<const T*>(dy.data), reinterpret_cast<const T*>(s.data),
                                from_y ? kFromY : kFromX, reinterpret_cast<T*>(dx.data), sh, w.ptr<T>(), b.ptr<T>(),
                                mean.ptr<T>(), invstd.ptr<T>(), (NormAct)act, (T)param, training, pw, pb);
}

py::object batch_norm_backward(py::handle dy_h, py::handle s_h, bool from_y, py::handle w_h, py::handle b_h,
                               py::handle mean_h, py::handle invstd_h, int act, double param, bool training,
                               py::handle out_h) {
    if (act < 0 || act >= kNormActs || (from_y && act == kNormRelu))
        throw py::value_error("unknown batch norm activation code (or relu from y)");
    View dy = plain(dy_h), s = plain(s_h);
    ops::BatchNormShape sh;
    if (!shape_of(dy, sh) || !s.a || s.type != dy.type || !same_shape(s, dy)) return py::none();
    const Vec w = vec(w_h, dy, sh.C), b = vec(b_h, dy, sh.C);
    const Vec mean = vec(mean_h, dy, sh.C), invstd = vec(invstd_h, dy, sh.C);
    if (!w.ok || !b.ok || !mean.ok || !invstd.ok || !mean.v.a || !invstd.v.a) return py::none();
    py::object out;
    View dx;
    if (!output_array(out_h, dy, {&dy, &s, &w.v, &b.v, &mean.v, &invstd.v}, out, dx)) return py::none();
    py::array dw = channel_array(dy, sh.C), db = channel_array(dy, sh.C);
    if (dy.type == kF32)
        backward_typed<float>(dy, s, from_y, dx, sh, w, b, mean, invstd, act, param, training, dw, db);
    else
        backward_typed<double>(dy, s, from_y, dx, sh, w, b, mean, invstd, act, param, training, dw, db);
    return py::make_tuple(out, dw, db);
}

// Batch norm + activation + max pooling (nn.Sequential's BatchNorm2d -> activation -> MaxPool2d in
// training): (y, positions, save_mean, save_invstd), or None for arrays it cannot take as they are
// (the layer then runs the three apart). The pool's geometry is the caller's, already checked.
// run_sums: None, or conv2d_moments' sums of x (2, N*C float64) for the training statistics.
py::object batch_norm_max_pool2d(py::handle x_h, py::handle rm_h, py::handle rv_h, py::handle w_h, py::handle b_h,
                                 bool training, double momentum, double eps, int act, double param, i64 kh, i64 kw,
                                 i64 sh, i64 sw, i64 ph, i64 pw, py::handle sums_h) {
    if (act < 0 || act >= kNormActs) throw py::value_error("unknown batch norm activation code");
    View x = plain(x_h);
    if (!x.a || ndim(x) != 4 || mul(kh, kw) > 255) return py::none();
    const py::ssize_t* d = dims(x);
    const ConvGeom g = geom(1, d[2], d[3], kh, kw, sh, sw, ph, pw, 1, 1);
    const ops::BatchNormShape shape{d[0], d[1], mul(d[2], d[3])};
    const Params p = params(rm_h, rv_h, w_h, b_h, x, shape.C, training);
    if (!p.ok || (training && mul(shape.N, shape.S) <= 1)) return py::none();
    const Vec &rm = p.rm, &rv = p.rv, &w = p.w, &b = p.b;
    py::array_t<double, py::array::c_style> sums;  // (a default array_t is an empty array, not null)
    const double* ps = nullptr;
    if (!sums_h.is_none()) {
        sums = py::array_t<double, py::array::c_style>::ensure(sums_h);
        if (!training || !sums || sums.ndim() != 2 || sums.shape(0) != 2 || sums.shape(1) != mul(shape.N, shape.C))
            throw std::invalid_argument("relucore internal: run sums");
        ps = sums.data();
    }
    py::array y = empty(x.type, {d[0], d[1], g.OH, g.OW});
    auto pos = py::reinterpret_steal<py::array_t<uint8_t>>(
        new_array(py::dtype::of<uint8_t>(), {d[0], d[1], g.OH, g.OW}).release());
    py::array mean = channel_array(x, shape.C), invstd = channel_array(x, shape.C);
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        uint8_t* pp = pos.mutable_data();
        T* pm = static_cast<T*>(mean.mutable_data());
        T* pi = static_cast<T*>(invstd.mutable_data());
        py::gil_scoped_release nogil;
        ops::batch_norm_max_pool_forward<T>(ptr<T>(x), ptr<T>(y), pp, shape, g, w.ptr<T>(), b.ptr<T>(), rm.ptr<T>(),
                                            rv.ptr<T>(), training, momentum, eps, (NormAct)act, (T)param, pm, pi,
                                            ps);
        return 0;
    });
    return py::make_tuple(y, pos, mean, invstd);
}

// The arrays of batch_norm_max_pool2d's backward, each usable as is (else ok is false).
struct PoolBackward {
    View x, dy;
    py::array_t<uint8_t, py::array::c_style> pos;
    ConvGeom g;
    ops::BatchNormShape shape;
    Vec w, b, mean, invstd;
    bool ok = false;
};

PoolBackward pool_backward_args(py::handle dy_h, py::handle pos_h, py::handle x_h, py::handle w_h, py::handle b_h,
                                py::handle mean_h, py::handle invstd_h, int act, i64 kh, i64 kw, i64 sh, i64 sw,
                                i64 ph, i64 pw) {
    if (act < 0 || act >= kNormActs) throw py::value_error("unknown batch norm activation code");
    PoolBackward a;
    a.x = plain(x_h), a.dy = plain(dy_h);
    if (!a.x.a || !a.dy.a || ndim(a.x) != 4 || ndim(a.dy) != 4 || a.dy.type != a.x.type || mul(kh, kw) > 255) return a;
    const py::ssize_t* d = dims(a.x);
    a.g = geom(1, d[2], d[3], kh, kw, sh, sw, ph, pw, 1, 1);
    a.shape = {d[0], d[1], mul(d[2], d[3])};
    const py::ssize_t* e = dims(a.dy);
    if (e[0] != d[0] || e[1] != d[1] || e[2] != a.g.OH || e[3] != a.g.OW) return a;
    a.pos = py::array_t<uint8_t, py::array::c_style>::ensure(pos_h);
    if (!a.pos || a.pos.size() != a.dy.size) return a;
    a.w = vec(w_h, a.x, a.shape.C), a.b = vec(b_h, a.x, a.shape.C);
    a.mean = vec(mean_h, a.x, a.shape.C), a.invstd = vec(invstd_h, a.x, a.shape.C);
    a.ok = a.w.ok && a.b.ok && a.mean.ok && a.invstd.ok && a.mean.v.a && a.invstd.v.a;
    return a;
}

// Its gradients: (dx, dweight, dbias), and with input_sums dx's sums per channel as conv2d_backward
// sums a dbias (the bias gradient of the convolution whose output x is) after them; None for arrays
// it cannot take as they are, False if a kept position lies outside its window or the image.
py::object batch_norm_max_pool2d_backward(py::handle dy_h, py::handle pos_h, py::handle x_h, py::handle w_h,
                                          py::handle b_h, py::handle mean_h, py::handle invstd_h, int act,
                                          double param, bool training, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph,
                                          i64 pw, bool input_sums) {
    PoolBackward a = pool_backward_args(dy_h, pos_h, x_h, w_h, b_h, mean_h, invstd_h, act, kh, kw, sh, sw, ph, pw);
    if (!a.ok) return py::none();
    const py::ssize_t* d = dims(a.x);
    py::array dx = empty(a.x.type, {d[0], d[1], d[2], d[3]});
    py::array dw = channel_array(a.x, a.shape.C), db = channel_array(a.x, a.shape.C);
    py::array sums = channel_array(a.x, input_sums ? a.shape.C : 0);
    bool ok = true;
    by_type(a.x.type, [&](auto t) {
        using T = decltype(t);
        const uint8_t* pp = a.pos.data();
        T* ps = input_sums ? ptr<T>(sums) : nullptr;
        py::gil_scoped_release nogil;
        ok = ops::batch_norm_max_pool_backward<T>(ptr<T>(a.dy), pp, ptr<T>(a.x), ptr<T>(dx), a.shape, a.g,
                                                  a.w.ptr<T>(), a.b.ptr<T>(), a.mean.ptr<T>(), a.invstd.ptr<T>(),
                                                  (NormAct)act, (T)param, training, ptr<T>(dw), ptr<T>(db), ps);
        return 0;
    });
    if (!ok) return py::bool_(false);
    if (input_sums) return py::make_tuple(dx, dw, db, sums);
    return py::make_tuple(dx, dw, db);
}

// The same where x is the output of a network's first convolution (input conv_x, weight conv_w, one
// group), whose input gradient is not wanted: dx goes plane by plane from scratch into that
// convolution's dweight and dbias (relucore/dweight_planes.h) and is never written. (dweight, dbias,
// conv_dweight, conv_dbias or None); None where the arrays are not usable as they are or
// conv2d_backward would not sum dweight in the dot form; False for a damaged position.
py::object batch_norm_max_pool2d_conv_backward(py::handle dy_h, py::handle pos_h, py::handle x_h, py::handle w_h,
                                               py::handle b_h, py::handle mean_h, py::handle invstd_h, int act,
                                               double param, bool training, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph,
                                               i64 pw, py::handle conv_x_h, py::handle conv_w_h, i64 csh, i64 csw,
                                               i64 cph, i64 cpw, i64 cdh, i64 cdw, bool conv_bias) {
    PoolBackward a = pool_backward_args(dy_h, pos_h, x_h, w_h, b_h, mean_h, invstd_h, act, kh, kw, sh, sw, ph, pw);
    View cx = plain(conv_x_h), cw = plain(conv_w_h);
    if (!a.ok || !cx.a || !cw.a || ndim(cx) != 4 || ndim(cw) != 4 || cx.type != a.x.type || cw.type != a.x.type)
        return py::none();
    const py::ssize_t *d = dims(a.x), *xd = dims(cx), *wd = dims(cw);
    if (xd[0] != d[0] || wd[0] != d[1] || wd[1] != xd[1] || d[0] == 0 || d[1] == 0 || xd[1] == 0 || xd[2] == 0 ||
        xd[3] == 0)
        return py::none();
    const ops::Conv2dShape s = conv_shape(cx, cw, csh, csw, cph, cpw, cdh, cdw, 1);
    if (s.g.OH != d[2] || s.g.OW != d[3]) return py::none();
    py::array dw = channel_array(a.x, a.shape.C), db = channel_array(a.x, a.shape.C);
    py::array cdwt = empty(a.x.type, {wd[0], wd[1], wd[2], wd[3]});
    py::object cdb = conv_bias ? py::object(empty(a.x.type, {wd[0]})) : py::object(py::none());
    int done = 0;  // 1 taken, 0 not the dot form, -1 a damaged position
    by_type(a.x.type, [&](auto t) {
        using T = decltype(t);
        if (!ops::dweight_is_dot_form<T>(s)) return 0;
        const uint8_t* pp = a.pos.data();
        T* pdb = conv_bias ? reinterpret_cast<T*>(py::array(cdb).mutable_data()) : nullptr;
        py::gil_scoped_release nogil;
        ops::DweightPlanes<T> conv(ptr<T>(cx), s, ptr<T>(cdwt), pdb);
        done = ops::batch_norm_max_pool_backward<T>(ptr<T>(a.dy), pp, ptr<T>(a.x), nullptr, a.shape, a.g,
                                                    a.w.ptr<T>(), a.b.ptr<T>(), a.mean.ptr<T>(), a.invstd.ptr<T>(),
                                                    (NormAct)act, (T)param, training, ptr<T>(dw), ptr<T>(db), nullptr,
                                                    &conv)
                   ? 1
                   : -1;
        return 0;
    });
    if (done == 0) return py::none();
    if (done < 0) return py::bool_(false);
    return py::make_tuple(dw, db, cdwt, cdb);
}

}  // namespace

void bind_norm(py::module_& m) {
    m.def("batch_norm", &batch_norm, py::arg("x"), py::arg("running_mean"), py::arg("running_var"),
          py::arg("weight"), py::arg("bias"), py::arg("training"), py::arg("momentum"), py::arg("eps"),
          py::arg("act"), py::arg("param"), py::arg("out"), py::arg("return_counts"),
          "Batch norm + activation on plain arrays: (y, save_mean, save_invstd[, counts]) or None");
    m.def("batch_norm_backward", &batch_norm_backward, py::arg("dy"), py::arg("s"), py::arg("from_y"),
          py::arg("weight"), py::arg("bias"), py::arg("save_mean"), py::arg("save_invstd"), py::arg("act"),
          py::arg("param"), py::arg("training"), py::arg("out"),
          "Batch norm + activation gradients on plain arrays: (dx, dweight, dbias) or None");
    m.def("batch_norm_max_pool2d", &batch_norm_max_pool2d, py::arg("x"), py::arg("running_mean"),
          py::arg("running_var"), py::arg("weight"), py::arg("bias"), py::arg("training"), py::arg("momentum"),
          py::arg("eps"), py::arg("act"), py::arg("param"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
          py::arg("ph"), py::arg("pw"), py::arg("run_sums") = py::none(),
          "Batch norm + activation + max pooling on plain arrays: (y, positions, save_mean, save_invstd) or None");
    m.def("batch_norm_max_pool2d_backward", &batch_norm_max_pool2d_backward, py::arg("dy"), py::arg("positions"),
          py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("save_mean"), py::arg("save_invstd"),
          py::arg("act"), py::arg("param"), py::arg("training"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
          py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("input_sums") = false,
          "Gradients of batch_norm_max_pool2d: (dx, dweight, dbias[, dx's sums per channel]), None, or False for "
          "damaged positions");
    m.def("batch_norm_max_pool2d_conv_backward", &batch_norm_max_pool2d_conv_backward,
          "Gradients of batch_norm_max_pool2d after a first convolution, dx into its dweight and dbias: (dweight, "
          "dbias, conv_dweight, conv_dbias), None, or False for damaged positions");
    py::dict acts;
    acts["none"] = (int)kNormNone;
    acts["relu"] = (int)kNormRelu;
    acts["leaky_relu"] = (int)kNormLeaky;
    acts["elu"] = (int)kNormElu;
    m.attr("NORM_ACTIVATIONS") = acts;
}

}  // namespace bind
}  // namespace relucore
