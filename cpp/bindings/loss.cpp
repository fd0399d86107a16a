// Bindings of softmax and the softmax cross-entropy (fast paths; see module.cpp for the contract).
// relucore.loss validates and prepares; these take only plain arrays and return None otherwise.
#include "common.h"
#include "relucore/loss.h"

namespace relucore {
namespace bind {
namespace {

// (outer, classes, inner) of v around `axis` (already in [0, ndim); a 0-d array is one class).
ops::LossShape around(const View& v, int axis) {
    ops::LossShape sh{1, 1, 1};
    for (int i = 0; i < ndim(v); ++i) {
        const i64 d = (i64)dims(v)[i];
        if (i < axis) sh.outer *= d;
        else if (i == axis) sh.classes = d;
        else sh.inner *= d;
    }
    return sh;
}

bool axis_ok(const View& v, int axis) { return axis >= 0 && axis < (ndim(v) > 0 ? ndim(v) : 1); }

py::object softmax(py::handle x_h, int axis, bool log, py::handle out_h) {
    const View x = plain(x_h);
    if (!x.a || !axis_ok(x, axis)) return py::none();
    py::object out;
    View y;
    if (!output_array(out_h, x, {&x}, out, y)) return py::none();
    const ops::LossShape sh = around(x, axis);
    if (x.size > 0) {
        py::gil_scoped_release nogil;
        if (x.type == kF32)
            ops::softmax<float>(reinterpret_cast<const float*>(x.data), reinterpret_cast<float*>(y.data), sh, log);
        else
            ops::softmax<double>(reinterpret_cast<const double*>(x.data), reinterpret_cast<double*>(y.data), sh, log);
    }
    return out;
}

py::object softmax_backward(py::handle dy_h, py::handle y_h, int axis, bool log, py::handle out_h) {
    const View dy = plain(dy_h), y = plain(y_h);
    if (!dy.a || !y.a || y.type != dy.type || !same_shape(dy, y) || !axis_ok(dy, axis)) return py::none();
    py::object out;
    View dx;
    if (!output_array(out_h, dy, {&dy, &y}, out, dx)) return py::none();
    const ops::LossShape sh = around(dy, axis);
    if (dy.size > 0) {
        py::gil_scoped_release nogil;
        if (dy.type == kF32)
            ops::softmax_backward<float>(reinterpret_cast<const float*>(dy.data),
                                         reinterpret_cast<const float*>(y.data), reinterpret_cast<float*>(dx.data),
                                         sh, log);
        else
            ops::softmax_backward<double>(reinterpret_cast<const double*>(dy.data),
                                          reinterpret_cast<const double*>(y.data),
                                          reinterpret_cast<double*>(dx.data), sh, log);
    }
    return out;
}

// The data of a C-contiguous aligned int64 ndarray shaped like x without its class axis (axis 1;
// a 0-d array for 1-d x), else null.
const int64_t* class_indices(py::handle h, const View& x) {
    if (Py_TYPE(h.ptr()) != ndarray_type()) return nullptr;
    const auto a = py::reinterpret_borrow<py::array>(h);
    const py::dtype d = a.dtype();
    if (d.kind() != 'i' || d.itemsize() != 8 || d.byteorder() == '>') return nullptr;
    const int need = kCContiguous | kAligned;
    if ((a.flags() & need) != need) return nullptr;
    const int nd = ndim(x);
    if (a.ndim() != (nd > 1 ? nd - 1 : 0)) return nullptr;
    for (int i = 0; nd > 1 && i < nd; ++i)
        if (i != 1 && a.shape(i ? i - 1 : 0) != dims(x)[i]) return nullptr;
    return static_cast<const int64_t*>(a.data());
}

template <class T>
i64 ce_typed(const View& x, const int64_t* index, const View& prob, const View& g, const ops::LossShape& sh,
             ops::Reduction red, double smoothing, int64_t ignore, py::array* losses, double* total) {
    T* lp = losses ? static_cast<T*>(losses->mutable_data()) : nullptr;
    py::gil_scoped_release nogil;
    return ops::cross_entropy<T>(reinterpret_cast<const T*>(x.data), index,
                                 prob.a ? reinterpret_cast<const T*>(prob.data) : nullptr,
                                 reinterpret_cast<T*>(g.data), sh, red, smoothing, ignore, lp, total);
}

// (loss, dlogits): loss a float (mean, sum) or an array over the positions (none); or None.
py::object cross_entropy(py::handle x_h, py::handle t_h, int reduction, double smoothing, int64_t ignore,
                         py::handle out_h) {
    if (reduction < 0 || reduction >= ops::kReductions) throw py::value_error("unknown reduction code");
    const View x = plain(x_h);
    if (!x.a || ndim(x) < 1 || !(smoothing >= 0.0 && smoothing <= 1.0)) return py::none();
    const ops::LossShape sh = ndim(x) == 1 ? ops::LossShape{1, x.size, 1} : around(x, 1);
    if (sh.classes == 0) return py::none();
    const int64_t* index = class_indices(t_h, x);
    View prob;
    if (!index) {
        prob = plain(t_h);
        if (!prob.a || prob.type != x.type || !same_shape(prob, x)) return py::none();
    }
    py::object out;
    View g;
    if (!output_array(out_h, x, {&x, &prob}, out, g)) return py::none();
    if (prob.a && prob.data == g.data) return py::none();  // g may be x, not t: t is read after g is written
    const char* ib = reinterpret_cast<const char*>(index);
    if (index && !(ib + sh.outer * sh.inner * 8 <= g.data || g.data + g.nbytes <= ib)) return py::none();
    const auto red = (ops::Reduction)reduction;
    py::array losses;
    if (red == ops::kNone) {
        std::vector<py::ssize_t> shape;
        for (int i = 0; i < ndim(x); ++i)
            if (i != 1 && ndim(x) > 1) shape.push_back(dims(x)[i]);
        losses = new_array(x.type == kF32 ? py::dtype::of<float>() : py::dtype::of<double>(), shape);
    }
    double total = 0;
    py::array* lp = red == ops::kNone ? &losses : nullptr;
    const i64 bad = x.type == kF32 ? ce_typed<float>(x, index, prob, g, sh, red, smoothing, ignore, lp, &total)
                                   : ce_typed<double>(x, index, prob, g, sh, red, smoothing, ignore, lp, &total);
    if (bad >= 0) return py::none();  // an invalid class index: the Python layer names it
    if (red == ops::kNone) return py::make_tuple(losses, out);
    return py::make_tuple(total, out);
}

}  // namespace

void bind_loss(py::module_& m) {
    m.def("softmax", &softmax, py::arg("x"), py::arg("axis"), py::arg("log"), py::arg("out"),
          "softmax / log_softmax over axis on plain arrays, or None");
    m.def("softmax_backward", &softmax_backward, py::arg("dy"), py::arg("y"), py::arg("axis"), py::arg("log"),
          py::arg("out"), "softmax / log_softmax gradient from the forward output, or None");
    m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("target"), py::arg("reduction"),
          py::arg("smoothing"), py::arg("ignore_index"), py::arg("out"),
          "fused softmax cross-entropy on plain arrays: (loss, dlogits) or None");
    py::dict r;
    r["mean"] = (int)ops::kMean;
    r["sum"] = (int)ops::kSum;
    r["none"] = (int)ops::kNone;
    m.attr("REDUCTIONS") = r;
}

}  // namespace bind
}  // namespace relucore
