// Optimizer updates over plain arrays, in the order of NumPy operations the Python optimizers use,
// each rounded as NumPy rounds it (no contraction into fused multiply-adds), so a fused call gives
// the same bits as the per-parameter NumPy path.
#pragma once
#include "relucore/kernels.h"

namespace relucore {
namespace ops {

template <class T> struct SgdHyper {
    T lr, momentum, one_minus_dampening, weight_decay;
    bool nesterov;
};

// One parameter p (n values) with gradient g and momentum buffer buf (unused without momentum;
// `first`: the buffer is set to the gradient, as on a parameter's first step):
//   g' = g + wd * p;  buf = first ? g' : buf * mu + (1 - dampening) * g';
//   p -= lr * (nesterov ? g' + mu * buf : momentum ? buf : g').
template <class T> void sgd_update(T* p, const T* g, T* buf, i64 n, const SgdHyper<T>& h, bool first);

}  // namespace ops
}  // namespace relucore
