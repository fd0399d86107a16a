// Stride-1 convolutions with few taps per output (C*kh*kw, as a network's first layer) through the
// direct kernels of cpp/kernels/small_conv.cpp instead of im2col and a GEMM.
#pragma once
#include "relucore/conv.h"

namespace relucore {
namespace ops {

// y = act(conv2d(x, w) + bias) directly if the shape is one the direct kernels win (groups 1, stride
// 1, dilation 1, few taps); false: not taken. With sums (2 x N*F), where work items are whole
// images, also y's per-plane sums for a batch norm's statistics (conv2d_moments), *summed then true.
template <class T>
bool small_conv_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param,
                        double* sums = nullptr, bool* summed = nullptr);

}  // namespace ops
}  // namespace relucore
