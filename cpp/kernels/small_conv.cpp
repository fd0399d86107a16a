// Direct stride-1 convolution for layers with few taps per output (C*kh*kw small, as a network's
// first layer), written once against the vector wrapper. A GEMM would see a
// depth of a handful of taps: building and packing its column matrix costs more than its
// multiply-adds, and its tiles store their accumulators after a few FMAs each. Here each output
// vector sums its taps in registers for a group of filters at a time, reading a zero-padded copy of
// the input rows (the caller's), so there are no bounds checks in the loops.
#include "isa.h"
#include "act_ops.h"

namespace relucore {
namespace RC_NS {
namespace {

constexpr int G = kSmallConvGroup;
// Filters summed at once: two output rows by GS filters of accumulators, plus two input vectors and
// a broadcast, fit the register file (2*8+3 of 32 zmm, 2*4+3 of 16 ymm).
#if defined(RC_ISA_AVX512)
constexpr int GS = 8;
#else
constexpr int GS = 4;
#endif

// Filters [f0 + h, f0 + h + GS) of output rows oh, oh + 1 (the second only if `two`), columns
// [ow, ow + n): each input vector loaded once per tap serves both rows (row oh + 1 reads the next
// padded row at the same tap).
template <class T, class Op>
__attribute__((always_inline)) inline void tile(const T* xr, i64 wp, i64 rp, const T* wg, const T* bias, T* yo,
                                                i64 OHW, i64 OW, const ConvGeom& g, int h, int gn, i64 n, bool two,
                                                const Op& op) {
    using V = typename VecOf<T>::type;
    V a0[GS], a1[GS];
    for (int k = 0; k < GS; ++k) a0[k] = a1[k] = V::zero();
    const T* w = wg + h;
    for (i64 c = 0; c < g.C; ++c)
        for (i64 i = 0; i < g.kh; ++i) {
            const T* x0 = xr + (c * rp + i) * wp;
            for (i64 j = 0; j < g.kw; ++j, w += G) {
                const V v0 = V::load(x0 + j), v1 = V::load(x0 + wp + j);
                for (int k = 0; k < GS; ++k) {
                    const V b = V::set1(w[k]);
                    a0[k] = mul_add(b, v0, a0[k]);
                    a1[k] = mul_add(b, v1, a1[k]);
                }
            }
        }
    // as the GEMM path: the taps' sum, then the bias, then the activation. Unrolled, so the
    // accumulators stay in registers (a loop here kept them in a stack array: 16 spills a tile).
#pragma GCC unroll 8
    for (int k = 0; k < GS; ++k) {
        if (h + k >= gn) break;
        const V bv = bias ? V::set1(bias[h + k]) : V::zero();
        T* y0 = yo + (h + k) * OHW;
        const V r0 = op.fwd(bias ? a0[k] + bv : a0[k]);
        const V r1 = op.fwd(bias ? a1[k] + bv : a1[k]);
        if (n == V::L) {
            r0.store(y0);
            if (two) r1.store(y0 + OW);
        } else {
            r0.store_tail(y0, n);
            if (two) r1.store_tail(y0 + OW, n);
        }
    }
}

// Output rows [oh0, oh1) of one image: see ConvKernels::small_conv_rows.
template <class T, class Op>
void rows(const T* xp, i64 wp, i64 rp, const T* wt, const T* bias, T* y, i64 F, const ConvGeom& g, i64 oh0,
          i64 oh1, const Op& op) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    const i64 K = g.C * g.kh * g.kw, OHW = g.OH * g.OW;
    for (i64 f0 = 0; f0 < F; f0 += G) {
        const int gn = F - f0 < G ? (int)(F - f0) : G;
        const T* wg = wt + (f0 / G) * K * G;
        for (i64 oh = oh0; oh < oh1; oh += 2)
            for (i64 ow = 0; ow < g.OW; ow += L) {
                const i64 n = g.OW - ow < L ? g.OW - ow : L;
                const T* xr = xp + (oh - oh0) * wp + ow;
                T* yo = y + f0 * OHW + oh * g.OW + ow;
                for (int h = 0; h < gn; h += GS)
                    tile(xr, wp, rp, wg, bias ? bias + f0 : nullptr, yo, OHW, g.OW, g, h, gn, n, oh + 1 < oh1, op);
            }
    }
}

template <class T>
void small_conv_rows(const T* xp, i64 wp, i64 rp, const T* wt, const T* bias, T* y, i64 F, const ConvGeom& g,
                     i64 oh0, i64 oh1, int act, T param) {
    with_act(act, param, [&](auto op) { rows(xp, wp, rp, wt, bias, y, F, g, oh0, oh1, op); });
}

}  // namespace

template <class T> void fill_small_conv(ConvKernels<T>& k) { k.small_conv_rows = small_conv_rows<T>; }
template void fill_small_conv<float>(ConvKernels<float>&);
template void fill_small_conv<double>(ConvKernels<double>&);

}  // namespace RC_NS
}  // namespace relucore
