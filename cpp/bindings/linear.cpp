// Bindings of linear layers and their gradients (argument contract: layers.h). x and weight come
// as stored, each with a flag saying whether the layer reads it transposed (relucore/linear.h).
#include <stdexcept>

#include "layers.h"
#include "relucore/linear.h"

namespace relucore {
namespace bind {
namespace {

// Rows and columns of the operand the layer uses, from the stored array and its flag.
inline void used_dims(const View& v, bool t, i64& rows, i64& cols) {
    rows = dims(v)[t ? 1 : 0];
    cols = dims(v)[t ? 0 : 1];
}

py::array linear(py::handle x_h, bool x_t, py::handle w_h, bool w_t, py::handle b_h) {
    View x = need(x_h, "x", 2), w = need(w_h, "weight", 2, x.type);
    i64 M, in, out, w_in;
    used_dims(x, x_t, M, in);
    used_dims(w, w_t, out, w_in);
    if (w_in != in) throw std::invalid_argument("relucore internal: linear shapes");
    const View b = need_bias(b_h, out, x.type);
    py::array y = empty(x.type, {M, out});
    by_type(x.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::linear<T>(ptr<T>(x), x_t, ptr<T>(w), w_t, b.a ? ptr<T>(b) : nullptr, ptr<T>(y), M, in, out);
        return 0;
    });
    return y;
}

py::tuple linear_backward(py::handle dy_h, py::handle x_h, bool x_t, py::handle w_h, bool w_t) {
    View dy = need(dy_h, "dy", 2), x = need(x_h, "x", 2, dy.type), w = need(w_h, "weight", 2, dy.type);
    i64 M, in, out, w_in;
    used_dims(x, x_t, M, in);
    used_dims(w, w_t, out, w_in);
    if (dims(dy)[0] != M || dims(dy)[1] != out || w_in != in) throw std::invalid_argument("relucore internal: linear shapes");
    py::array dx = empty(dy.type, {M, in}), db = empty(dy.type, {out});
    py::array dw = w_t ? empty(dy.type, {in, out}) : empty(dy.type, {out, in});  // the weight's layout
    by_type(dy.type, [&](auto t) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        ops::linear_backward<T>(ptr<T>(dy), ptr<T>(x), x_t, ptr<T>(w), w_t, ptr<T>(dx), ptr<T>(dw), ptr<T>(db), M, in,
                                out);
        return 0;
    });
    return py::make_tuple(dx, dw, db);
}

}  // namespace

void bind_linear(py::module_& m) {
    m.def("linear", &linear);
    m.def("linear_backward", &linear_backward);
}

}  // namespace bind
}  // namespace relucore
