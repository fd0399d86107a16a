// im2col / col2im, written once against the vector wrapper. Stride-1 rows are contiguous runs
// (vector copies and adds); stride 2 deinterleaves in registers; other strides gather element-wise.
#include "isa.h"
#include "window.h"

namespace relucore {
namespace RC_NS {
namespace {

// Runs here are short (a 14- to 56-wide image row): whole vectors and one masked vector, inline
// (a memcpy/memset call costs as much as the copy).
template <class T> inline void fill_zero(T* p, i64 n) {
    using V = typename VecOf<T>::type;
    i64 i = 0;
    for (; i + V::L <= n; i += V::L) V::zero().store(p + i);
    if (i < n) V::zero().store_tail(p + i, n - i);
}

template <class T> inline void copy_run(T* dst, const T* src, i64 n) {
    using V = typename VecOf<T>::type;
    i64 i = 0;
    for (; i + V::L <= n; i += V::L) V::load(src + i).store(dst + i);
    if (i < n) V::load_tail(src + i, n - i).store_tail(dst + i, n - i);
}

// Rows here are short (a 28- or 56-wide image): the remainder is one masked vector, not a
// scalar loop, which would otherwise cost as much as the vector part.
template <class T> inline void add_into(T* dst, const T* src, i64 n) {
    using V = typename VecOf<T>::type;
    i64 i = 0;
    for (; i + V::L <= n; i += V::L) (V::load(dst + i) + V::load(src + i)).store(dst + i);
    if (i < n) (V::load_tail(dst + i, n - i) + V::load_tail(src + i, n - i)).store_tail(dst + i, n - i);
}

// dst[i] = src[2i] for i < n, reading no further than src[2(n-1)]: whole vectors while
// src[2 * (i + L)] is still needed (so the second load stays inside), then masked loads of the
// 2r - 1 elements the last r outputs span.
template <class T> inline void copy_run_stride2(T* dst, const T* src, i64 n) {
    using V = typename VecOf<T>::type;
    constexpr i64 L = V::L;
    i64 i = 0;
    for (; i + L < n; i += L) even_lanes(V::load(src + 2 * i), V::load(src + 2 * i + L)).store(dst + i);
    const i64 r = n - i, span = 2 * r - 1;
    if (r <= 0) return;
    const V lo = span >= L ? V::load(src + 2 * i) : V::load_tail(src + 2 * i, span);
    const V hi = span > L ? V::load_tail(src + 2 * i + L, span - L) : V::zero();
    const V v = even_lanes(lo, hi);
    if (r == L) v.store(dst + i);
    else v.store_tail(dst + i, r);
}

// dst[2i] += src[i] for i < n, touching no further than dst[2(n-1)]: src is interleaved with zeros
// (zip) and added to whole vectors of dst; the odd elements get + 0.0, which changes nothing (dst
// starts at +0.0 and a sum that begins at +0.0 is never -0.0; NaN and inf stay).
template <class T> inline void add_run_stride2(T* dst, const T* src, i64 n) {
    using V = typename VecOf<T>::type;
    constexpr i64 L = V::L;
    const V z = V::zero();
    i64 i = 0;
    for (; i + L < n; i += L) {
        const V v = V::load(src + i);
        (V::load(dst + 2 * i) + zip_lo(v, z)).store(dst + 2 * i);
        (V::load(dst + 2 * i + L) + zip_hi(v, z)).store(dst + 2 * i + L);
    }
    const i64 r = n - i, span = 2 * r - 1;  // the last r outputs span 2r - 1 elements of dst
    if (r <= 0) return;
    const V v = V::load_tail(src + i, r);
    T* d = dst + 2 * i;
    if (span >= L) (V::load(d) + zip_lo(v, z)).store(d);
    else (V::load_tail(d, span) + zip_lo(v, z)).store_tail(d, span);
    if (span > L) (V::load_tail(d + L, span - L) + zip_hi(v, z)).store_tail(d + L, span - L);
}

// The output rows [ohA, ohB) whose input row exists for kernel row i, stride 1; the column range
// [sA, sB) of those rows that maps inside the plane (col + shift in [0, H*W)).
inline void shifted_span(const ConvGeom& g, i64 i, i64 shift, i64& ohA, i64& ohB, i64& sA, i64& sB) {
    ohA = g.ph - i * g.dh;
    ohB = g.H + g.ph - i * g.dh;
    ohA = ohA < 0 ? 0 : (ohA > g.OH ? g.OH : ohA);
    ohB = ohB > g.OH ? g.OH : (ohB < ohA ? ohA : ohB);
    const i64 cA = ohA * g.W, cB = ohB * g.W;
    sA = cA > -shift ? cA : (-shift < cB ? -shift : cB);
    sB = cB < g.H * g.W - shift ? cB : (g.H * g.W - shift > sA ? g.H * g.W - shift : sA);
}

// Stride 1 with OW == W: column col = oh*W + ow of row (c, i, j) reads x[c] at col + shift, so all
// output rows whose input row exists are one contiguous copy; then the few entries whose input
// column lies outside [0, W) (they read a neighbouring row) are zeroed, lo and W - hi per row.
template <class T>
void shifted_row(const T* xc, const ConvGeom& g, i64 i, i64 j, i64 lo, i64 hi, i64 j0, i64 j1, T* row) {
    const i64 W = g.W, shift = (i * g.dh - g.ph) * W + (j * g.dw - g.pw);
    i64 ohA, ohB, pA, pB;  // the whole rows' span, then clipped to [j0, j1)
    shifted_span(g, i, shift, ohA, ohB, pA, pB);
    const i64 cA = ohA * W > j0 ? (ohA * W < j1 ? ohA * W : j1) : j0;
    const i64 cB = ohB * W < j1 ? (ohB * W > cA ? ohB * W : cA) : j1;
    const i64 sA = pA > cA ? (pA < cB ? pA : cB) : cA;
    const i64 sB = pB < cB ? (pB > sA ? pB : sA) : cB;
    fill_zero(row, cA - j0);
    fill_zero(row + (cA - j0), sA - cA);
    copy_run(row + (sA - j0), xc + sA + shift, sB - sA);
    fill_zero(row + (sB - j0), cB - sB);
    fill_zero(row + (cB - j0), j1 - cB);
    if (lo == 0 && hi == W) return;
    for (i64 oh = cA / W; oh * W < cB; ++oh) {
        const i64 b = oh * W;  // entries [b, b + lo) and [b + hi, b + W), clipped to [cA, cB)
        if (b >= cA && b + W <= cB) {  // a whole output row (all but a block's first and last): no clipping
            T* r = row + (b - j0);
            for (i64 k = 0; k < lo; ++k) r[k] = T(0);
            for (i64 k = hi; k < W; ++k) r[k] = T(0);
            continue;
        }
        for (i64 col = b > cA ? b : cA; col < b + lo && col < cB; ++col) row[col - j0] = T(0);
        for (i64 col = b + hi > cA ? b + hi : cA; col < b + W && col < cB; ++col) row[col - j0] = T(0);
    }
}

}  // namespace

// Rows [r0, r1) x columns [j0, j1) of one image's column matrix (C*kh*kw, OH*OW) into dst (row
// stride ldd): each row is a run per output row, zero outside x, a copy inside (stride 1).
template <class T>
void im2col_block(const T* x, const ConvGeom& g, i64 r0, i64 r1, i64 j0, i64 j1, T* dst, i64 ldd) {
    if (j0 >= j1) return;  // also keeps OW == 0 out of the divisions below
    const i64 K = g.kh * g.kw;
    for (i64 r = r0; r < r1; ++r) {
        const i64 c = r / K, i = (r % K) / g.kw, j = r % g.kw;
        const T* xc = x + c * g.H * g.W;
        T* row = dst + (r - r0) * ldd;
        i64 lo, hi;
        valid_range(g.OW, g.sw, g.pw, j * g.dw, g.W, lo, hi);
        if (g.sh == 1 && g.sw == 1 && g.OW == g.W) {  // "same" width: one shifted copy per row
            shifted_row(xc, g, i, j, lo, hi, j0, j1, row);
            continue;
        }
        // One division per row, not per run: runs are short (a 32-wide output row of the stem).
        for (i64 col = j0, oh = j0 / g.OW, a = j0 - oh * g.OW; col < j1; ++oh, a = 0) {  // a: first ow
            const i64 b = j1 - oh * g.OW < g.OW ? j1 - oh * g.OW : g.OW;      // ow end in this row
            T* seg = row + (col - j0);                                         // seg[ow - a]
            const i64 ih = oh * g.sh - g.ph + i * g.dh;
            if (ih < 0 || ih >= g.H) {
                fill_zero(seg, b - a);
            } else {
                const i64 base = ih * g.W + j * g.dw - g.pw;  // input index of ow = 0 (may lie left of the row)
                const i64 l = lo < a ? a : (lo > b ? b : lo), h = hi > b ? b : (hi < l ? l : hi);
                fill_zero(seg, l - a);
                if (g.sw == 1) copy_run(seg + (l - a), xc + base + l, h - l);
                else if (g.sw == 2) copy_run_stride2(seg + (l - a), xc + base + 2 * l, h - l);
                else
                    for (i64 ow = l; ow < h; ++ow) seg[ow - a] = xc[base + ow * g.sw];
                fill_zero(seg + (h - a), b - h);
            }
            col = oh * g.OW + b;
        }
    }
}
template void im2col_block<float>(const float*, const ConvGeom&, i64, i64, i64, i64, float*, i64);
template void im2col_block<double>(const double*, const ConvGeom&, i64, i64, i64, i64, double*, i64);

namespace {

template <class T>
void im2col(const T* x, T* cols, const ConvGeom& g, i64 r0, i64 r1) {
    const i64 OHW = g.OH * g.OW;
    im2col_block(x, g, r0, r1, 0, OHW, cols + r0 * OHW, OHW);
}

template <class T>
void col2im(const T* cols, T* x, const ConvGeom& g, i64 c0, i64 c1) {
    const i64 K = g.kh * g.kw, OHW = g.OH * g.OW;
    for (i64 c = c0; c < c1; ++c) {
        T* xc = x + c * g.H * g.W;
        for (i64 k = 0; k < K; ++k) {
            const i64 i = k / g.kw, j = k % g.kw;
            const T* in = cols + (c * K + k) * OHW;
            i64 lo, hi;
            valid_range(g.OW, g.sw, g.pw, j * g.dw, g.W, lo, hi);
            for (i64 oh = 0; oh < g.OH; ++oh, in += g.OW) {
                const i64 ih = oh * g.sh - g.ph + i * g.dh;
                if (ih < 0 || ih >= g.H) continue;
                const i64 base = ih * g.W + j * g.dw - g.pw;
                if (g.sw == 1) add_into(xc + base + lo, in + lo, hi - lo);
                else if (g.sw == 2) add_run_stride2(xc + base + 2 * lo, in + lo, hi - lo);
                else
                    for (i64 ow = lo; ow < hi; ++ow) xc[base + ow * g.sw] += in[ow];
            }
        }
    }
}

// col2im for a column buffer the caller owns (conv2d_backward's): with stride 1 and OW == W, each
// row's entries whose input column lies outside [0, W) are zeroed, then the row is added as one
// shifted run. Other shapes: col2im.
template <class T>
void col2im_owned(T* cols, T* x, const ConvGeom& g, i64 c0, i64 c1) {
    if (!(g.sh == 1 && g.sw == 1 && g.OW == g.W)) return col2im(cols, x, g, c0, c1);
    const i64 K = g.kh * g.kw, OHW = g.OH * g.OW, W = g.W;
    for (i64 c = c0; c < c1; ++c) {
        T* xc = x + c * g.H * W;
        for (i64 k = 0; k < K; ++k) {
            const i64 i = k / g.kw, j = k % g.kw;
            T* row = cols + (c * K + k) * OHW;
            i64 lo, hi, ohA, ohB, sA, sB;
            valid_range(g.OW, 1, g.pw, j * g.dw, W, lo, hi);
            const i64 shift = (i * g.dh - g.ph) * W + (j * g.dw - g.pw);
            shifted_span(g, i, shift, ohA, ohB, sA, sB);
            if (lo > 0 || hi < W)
                for (i64 oh = ohA; oh < ohB; ++oh) {
                    fill_zero(row + oh * W, lo);
                    fill_zero(row + oh * W + hi, W - hi);
                }
            add_into(xc + sA + shift, row + sA, sB - sA);
        }
    }
}

}  // namespace

template <class T> void fill_im2col(ConvKernels<T>& k) {
    k.im2col = im2col<T>;
    k.col2im = col2im<T>;
    k.col2im_owned = col2im_owned<T>;
}
template void fill_im2col<float>(ConvKernels<float>&);
template void fill_im2col<double>(ConvKernels<double>&);

}  // namespace RC_NS
}  // namespace relucore
