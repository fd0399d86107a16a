// Batch norm with a fused activation over contiguous (N, C, S) arrays (S: the spatial size, 1 for
// (N, C)). No Python; threads over channels, each channel summed in one fixed order, so results are
// the same bits for any thread count.
#pragma once
#include <stdint.h>

#include "relucore/kernels.h"

namespace relucore {
namespace ops {

struct BatchNormShape {
    i64 N, C, S;
};

// y = act((x - mean) * invstd * weight + bias) with the batch's statistics (training) or the running
// buffers' (eval). weight/bias may be null (ones/zeros); running_* may be null in training, else
// updated as running = (1 - momentum) * running + momentum * batch (unbiased variance). save_mean and
// save_invstd (C) receive the statistics used; counts (C, optional) the number of y > 0 per channel.
// y may be x.
template <class T>
void batch_norm_forward(const T* x, T* y, const BatchNormShape& sh, const T* weight, const T* bias,
                        T* running_mean, T* running_var, bool training, double momentum, double eps, NormAct act,
                        T param, T* save_mean, T* save_invstd, i64* counts);

// dx (may be dy or s), dweight and dbias (C) from dy and s = x (from == kFromX) or the forward
// output y (kFromY; not for relu). weight/bias may be null.
template <class T>
void batch_norm_backward(const T* dy, const T* s, NormFrom from, T* dx, const BatchNormShape& sh, const T* weight,
                         const T* bias, const T* save_mean, const T* save_invstd, NormAct act, T param,
                         bool training, T* dweight, T* dbias);

}  // namespace ops
}  // namespace relucore
