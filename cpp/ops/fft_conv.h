// Stride-1 convolutions with large kernels through 2-D FFTs (docs/performance.md has the
// measurements): a layer's C*F kernel planes of kh*kw taps become pointwise products of n x n
// spectra, so the work per output no longer grows with the kernel's area. Two real planes share
// one complex transform (images i, i+1 as real and imaginary parts). The algorithm setting
// (set_conv_algo) is public: relucore/conv.h.
#pragma once
#include "relucore/conv.h"

namespace relucore {
namespace ops {

// True if the setting and the shape let fft_forward/fft_backward take the layer (the data may
// still send it to the GEMM path).
template <class T> bool fft_may_take(const Conv2dShape& s);
// y = act(conv2d(x, w) + bias) through FFTs if the setting, the shape and the data allow it (every
// value finite and far from overflow); false: not taken.
template <class T>
bool fft_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param);
// dx and dweight of conv2d through FFTs where the setting, the shape and the data allow it; the
// gradients taken are set to null in dx/dw (the others are left to the GEMM path).
template <class T> void fft_backward(const T* dy, const T* x, const T* w, T*& dx, T*& dw, const Conv2dShape& s);

}  // namespace ops
}  // namespace relucore
