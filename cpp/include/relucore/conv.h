// Convolution over whole NCHW batches (contiguous buffers): im2col/col2im, conv2d and its
// gradients, and the stride-1 algorithm setting. Threads over images (or over rows of one
// image's column matrix for batch 1).
#pragma once
#include <stdint.h>

#include <string>

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

// y (N, F, OH, OW) = act(conv(x, w) + bias) (bias may be null; act a NormAct, param its slope or
// alpha), the activation applied in the pass that writes y.
template <class T>
void conv2d(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act = kNormNone, T param = T(0));
// conv2d without activation that also gives y's per-plane sums as a following batch norm's training
// statistics take them (sums: 2 x N*F, see batch_norm_max_pool_forward's run_sums), computed while
// each image is in cache, where the few-tap direct forward runs whole images; false (sums not
// written, y written) elsewhere.
template <class T>
bool conv2d_moments(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, double* sums);
// dx, dw, db (each may be null to skip it) from dy, x, w.
template <class T>
void conv2d_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, const Conv2dShape& s);
// dbias[f] from the sums of dy's planes (sums[n * F + f], conv_kernels<T>().sum of plane (n, f)),
// added over the images in order in double: how conv2d_backward sums a bias gradient, and any pass
// that hands it plane sums instead (the batch norm + pool backward) gives the same bits.
template <class T> void bias_from_plane_sums(const double* sums, i64 N, i64 F, T* db) {
    for (i64 f = 0; f < F; ++f) {
        double acc = 0;
        for (i64 n = 0; n < N; ++n) acc += sums[n * F + f];
        db[f] = (T)acc;
    }
}
// True if conv2d_backward sums this layer's dweight by dot products along the pixels (one group,
// at most kDotFormTaps column rows, our GEMM, neither FFTs nor Winograd possible): the form
// DweightPlanes (relucore/dweight_planes.h) reproduces bit for bit from dy plane by plane.
template <class T> bool dweight_is_dot_form(const Conv2dShape& s);

// Stride-1 layers: "auto" (Winograd F(2x2, 3x3) when 3x3, stride 1, dilation 1, not depthwise,
// >= 16 channels in and out per group, >= 48 tiles in the batch and >= 2^23 direct multiply-adds;
// FFTs for float64 layers with one group and >= 25 taps where the estimate beats the GEMM, see
// ops/fft_conv.cpp), "gemm" (neither), "winograd" (every 3x3 stride-1 layer, for tests) or "fft"
// (every stride-1, dilation-1 layer with one group). False for an unknown name.
bool set_conv_algo(const std::string& name);
std::string conv_algo();

}  // namespace ops
}  // namespace relucore
