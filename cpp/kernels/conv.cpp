// im2col / col2im and the pooling window sweeps, written once against the vector wrapper.
// Stride-1 rows are contiguous runs (vector copies and adds); other strides gather element-wise.
#include "isa.h"

namespace relucore {
namespace RC_NS {
namespace {

// The output columns [lo, hi) whose input column ow*s - p + off lies inside [0, W).
inline void valid_range(i64 OW, i64 s, i64 p, i64 off, i64 W, i64& lo, i64& hi) {
    const i64 start = off - p;  // input column of ow = 0
    lo = start >= 0 ? 0 : (-start + s - 1) / s;
    const i64 last = W - 1 - start;  // ow*s <= last
    hi = last < 0 ? 0 : last / s + 1;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
}

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

// PyTorch's rule over one window: start at its first position, take any larger value or a NaN.
// KH/KW > 0 fix the window size at compile time (unrolled); 0 reads it from g.
template <int KH, int KW, class T>
inline void window_max(const T* x, i64 h0, i64 w0, const ConvGeom& g, T& best, i64& at) {
    const i64 kh = KH ? KH : g.kh, kw = KW ? KW : g.kw;
    at = h0 * g.W + w0;
    best = -__builtin_inf();
    for (i64 i = 0; i < kh; ++i)
        for (i64 j = 0; j < kw; ++j) {
            const i64 p = (h0 + i * g.dh) * g.W + w0 + j * g.dw;
            const T v = x[p];
            const bool take = (v > best) | (v != v);  // selects, not branches: random data mispredicts
            best = take ? v : best;
            at = take ? p : at;
        }
}

// First tap i with start + i*d >= 0, and one past the last with start + i*d < size (at most k).
inline i64 tap_from(i64 start, i64 d) { return start >= 0 ? 0 : (-start + d - 1) / d; }
inline i64 tap_to(i64 start, i64 d, i64 size, i64 k) {
    const i64 n = start >= size ? 0 : (size - start + d - 1) / d;
    return n < k ? n : k;
}

template <int KH, int KW, class T>
void max_pool_sized(const T* x, T* y, int64_t* idx, const ConvGeom& g) {
    // Outputs whose window lies wholly inside the image need no bounds checks.
    i64 lo_h, hi_h, lo_w, hi_w;
    valid_range(g.OH, g.sh, g.ph, 0, g.H - (g.kh - 1) * g.dh, lo_h, hi_h);
    valid_range(g.OW, g.sw, g.pw, 0, g.W - (g.kw - 1) * g.dw, lo_w, hi_w);
    for (i64 oh = 0; oh < g.OH; ++oh)
        for (i64 ow = 0; ow < g.OW; ++ow) {
            const i64 h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
            T best;
            i64 at;
            if (oh >= lo_h && oh < hi_h && ow >= lo_w && ow < hi_w) {
                window_max<KH, KW>(x, h0, w0, g, best, at);
            } else {
                best = -__builtin_inf();
                at = -1;
                // only the taps inside the image: a window may be mostly padding (kernel 2**40)
                const i64 i0 = tap_from(h0, g.dh), i1 = tap_to(h0, g.dh, g.H, g.kh);
                const i64 j0 = tap_from(w0, g.dw), j1 = tap_to(w0, g.dw, g.W, g.kw);
                for (i64 i = i0; i < i1; ++i) {
                    const i64 h = h0 + i * g.dh;
                    for (i64 j = j0; j < j1; ++j) {
                        const i64 w = w0 + j * g.dw;
                        const T v = x[h * g.W + w];
                        if (at < 0) at = h * g.W + w;
                        if (v > best || v != v) best = v, at = h * g.W + w;
                    }
                }
            }
            y[oh * g.OW + ow] = best;
            idx[oh * g.OW + ow] = at;
        }
}

// 2x2 windows, stride 2, no padding, dilation 1 (the usual pool): L outputs at a time from two
// vector pairs per input row (even/odd lanes are the window's left/right column). The scan order
// (0,0), (0,1), (1,0), (1,1) and PyTorch's rule (a larger value or a NaN takes over) are selects,
// so ties, NaN and -inf give window_max's values and indices; the row's remainder uses it.
template <class T>
void max_pool_2x2s2(const T* x, T* y, int64_t* idx, const ConvGeom& g) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    const i64 W = g.W;
    for (i64 oh = 0; oh < g.OH; ++oh) {
        const T* r0 = x + 2 * oh * W;
        const T* r1 = r0 + W;
        T* yo = y + oh * g.OW;
        int64_t* io = idx + oh * g.OW;
        i64 ow = 0;
        for (; ow + L <= g.OW && 2 * (ow + L) <= W; ow += L) {  // loads stay inside both rows
            const V a0 = V::load(r0 + 2 * ow), a1 = V::load(r0 + 2 * ow + L);
            const V b0 = V::load(r1 + 2 * ow), b1 = V::load(r1 + 2 * ow + L);
            const V v[4] = {even_lanes(a0, a1), odd_lanes(a0, a1), even_lanes(b0, b1), odd_lanes(b0, b1)};
            V best = V::set1(-__builtin_inf()), code = V::zero();
            for (int q = 0; q < 4; ++q) {
                const uint64_t take = bits(v[q], gt(v[q], best)) | ~bits(v[q], eq(v[q], v[q]));
                const auto m = from_bits(v[q], take);
                best = select(m, v[q], best);
                code = select(m, V::set1(T(q)), code);
            }
            best.store(yo + ow);
            T c[L];
            code.store(c);
            for (int l = 0; l < L; ++l) {
                const int q = (int)c[l];
                io[ow + l] = (2 * oh + (q >> 1)) * W + 2 * (ow + l) + (q & 1);
            }
        }
        for (; ow < g.OW; ++ow) window_max<2, 2>(x, 2 * oh, 2 * ow, g, yo[ow], io[ow]);
    }
}

template <class T>
void max_pool(const T* x, T* y, int64_t* idx, const ConvGeom& g) {
    if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1)
        return max_pool_2x2s2(x, y, idx, g);
    if (g.kh == 2 && g.kw == 2) return max_pool_sized<2, 2>(x, y, idx, g);
    if (g.kh == 3 && g.kw == 3) return max_pool_sized<3, 3>(x, y, idx, g);
    max_pool_sized<0, 0>(x, y, idx, g);
}

// Window [h0, h1) x [w0, w1) clipped to the padded and to the real image, and its divisor.
inline i64 avg_window(const ConvGeom& g, i64 oh, i64 ow, int include_pad, i64& h0, i64& h1, i64& w0, i64& w1) {
    h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    h1 = h0 + g.kh < g.H + g.ph ? h0 + g.kh : g.H + g.ph;
    w1 = w0 + g.kw < g.W + g.pw ? w0 + g.kw : g.W + g.pw;
    const i64 padded = (h1 - h0) * (w1 - w0);
    h0 = h0 < 0 ? 0 : h0, w0 = w0 < 0 ? 0 : w0;
    h1 = h1 > g.H ? g.H : h1, w1 = w1 > g.W ? g.W : w1;
    return include_pad ? padded : (h1 - h0) * (w1 - w0);
}

template <class T>
void avg_pool(const T* x, T* y, const ConvGeom& g, int include_pad) {
    for (i64 oh = 0; oh < g.OH; ++oh)
        for (i64 ow = 0; ow < g.OW; ++ow) {
            i64 h0, h1, w0, w1;
            const i64 div = avg_window(g, oh, ow, include_pad, h0, h1, w0, w1);
            T s = T(0);
            for (i64 h = h0; h < h1; ++h)
                for (i64 w = w0; w < w1; ++w) s += x[h * g.W + w];
            y[oh * g.OW + ow] = s / T(div);
        }
}

template <class T>
void avg_pool_backward(const T* dy, T* dx, const ConvGeom& g, int include_pad) {
    for (i64 oh = 0; oh < g.OH; ++oh)
        for (i64 ow = 0; ow < g.OW; ++ow) {
            i64 h0, h1, w0, w1;
            const i64 div = avg_window(g, oh, ow, include_pad, h0, h1, w0, w1);
            const T v = dy[oh * g.OW + ow] / T(div);
            for (i64 h = h0; h < h1; ++h)
                for (i64 w = w0; w < w1; ++w) dx[h * g.W + w] += v;
        }
}

template <class T> inline void axpy(T* y, const T* x, T a, i64 n) {
    using V = typename VecOf<T>::type;
    const V av = V::set1(a);
    i64 i = 0;
    for (; i + V::L <= n; i += V::L) mul_add(av, V::load(x + i), V::load(y + i)).store(y + i);
    if (i < n) mul_add(av, V::load_tail(x + i, n - i), V::load_tail(y + i, n - i)).store_tail(y + i, n - i);
}

template <class T> inline T dot(const T* a, const T* b, i64 n) {
    using V = typename VecOf<T>::type;
    V acc = V::zero();
    i64 i = 0;
    for (; i + V::L <= n; i += V::L) acc = mul_add(V::load(a + i), V::load(b + i), acc);
    if (i < n) acc = mul_add(V::load_tail(a + i, n - i), V::load_tail(b + i, n - i), acc);
    return reduce_add(acc);
}

// Calls f(oh, i, j, ih, base, lo, hi) for every kernel tap (i, j) of output row oh that touches
// the image: output columns [lo, hi) read input index base + ow * sw.
template <class F> inline void for_taps(const ConvGeom& g, F&& f) {
    for (i64 j = 0; j < g.kw; ++j) {
        i64 lo, hi;
        valid_range(g.OW, g.sw, g.pw, j * g.dw, g.W, lo, hi);
        if (lo >= hi) continue;
        for (i64 oh = 0; oh < g.OH; ++oh)
            for (i64 i = 0; i < g.kh; ++i) {
                const i64 ih = oh * g.sh - g.ph + i * g.dh;
                if (ih >= 0 && ih < g.H) f(oh, i, j, ih * g.W + j * g.dw - g.pw, lo, hi);
            }
    }
}

// Stride 1: each output vector accumulates every tap in a register and is stored once (the
// per-tap sweep below re-loads and re-stores the output row once per tap). Columns whose taps
// all fall inside the image take that path; the few edge columns are summed one by one.
template <class T>
void plane_conv_stride1(const T* x, const T* w, T* y, const ConvGeom& g) {
    using V = typename VecOf<T>::type;
    i64 lo = 0, hi = g.OW;
    for (i64 j = 0; j < g.kw; ++j) {
        i64 l, h;
        valid_range(g.OW, 1, g.pw, j * g.dw, g.W, l, h);
        lo = l > lo ? l : lo;
        hi = h < hi ? h : hi;
    }
    if (lo > hi) lo = hi = 0;
    for (i64 oh = 0; oh < g.OH; ++oh) {
        T* yr = y + oh * g.OW;
        auto edge = [&](i64 ow) {
            T s = yr[ow];
            for (i64 i = 0; i < g.kh; ++i) {
                const i64 ih = oh - g.ph + i * g.dh;
                if (ih < 0 || ih >= g.H) continue;
                for (i64 j = 0; j < g.kw; ++j) {
                    const i64 iw = ow - g.pw + j * g.dw;
                    if (iw >= 0 && iw < g.W) s += w[i * g.kw + j] * x[ih * g.W + iw];
                }
            }
            yr[ow] = s;
        };
        for (i64 ow = 0; ow < lo; ++ow) edge(ow);
        i64 ow = lo;
        for (; ow < hi; ow += V::L) {  // the last vector of the interior is a masked one
            const i64 n = hi - ow < V::L ? hi - ow : V::L;
            V acc = n == V::L ? V::load(yr + ow) : V::load_tail(yr + ow, n);
            for (i64 i = 0; i < g.kh; ++i) {
                const i64 ih = oh - g.ph + i * g.dh;
                if (ih < 0 || ih >= g.H) continue;
                const T* xr = x + ih * g.W + ow - g.pw;
                for (i64 j = 0; j < g.kw; ++j) {
                    const V xv = n == V::L ? V::load(xr + j * g.dw) : V::load_tail(xr + j * g.dw, n);
                    acc = mul_add(V::set1(w[i * g.kw + j]), xv, acc);
                }
            }
            if (n == V::L) acc.store(yr + ow); else acc.store_tail(yr + ow, n);
        }
        for (ow = hi; ow < g.OW; ++ow) edge(ow);
    }
}

template <class T>
void plane_conv(const T* x, const T* w, T* y, const ConvGeom& g) {
    if (g.sh == 1 && g.sw == 1) return plane_conv_stride1(x, w, y, g);
    for_taps(g, [&](i64 oh, i64 i, i64 j, i64 base, i64 lo, i64 hi) {
        T* yr = y + oh * g.OW;
        const T wv = w[i * g.kw + j];
        if (g.sw == 1) axpy(yr + lo, x + base + lo, wv, hi - lo);
        else
            for (i64 ow = lo; ow < hi; ++ow) yr[ow] += wv * x[base + ow * g.sw];
    });
}

template <class T>
void plane_conv_backward_input(const T* dy, const T* w, T* dx, const ConvGeom& g) {
    // Stride 1: the adjoint is a stride-1 convolution of dy with the flipped kernel and padding
    // d*(k-1) - p (negative padding crops), so it takes the register-accumulating path.
    constexpr i64 kMaxTaps = 256;
    if (g.sh == 1 && g.sw == 1 && g.kh * g.kw <= kMaxTaps) {
        T flipped[kMaxTaps];
        const i64 K = g.kh * g.kw;
        for (i64 t = 0; t < K; ++t) flipped[t] = w[K - 1 - t];
        ConvGeom a = g;
        a.H = g.OH, a.W = g.OW, a.OH = g.H, a.OW = g.W;
        a.ph = g.dh * (g.kh - 1) - g.ph, a.pw = g.dw * (g.kw - 1) - g.pw;
        return plane_conv_stride1(dy, flipped, dx, a);
    }
    for_taps(g, [&](i64 oh, i64 i, i64 j, i64 base, i64 lo, i64 hi) {
        const T* d = dy + oh * g.OW;
        const T wv = w[i * g.kw + j];
        if (g.sw == 1) axpy(dx + base + lo, d + lo, wv, hi - lo);
        else
            for (i64 ow = lo; ow < hi; ++ow) dx[base + ow * g.sw] += wv * d[ow];
    });
}

template <class T>
void plane_conv_backward_weight(const T* dy, const T* x, T* dw, const ConvGeom& g) {
    for_taps(g, [&](i64 oh, i64 i, i64 j, i64 base, i64 lo, i64 hi) {
        const T* d = dy + oh * g.OW;
        T s;
        if (g.sw == 1) s = dot(d + lo, x + base + lo, hi - lo);
        else {
            s = T(0);
            for (i64 ow = lo; ow < hi; ++ow) s += d[ow] * x[base + ow * g.sw];
        }
        dw[i * g.kw + j] += s;
    });
}

// Four vector accumulators: the adds are independent (a scalar loop is one 4-cycle chain).
template <class T> double sum(const T* x, i64 n) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    V acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    i64 i = 0;
    for (; i + 4 * L <= n; i += 4 * L)
        for (int u = 0; u < 4; ++u) acc[u] = acc[u] + V::load(x + i + u * L);
    for (; i + L <= n; i += L) acc[0] = acc[0] + V::load(x + i);
    if (i < n) acc[1] = acc[1] + V::load_tail(x + i, n - i);
    return (double)reduce_add((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

}  // namespace

template <class T> T max_abs(const T* x, i64 n) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    V m = V::zero(), nan = V::zero();  // nan collects x != x lanes as nonzero
    i64 i = 0;
    for (; i + L <= n; i += L) {
        const V v = V::load(x + i);
        m = max(m, abs(v));  // x86 max: a NaN operand in the first slot is dropped, hence the check
        nan = nan + select(eq(v, v), V::zero(), V::set1(T(1)));
    }
    T r = T(0), bad = T(0);
    T lanes[L];
    m.store(lanes);
    for (int l = 0; l < L; ++l) r = lanes[l] > r ? lanes[l] : r;
    nan.store(lanes);
    for (int l = 0; l < L; ++l) bad += lanes[l];
    for (; i < n; ++i) {
        const T a = x[i] < T(0) ? -x[i] : x[i];
        if (a != a) bad += T(1);
        else if (a > r) r = a;
    }
    return bad != T(0) ? T(__builtin_inf()) : r;
}

template <class T>
ConvKernels<T> make_conv() {
    ConvKernels<T> k;
    k.im2col = im2col<T>;
    k.col2im = col2im<T>;
    k.col2im_owned = col2im_owned<T>;
    k.max_pool = max_pool<T>;
    k.avg_pool = avg_pool<T>;
    k.avg_pool_backward = avg_pool_backward<T>;
    k.plane_conv = plane_conv<T>;
    k.plane_conv_backward_input = plane_conv_backward_input<T>;
    k.plane_conv_backward_weight = plane_conv_backward_weight<T>;
    k.sum = sum<T>;
    k.max_abs = max_abs<T>;
    return k;
}

template ConvKernels<float> make_conv<float>();
template ConvKernels<double> make_conv<double>();

}  // namespace RC_NS
}  // namespace relucore
