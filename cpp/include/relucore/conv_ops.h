// Convolution, pooling and linear layers over whole NCHW batches (contiguous buffers). Threads over
// images (or over rows of one image's column matrix for batch 1); GEMM by the BLAS.
#pragma once
#include <stdint.h>

#include "relucore/kernels.h"

namespace relucore {
namespace ops {

struct Conv2dShape {
    i64 N, C, H, W;  // input
    i64 F;           // output channels
    i64 groups;
    ConvGeom g;      // per group: g.C = C / groups, kernel, stride, padding, dilation, OH, OW
};

// cols (N, C*kh*kw, OH*OW) <- x (N, C, H, W) with g.C = C.
template <class T> void im2col(const T* x, T* cols, i64 N, const ConvGeom& g);
// x (N, C, H, W) = col2im(cols); overwrites x.
template <class T> void col2im(const T* cols, T* x, i64 N, const ConvGeom& g);

// y (N, F, OH, OW) = conv(x, w) + bias (bias may be null).
template <class T> void conv2d(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s);
// dx, dw, db (each may be null to skip it) from dy, x, w.
template <class T>
void conv2d_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, const Conv2dShape& s);

// planes = N*C; g.C unused.
template <class T> void max_pool2d(const T* x, T* y, int64_t* idx, i64 planes, const ConvGeom& g);
// Returns false if an index lies outside its H*W plane (dx is then not the gradient).
template <class T> bool max_pool2d_backward(const T* dy, const int64_t* idx, T* dx, i64 planes, i64 out_plane, i64 in_plane);
template <class T> void avg_pool2d(const T* x, T* y, i64 planes, const ConvGeom& g, bool count_include_pad);
template <class T> void avg_pool2d_backward(const T* dy, T* dx, i64 planes, const ConvGeom& g, bool count_include_pad);

// y (M, out) = x (M, in) * w^T (in, out) + bias.
template <class T> void linear(const T* x, const T* w, const T* bias, T* y, i64 M, i64 in, i64 out);
template <class T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, i64 M, i64 in, i64 out);

}  // namespace ops
}  // namespace relucore
