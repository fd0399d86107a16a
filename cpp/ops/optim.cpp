// SGD's update of one parameter (relucore/optim.h): every product and sum its own rounding, as the
// NumPy path computes them (-ffp-contract=off keeps the compiler from fusing them).
#include "relucore/optim.h"

namespace relucore {
namespace ops {

template <class T> void sgd_update(T* p, const T* g, T* buf, i64 n, const SgdHyper<T>& h, bool first) {
    const T wd = h.weight_decay, mu = h.momentum, damp = h.one_minus_dampening, lr = h.lr;
    for (i64 i = 0; i < n; ++i) {
        T d = g[i];
        if (wd != T(0)) d = d + wd * p[i];
        if (mu != T(0)) {
            const T b = first ? d : buf[i] * mu + damp * d;
            buf[i] = b;
            d = h.nesterov ? d + mu * b : b;
        }
        p[i] = p[i] - lr * d;
    }
}

template void sgd_update<float>(float*, const float*, float*, i64, const SgdHyper<float>&, bool);
template void sgd_update<double>(double*, const double*, double*, i64, const SgdHyper<double>&, bool);

}  // namespace ops
}  // namespace relucore
