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

// Batch norm + activation + max pooling over (N, C, H, W) (S = H*W): y (N, C, OH, OW) and pos, each
// maximum's position in its window (g: the pool's geometry, at most 255 positions), as
// max_pool2d_pos would give for batch_norm_forward's output, which is never written: each plane
// is normalized into a per-thread scratch plane and pooled from there. Statistics are summed in the
// runs layout (per plane, added per channel in order).
// run_sums (2 x N*C, optional, training only): x's per-plane sums as conv2d_moments gives them; the
// statistics then come from these instead of a pass over x (the same values).
template <class T>
void batch_norm_max_pool_forward(const T* x, T* y, uint8_t* pos, const BatchNormShape& sh, const ConvGeom& g,
                                 const T* weight, const T* bias, T* running_mean, T* running_var, bool training,
                                 double momentum, double eps, NormAct act, T param, T* save_mean, T* save_invstd,
                                 const double* run_sums = nullptr);

template <class T> class DweightPlanes;

// dx (N, C, H, W), dweight and dbias (C) of batch_norm_max_pool_forward from dy (N, C, OH, OW), pos
// and x: each plane's pooling gradient is rebuilt in scratch for the sums, then again for dx.
// input_sums (C, optional) receives dx summed per channel as conv2d_backward sums a dbias (the bias
// gradient of a convolution whose output x is), each plane while it is in cache. With `conv` (that
// convolution's gradients, relucore/dweight_planes.h) each dx plane goes to it from scratch instead
// (dx and input_sums are not written; conv's dweight and dbias are, by finish()). False (the
// outputs then not the gradients) if a position lies outside its window or image.
template <class T>
bool batch_norm_max_pool_backward(const T* dy, const uint8_t* pos, const T* x, T* dx, const BatchNormShape& sh,
                                  const ConvGeom& g, const T* weight, const T* bias, const T* save_mean,
                                  const T* save_invstd, NormAct act, T param, bool training, T* dweight, T* dbias,
                                  T* input_sums = nullptr, DweightPlanes<T>* conv = nullptr);

}  // namespace ops
}  // namespace relucore
