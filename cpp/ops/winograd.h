// 3x3 stride-1 convolutions through Winograd F(2x2, 3x3): 16 GEMMs over transformed tiles instead of
// one over im2col columns, 2.25x fewer multiply-adds; F(4x4, 3x3) (36 products per 4x4 tile) for
// float64 layers with channels in the lanes (docs/performance.md has the measurements).
// The algorithm setting (set_conv_algo) is public: relucore/conv.h.
#pragma once
#include "relucore/conv.h"

namespace relucore {
namespace ops {

// y = act(conv2d(x, w) + bias) through Winograd if the setting, the shape and the data allow it
// (every value finite and far from overflow); false: not taken.
template <class T>
bool winograd_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param);
// Which gradients of conv2d_backward go through Winograd: the setting and the shape allow it, and
// the data are tame (every value of dy, w (for dx) and x (for dweight) finite; for dweight also
// 64 * tiles * max|x| * max|dy| far from overflow: |B^T x B| <= 4 max|x|, |A dy A^T| <= 4 max|dy|,
// and G^T . G at most quadruples a sum). One parallel scan reads the arrays needed.
struct WinogradBackward {
    bool dx, dw;
};
template <class T>
WinogradBackward winograd_backward_plan(const T* dy, const T* x, const T* w, bool want_dx, bool want_dw,
                                        const Conv2dShape& s);
// True if the setting and the shape let winograd_backward_plan take dweight (the data may still
// send it to the GEMM path).
bool winograd_dweight_may_take(const Conv2dShape& s);
// dx of conv2d (the stride-1 forward of dy with the flipped, transposed kernel and padding 2 - p).
template <class T> void winograd_backward_input(const T* dy, const T* w, T* dx, const Conv2dShape& s);
// dweight of conv2d (the adjoint of the forward's tile identity in the kernel).
template <class T> void winograd_backward_weight(const T* dy, const T* x, T* dw, const Conv2dShape& s);

}  // namespace ops
}  // namespace relucore
