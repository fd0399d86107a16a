// Max and average pooling window sweeps over one (H, W) plane, written once against the vector
// wrapper.
#include "isa.h"
#include "pool_2x2.h"
#include "window.h"

namespace relucore {
namespace RC_NS {
namespace {

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

// Where max_pool writes the winner of each window: its flat index in the plane (h * W + w, int64,
// PyTorch's indices), or its position in the window (PosSink, pool_2x2.h).
struct IndexSink {
    int64_t* p;
    void put(i64 o, i64 at, i64, i64, const ConvGeom&) const { p[o] = at; }
    // the 2x2 vector path: window offsets of its taps, and the run's n outputs from their offsets
    static void offsets(i64 W, i64 off[4]) { off[0] = 0, off[1] = 1, off[2] = W, off[3] = W + 1; }
    template <class T> void run(i64 o, i64 at, const T* w, int n) const {
        for (int l = 0; l < n; ++l) p[o + l] = at + 2 * l + (int32_t)w[l];
    }
};
template <int KH, int KW, class T, class Sink>
void max_pool_sized(const T* x, T* y, Sink out, const ConvGeom& g) {
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
            out.put(oh * g.OW + ow, at, h0, w0, g);
        }
}

template <class T, class Sink>
void max_pool_into(const T* x, T* y, Sink out, const ConvGeom& g) {
    if (is_pool_2x2s2(g)) return max_pool_2x2s2(x, y, out, g);
    if (g.kh == 2 && g.kw == 2) return max_pool_sized<2, 2>(x, y, out, g);
    if (g.kh == 3 && g.kw == 3) return max_pool_sized<3, 3>(x, y, out, g);
    max_pool_sized<0, 0>(x, y, out, g);
}

template <class T>
void max_pool(const T* x, T* y, int64_t* idx, const ConvGeom& g) {
    max_pool_into(x, y, IndexSink{idx}, g);
}

template <class T>
void max_pool_pos(const T* x, T* y, uint8_t* pos, const ConvGeom& g) {
    max_pool_into(x, y, PosSink{pos}, g);
}

// 2x2 stride-2 windows do not overlap: with vectors, each pair of dx rows is written once, left to
// right, from one row of dy and positions (no zeroing pass, no scatter). A winner gets 0 + dy, as
// the scatter's add to a zeroed plane gives (-0 becomes +0); the rows and the column no window
// covers get 0. A row's last n < L outputs read whole vectors while L outputs fit in the plane, and
// store whole vectors while they stay inside the plane and miss what this row pair wrote: the lanes
// past the row land in later rows, which are written after them (masked stores were measured to
// cost a row of 7 outputs as much as the whole scatter). Returns false if a position is over 3 (dx
// is then not the gradient).
template <class T>
bool max_pool_pos_backward_2x2s2(const T* dy, const uint8_t* pos, T* dx, const ConvGeom& g) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    const i64 W = g.W, OW = g.OW, out = g.OH * g.OW;
    const T* end = dx + g.H * W;
    uint64_t bad = 0;
    if constexpr (L == 1) {  // one store per output into a zeroed plane: four selects cost more
        for (T* p = dx; p < end; ++p) *p = T(0);
        for (i64 oh = 0; oh < g.OH; ++oh)
            for (i64 ow = 0; ow < OW; ++ow) {
                const uint8_t c = pos[oh * OW + ow];
                dx[(2 * oh + ((c >> 1) & 1)) * W + 2 * ow + (c & 1)] = dy[oh * OW + ow] + T(0);
                bad |= c > 3;
            }
        return bad == 0;
    } else {
        const V z = V::zero(), three = V::set1(T(3));
        i64 oh = 0;
        if (2 * OW <= L) {  // two output rows per vector (L/2 lanes each): short rows waste half the lanes
            constexpr int H = L / 2;
            const uint64_t rows = ((uint64_t(1) << OW) - 1) * ((uint64_t(1) << H) + 1);
            for (; oh + 1 < g.OH; oh += 2) {
                const i64 o = oh * OW;
                T* d0 = dx + 2 * oh * W;
                V v, p;
                if (o + OW + H <= out) {
                    v = load_halves<T, V>(dy + o, dy + o + OW), p = load_pos_halves<T, V>(pos + o, pos + o + OW);
                } else {
                    T t[L] = {};
                    uint8_t b[L > 8 ? L : 8] = {};
                    for (i64 l = 0; l < OW; ++l) t[l] = dy[o + l], t[H + l] = dy[o + OW + l], b[l] = pos[o + l], b[H + l] = pos[o + OW + l];
                    v = V::load(t), p = load_pos<T, V>(b);
                }
                v = v + z;
                bad |= bits(p, gt(p, three)) & rows;
                V q[4];
                for (int k = 0; k < 4; ++k) q[k] = select(eq(p, V::set1(T(k))), v, z);
                const V r[4] = {zip_lo(q[0], q[1]), zip_lo(q[2], q[3]), zip_hi(q[0], q[1]), zip_hi(q[2], q[3])};
                const bool whole = d0 + 3 * W + L <= end;  // lanes past a row land in rows written after
                for (int k = 0; k < 4; ++k) {
                    if (whole) r[k].store(d0 + k * W);
                    else r[k].store_tail(d0 + k * W, 2 * OW);
                }
                if (W > 2 * OW)
                    for (int k = 0; k < 4; ++k) d0[k * W + W - 1] = T(0);
            }
        }
        for (; oh < g.OH; ++oh) {
            T* d0 = dx + 2 * oh * W;
            T* d1 = d0 + W;
            for (i64 ow = 0; ow < OW; ow += L) {
                const i64 o = oh * OW + ow, n = OW - ow < L ? OW - ow : L;
                const bool in = o + L <= out;
                const V v = in ? V::load(dy + o) : V::load_tail(dy + o, n);
                const V p = in ? load_pos<T, V>(pos + o) : load_pos_tail<T, V>(pos + o, n);
                // lanes past the row are not this row's positions
                bad |= bits(p, gt(p, three)) & (n == L ? ~uint64_t(0) : (uint64_t(1) << n) - 1);
                V r[4];
                unpool_2x2<T>(v, p, r);
                if (n == L || ((ow == 0 || 2 * ow + 2 * L <= W) && d1 + 2 * ow + 2 * L <= end)) {
                    r[0].store(d0 + 2 * ow), r[1].store(d0 + 2 * ow + L);
                    r[2].store(d1 + 2 * ow), r[3].store(d1 + 2 * ow + L);
                } else {
                    const i64 lo = 2 * n < L ? 2 * n : L, hi = 2 * n - lo;
                    r[0].store_tail(d0 + 2 * ow, lo), r[1].store_tail(d0 + 2 * ow + L, hi);
                    r[2].store_tail(d1 + 2 * ow, lo), r[3].store_tail(d1 + 2 * ow + L, hi);
                }
            }
            if (W > 2 * OW) d0[W - 1] = T(0), d1[W - 1] = T(0);
        }
    }
    for (T* p = dx + 2 * g.OH * W; p < end; ++p) *p = T(0);
    return bad == 0;
}

// dx (H, W) = the gradient of max_pool_pos for dy (OH, OW): dy scattered to each window's winner.
// False if a position lies outside its window or the image (dx is then not the gradient).
template <class T>
bool max_pool_pos_backward(const T* dy, const uint8_t* pos, T* dx, const ConvGeom& g) {
    if (is_pool_2x2s2(g)) return max_pool_pos_backward_2x2s2(dy, pos, dx, g);
    for (i64 i = 0; i < g.H * g.W; ++i) dx[i] = T(0);
    bool ok = true;
    for (i64 oh = 0; oh < g.OH; ++oh)
        for (i64 ow = 0; ow < g.OW; ++ow) {
            const i64 c = pos[oh * g.OW + ow], i = c / g.kw, j = c % g.kw;
            const i64 h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
            if (i >= g.kh || h < 0 || h >= g.H || w < 0 || w >= g.W) ok = false;
            else dx[h * g.W + w] += dy[oh * g.OW + ow];
        }
    return ok;
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

}  // namespace

template <class T> void fill_pool(ConvKernels<T>& k) {
    k.max_pool = max_pool<T>;
    k.max_pool_pos = max_pool_pos<T>;
    k.max_pool_pos_backward = max_pool_pos_backward<T>;
    k.avg_pool = avg_pool<T>;
    k.avg_pool_backward = avg_pool_backward<T>;
}
template void fill_pool<float>(ConvKernels<float>&);
template void fill_pool<double>(ConvKernels<double>&);

}  // namespace RC_NS
}  // namespace relucore
