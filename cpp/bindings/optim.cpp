// Binding of the fused SGD step (relucore.optim.SGD): every parameter of a group in one call. The
// Python side passes only plain arrays of one dtype per parameter; anything else is refused whole
// before a value changes.
#include <vector>

#include "layers.h"
#include "relucore/optim.h"

namespace relucore {
namespace bind {
namespace {

struct Item {
    View p, g, buf;
    bool first;
};

// items: a list of (param, grad, momentum buffer or None, first step). True once every parameter
// is updated; False (nothing changed) if an array is not usable as is.
bool sgd_step(py::list items, double lr, double momentum, double dampening, double weight_decay, bool nesterov) {
    std::vector<Item> v;
    v.reserve(items.size());
    for (py::handle it : items) {
        const auto t = py::reinterpret_borrow<py::tuple>(it);
        if (t.size() != 4) return false;
        Item x{plain(t[0], true), plain(t[1]), momentum != 0 ? plain(t[2], true) : View{}, t[3].cast<bool>()};
        if (!x.p.a || !x.g.a || x.g.type != x.p.type || !same_shape(x.g, x.p)) return false;
        if (momentum != 0 && (!x.buf.a || x.buf.type != x.p.type || !same_shape(x.buf, x.p) || !disjoint(x.buf, x.p) ||
                              !disjoint(x.buf, x.g)))
            return false;
        if (!disjoint(x.p, x.g)) return false;
        v.push_back(x);
    }
    py::gil_scoped_release nogil;
    for (const Item& x : v)
        by_type(x.p.type, [&](auto t) {
            using T = decltype(t);
            const ops::SgdHyper<T> h{(T)lr, (T)momentum, (T)(1.0 - dampening), (T)weight_decay, nesterov};
            ops::sgd_update<T>(ptr<T>(x.p), ptr<T>(x.g), x.buf.a ? ptr<T>(x.buf) : nullptr, x.p.size, h, x.first);
            return 0;
        });
    return true;
}

}  // namespace

void bind_optim(py::module_& m) {
    m.def("sgd_step", &sgd_step, "SGD's update of every (param, grad, buffer, first) in the list, or False");
}

}  // namespace bind
}  // namespace relucore
