// Max and average pooling over whole NCHW batches (contiguous buffers), one (H, W) plane at a time.
#pragma once
#include <stdint.h>

#include "relucore/kernels.h"

namespace relucore {
namespace ops {

// planes = N*C; g.C unused.
template <class T> void max_pool2d(const T* x, T* y, int64_t* idx, i64 planes, const ConvGeom& g);
// Returns false if an index lies outside its H*W plane (dx is then not the gradient).
template <class T> bool max_pool2d_backward(const T* dy, const int64_t* idx, T* dx, i64 planes, i64 out_plane, i64 in_plane);
// The same with each winner's position in its window (kh * kw <= 255), and its gradient.
template <class T> void max_pool2d_pos(const T* x, T* y, uint8_t* pos, i64 planes, const ConvGeom& g);
template <class T> bool max_pool2d_pos_backward(const T* dy, const uint8_t* pos, T* dx, i64 planes, const ConvGeom& g);
template <class T> void avg_pool2d(const T* x, T* y, i64 planes, const ConvGeom& g, bool count_include_pad);
template <class T> void avg_pool2d_backward(const T* dy, T* dx, i64 planes, const ConvGeom& g, bool count_include_pad);

}  // namespace ops
}  // namespace relucore
