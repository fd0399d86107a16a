// Softmax, log-softmax and the fused softmax cross-entropy over (outer, classes, inner) arrays: the
// class axis in the middle (inner = 1: contiguous rows of classes). No Python; threads over rows or
// blocks of positions, and the loss is summed in one fixed order, so results are the same bits for
// any thread count.
#pragma once
#include <stdint.h>

#include "relucore/kernels.h"

namespace relucore {
namespace ops {

struct LossShape {
    i64 outer, classes, inner;
};

enum Reduction { kMean, kSum, kNone, kReductions };

// y = softmax or log_softmax over the class axis; y may be x.
template <class T>
void softmax(const T* x, T* y, const LossShape& sh, bool log);

// dx from dy and the forward output y; dx may be dy or y.
template <class T>
void softmax_backward(const T* dy, const T* y, T* dx, const LossShape& sh, bool log);

// Softmax cross-entropy against class indices `index` (outer x inner; null for probabilities) or
// class probabilities `prob` (laid out like x), with label smoothing `smoothing`; g (may be x) gets
// the gradient of the reduced loss. kNone writes one loss per position to `losses`; kMean/kSum
// write the total to *total (a mean over nothing is NaN, with zero gradients). Returns -1, or the
// flat position of the first class index outside [0, classes) that is not `ignore` (then nothing
// was written).
template <class T>
i64 cross_entropy(const T* x, const i64* index, const T* prob, T* g, const LossShape& sh, Reduction reduction,
                  double smoothing, i64 ignore, T* losses, double* total);

}  // namespace ops
}  // namespace relucore
