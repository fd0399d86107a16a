// 3x3 stride-1 convolutions through Winograd F(2x2, 3x3): 16 GEMMs over transformed tiles instead of
// one over im2col columns, 2.25x fewer multiply-adds; F(4x4, 3x3) (36 products per 4x4 tile) for
// float64 layers with channels in the lanes (docs/performance.md has the measurements).
// The algorithm setting (set_conv_algo) is public: relucore/conv.h.
#pragma once
#include "relucore/conv.h"

namespace relucore {
namespace ops {

// y = act(conv2d(x, w) + bias) through Winograd if the setting, the shape and the data allow it
// (every value finite and far from overflow); false: not taken, and y may have been written (the
// data are checked as the transforms read them: the caller's GEMM path overwrites y).
template <class T>
bool winograd_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param);
// Which gradients of conv2d_backward may go through Winograd, by the setting and the shape; the
// data decide in winograd_backward_input/weight.
struct WinogradBackward {
    bool dx, dw;
};
WinogradBackward winograd_backward_plan(bool want_dx, bool want_dw, const Conv2dShape& s);
// True if the setting and the shape let winograd_backward_plan take dweight (the data may still
// send it to the GEMM path).
bool winograd_dweight_may_take(const Conv2dShape& s);
// dx of conv2d (the stride-1 forward of dy with the flipped, transposed kernel and padding 2 - p),
// and dweight (the adjoint of the forward's tile identity in the kernel), if the data are tame
// (every value of dy, w (for dx) and x (for dweight) finite, and each operand's transform and the
// products far from overflow; the transforms check what they read); false otherwise (dx then
// possibly written, dweight not), for the GEMM path to overwrite.
template <class T> bool winograd_backward_input(const T* dy, const T* w, T* dx, const Conv2dShape& s);
template <class T> bool winograd_backward_weight(const T* dy, const T* x, T* dw, const Conv2dShape& s);

}  // namespace ops
}  // namespace relucore
