// Bindings of linear layers and their gradients (argument contract: layers.h).
#include <stdexcept>

#include "layers.h"
#include "relucore/linear.h"

namespace relucore {
namespace bind {
namespace {

py::array linear(py::handle x_h, py::handle w_h, py::handle b_h) {
    View x = need(x_h, "x", 2), w = need(w_h, "weight", 2, x.type);
    const i64 M = dims(x)[0], in = dims(x)[1], out = dims(w)[0];
    if (dims(w)[1] != in) throw std::invalid_argument("relucore internal: linear shapes");
    const View b = need_bias(b_h, out, x.type);
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
    View dy = need(dy_h, "dy", 2), x = need(x_h, "x", 2, dy.type), w = need(w_h, "weight", 2, dy.type);
    const i64 M = dims(x)[0], in = dims(x)[1], out = dims(w)[0];
    if (dims(dy)[0] != M || dims(dy)[1] != out || dims(w)[1] != in) throw std::invalid_argument("relucore internal: linear shapes");
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

void bind_linear(py::module_& m) {
    m.def("linear", &linear);
    m.def("linear_backward", &linear_backward);
}

}  // namespace bind
}  // namespace relucore
