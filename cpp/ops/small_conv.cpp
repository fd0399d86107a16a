// Stride-1 convolutions with few taps per output: work items are blocks of output rows of one image,
// each reading a zero-padded copy of its input rows from this thread's scratch.
#include "small_conv.h"

#include <new>
#include <vector>

#include "conv_algo.h"
#include "items.h"
#include "norm_common.h"
#include "parallel.h"
#include "scratch.h"
#include "relucore/dispatch.h"
#include "relucore/gemm.h"

namespace relucore {
namespace ops {
namespace {

// Where the direct kernel measured faster than the GEMM path (docs/performance.md, "Convolution with
// few taps"): up to 27 taps per output (3 channels of 3x3), and at most two filters per tap (64
// filters over 9 taps ran 1.1-1.9x slower: the GEMM's tiles reuse each column more). It sums as
// relucore's GEMM does (the same bits), so it stands in for that GEMM only: not for the BLAS, and
// not where Winograd or the FFT is forced.
constexpr i64 kMaxTaps = 27;

bool applies(const Conv2dShape& s) {
    const ConvGeom& g = s.g;
    const i64 K = g.C * g.kh * g.kw;
    return s.groups == 1 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && K <= kMaxTaps && s.F <= 2 * K &&
           gemm_uses_own() && current_settings().conv_algo != kAlgoWinograd &&
           current_settings().conv_algo != kAlgoFft;
}

// Rows [oh0, oh0 + rows) of the padded input (see ConvKernels::small_conv_rows) of image x (C, H, W).
template <class T> void pad_rows(const T* x, T* xp, i64 wp, i64 rows, i64 oh0, const ConvGeom& g) {
    for (i64 c = 0; c < g.C; ++c)
        for (i64 r = 0; r < rows; ++r) {
            T* d = xp + (c * rows + r) * wp;
            const i64 ih = oh0 - g.ph + r;
            if (ih < 0 || ih >= g.H) {
                zero(d, wp);
                continue;
            }
            zero(d, g.pw);
            const T* src = x + (c * g.H + ih) * g.W;
            for (i64 q = 0; q < g.W; ++q) d[g.pw + q] = src[q];
            zero(d + g.pw + g.W, wp - g.pw - g.W);
        }
}

}  // namespace

template <class T>
bool small_conv_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param,
                        double* sums, bool* summed) {
    if (!applies(s)) return false;
    const ConvGeom& g = s.g;
    constexpr int G = kSmallConvGroup;
    const i64 K = g.C * g.kh * g.kw, OHW = g.OH * g.OW, groups = (s.F + G - 1) / G;
    std::vector<T> wt((size_t)(groups * K * G), T(0));  // tap-major groups of G filters
    for (i64 f = 0; f < s.F; ++f)
        for (i64 t = 0; t < K; ++t) wt[(size_t)(((f / G) * K + t) * G + f % G)] = w[f * K + t];
    const i64 wp = (g.OW + 15) / 16 * 16 + g.kw - 1;
    // blocks of rows so that every thread has a few items when the batch is small
    const int nt = threads_for(s.N * s.F * OHW * K, kGrainFlops);
    i64 blocks = s.N >= 4 * nt ? 1 : (4 * nt + s.N - 1) / s.N;
    blocks = blocks < g.OH ? blocks : g.OH;
    const i64 rb = (g.OH + blocks - 1) / blocks, rows = rb + g.kh;  // one more for the row pairs
    blocks = (g.OH + rb - 1) / rb;
    const auto k = conv_kernels<T>().small_conv_rows;
    // the batch norm's sums of each plane right after its image (whole images only): image 0 first,
    // as its first values are every channel's shift
    const bool moments = sums && blocks == 1 && act == kNormNone;
    const NormKernels<T>* nk = moments ? &norm_kernels<T>() : nullptr;
    const BatchNormShape planes{s.N, s.F, OHW};
    auto run = [&](i64 item) {
        const i64 n = item / blocks, oh0 = item % blocks * rb, oh1 = oh0 + rb < g.OH ? oh0 + rb : g.OH;
        T* xp = scratch<T>(kColumns, g.C * rows * wp);
        if (!xp) throw std::bad_alloc();
        pad_rows(x + n * s.C * s.H * s.W, xp, wp, rows, oh0, g);
        k(xp, wp, rows, wt.data(), bias, y + n * s.F * OHW, s.F, g, oh0, oh1, act, param);
        if (moments)
            for (i64 f = 0; f < s.F; ++f) norm_detail::run_moments(*nk, y, planes, n * s.F + f, sums, sums + s.N * s.F);
    };
    if (moments) {
        run(0);
        parallel_runs(s.N - 1, nt, [&](i64 item) { run(item + 1); });
        *summed = true;
    } else {
        parallel_runs(s.N * blocks, nt, run);
    }
    return true;
}

#define RC_SMALL_CONV(T) \
    template bool small_conv_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&, int, T, double*, bool*);
RC_SMALL_CONV(float)
RC_SMALL_CONV(double)
#undef RC_SMALL_CONV

}  // namespace ops
}  // namespace relucore
