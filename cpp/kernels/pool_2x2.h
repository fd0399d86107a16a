// The 2x2 stride-2 max pooling's vector pieces, shared by the pooling kernels (pool.cpp) and the
// batch norm sweeps that pool or unpool as they go (norm_pool.cpp).
#pragma once
#include "isa.h"

namespace relucore {
namespace RC_NS {
namespace {

// Where max_pool writes the winner of each window: its position in the window (i * kw + j, one
// byte, for windows of at most 255 taps: what MaxPool2d keeps for backward). See IndexSink.
struct PosSink {
    uint8_t* p;
    void put(i64 o, i64 at, i64 h0, i64 w0, const ConvGeom& g) const {
        p[o] = (uint8_t)((at / g.W - h0) / g.dh * g.kw + (at % g.W - w0) / g.dw);
    }
    static void offsets(i64, i64 off[4]) { off[0] = 0, off[1] = 1, off[2] = 2, off[3] = 3; }
    template <class T> void run(i64 o, i64, const T* w, int n) const {
        for (int l = 0; l < n; ++l) p[o + l] = (uint8_t)(int32_t)w[l];
    }
};

// The loaded vectors as they are (the plain pooling).
struct NoPrep {
    template <class V> V operator()(V v) const { return v; }
};

// 2x2 windows, stride 2, no padding, dilation 1 (the usual pool): L outputs at a time from two
// vector pairs per input row (even/odd lanes are the window's left/right column). The scan order
// (0,0), (0,1), (1,0), (1,1) and PyTorch's rule (a larger value or a NaN takes over) are selects,
// so ties, NaN and -inf give window_max's values and indices. The winner's offset (the Sink's: in
// the plane, 0, 1, W or W + 1, exact in T: see is_pool_2x2s2; or in the window, 0..3) is selected
// alongside the value, and the Sink turns the stored offsets into its output in a fixed-length loop
// that the compiler vectorizes (convert, widen, add): a per-lane decode of a window code was most of
// the time. The row's last n < L outputs are stored whole while L outputs fit in the plane
// (`spill`: the lanes past n land in later rows' outputs, which overwrite them; rows of 7 or 14
// outputs then take the vector path too), else masked. Their loads read whole vectors, past the row
// into the next, while that stays inside the plane (`whole`): masked loads that miss the cache were
// measured to stall (AVX-512 float32 on 24-wide rows: no faster than the scalar windows). `prep`
// maps each loaded vector first (batch norm's normalize + activation in its fused sweep).
template <class T, class V, class Sink, class Prep>
__attribute__((always_inline)) inline void max_pool_2x2s2_run(const T* r0, const T* r1, i64 at, i64 n, i64 W,
                                                              bool whole, bool spill, T* yo, Sink out, i64 o,
                                                              const Prep& prep) {
    constexpr int L = V::L;
    V a0, a1, b0, b1;
    if (n == L || whole) {
        a0 = V::load(r0), a1 = V::load(r0 + L);
        b0 = V::load(r1), b1 = V::load(r1 + L);
    } else {  // the 2n inputs of each row only (a short row may end at the array's end)
        const i64 lo = 2 * n < L ? 2 * n : L, hi = 2 * n - lo;
        a0 = V::load_tail(r0, lo), a1 = V::load_tail(r0 + L, hi);
        b0 = V::load_tail(r1, lo), b1 = V::load_tail(r1 + L, hi);
    }
    a0 = prep(a0), a1 = prep(a1), b0 = prep(b0), b1 = prep(b1);
    const V v[4] = {even_lanes(a0, a1), odd_lanes(a0, a1), even_lanes(b0, b1), odd_lanes(b0, b1)};
    i64 off[4];
    Sink::offsets(W, off);
    V best = v[0], where = V::zero();  // the first tap always takes over from -inf's start
    for (int q = 1; q < 4; ++q) {
        const uint64_t take = bits(v[q], gt(v[q], best)) | ~bits(v[q], eq(v[q], v[q]));
        const auto m = from_bits(v[q], take);
        best = select(m, v[q], best);
        where = select(m, V::set1(T(off[q])), where);
    }
    T w[L];
    where.store(w);
    if (n == L || spill) {
        best.store(yo);
        out.run(o, at, w, L);
    } else {
        best.store_tail(yo, n);
        out.run(o, at, w, (int)n);
    }
}

template <class T, class Sink, class Prep = NoPrep>
void max_pool_2x2s2(const T* x, T* y, Sink out, const ConvGeom& g, const Prep& prep = Prep()) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    const i64 W = g.W;  // 2 * OW <= W: the masked loads stay inside their two rows
    const T* end = x + g.H * W;
    for (i64 oh = 0; oh < g.OH; ++oh) {
        const T* r0 = x + 2 * oh * W;
        const T* r1 = r0 + W;
        const i64 o = oh * g.OW;
        i64 ow = 0;
        for (; ow + L <= g.OW; ow += L)
            max_pool_2x2s2_run<T, V>(r0 + 2 * ow, r1 + 2 * ow, 2 * oh * W + 2 * ow, L, W, true, true, y + o + ow, out,
                                     o + ow, prep);
        if (ow < g.OW)
            max_pool_2x2s2_run<T, V>(r0 + 2 * ow, r1 + 2 * ow, 2 * oh * W + 2 * ow, g.OW - ow, W,
                                     end - (r1 + 2 * ow) >= 2 * L, o + ow + L <= g.OH * g.OW, y + o + ow, out, o + ow,
                                     prep);
    }
}

// L positions (bytes, the first 8 in lo and the next in hi) as a vector of T. The wrapper has no
// integer lanes, so this is per ISA. The bytes come in general registers: a byte-by-byte fill of an
// array read back as one vector stalls on store forwarding, and that stall was most of the
// backward's time.
template <class T, class V>
inline V pos_vector(uint64_t lo, uint64_t hi) {
#if defined(RC_ISA_AVX512)
    if constexpr (sizeof(T) == 4)
        return {_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_set_epi64x((long long)hi, (long long)lo)))};
    else return {_mm512_cvtepi32_pd(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)lo)))};
#elif defined(RC_ISA_AVX2)
    (void)hi;
    if constexpr (sizeof(T) == 4) return {_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)lo)))};
    else return {_mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)lo)))};
#else
    (void)hi;
    return V::set1(T(lo & 0xff));
#endif
}

// The L positions at p; load_pos_tail: the first n (< L) of them, the other lanes 0.
template <class T, class V>
inline V load_pos(const uint8_t* p) {
    constexpr int L = V::L;
    uint64_t lo = 0, hi = 0;
    __builtin_memcpy(&lo, p, L < 8 ? L : 8);  // fixed sizes: plain loads
    if constexpr (L > 8) __builtin_memcpy(&hi, p + 8, L - 8);
    return pos_vector<T, V>(lo, hi);
}
template <class T, class V>
inline V load_pos_tail(const uint8_t* p, i64 n) {
    uint64_t lo = 0, hi = 0;
    for (i64 l = 0; l < n; ++l) (l < 8 ? lo : hi) |= uint64_t(p[l]) << (8 * (l & 7));
    return pos_vector<T, V>(lo, hi);
}

// L/2 values from a and L/2 from b as one vector; the same for positions (vectors of 4 lanes or more).
template <class T, class V>
inline V load_halves(const T* a, const T* b) {
#if defined(RC_ISA_AVX512)
    if constexpr (sizeof(T) == 4)
        return {_mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a)), _mm256_loadu_ps(b), 1)};
    else return {_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(a)), _mm256_loadu_pd(b), 1)};
#elif defined(RC_ISA_AVX2)
    if constexpr (sizeof(T) == 4) return {_mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(a)), _mm_loadu_ps(b), 1)};
    else return {_mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(a)), _mm_loadu_pd(b), 1)};
#else
    (void)b;
    return V::load(a);
#endif
}
template <class T, class V>
inline V load_pos_halves(const uint8_t* a, const uint8_t* b) {
    constexpr int H = V::L / 2;
    uint8_t both[16] = {};
    __builtin_memcpy(both, a, H);  // fixed sizes: register moves, not a byte loop
    __builtin_memcpy(both + H, b, H);
    return load_pos<T, V>(both);
}

// dy's L pooled values (v; p: their positions) at their winners' places: r[0], r[1] the 2L columns
// of the windows' first row, r[2], r[3] the second's. A winner gets 0 + dy, as the scatter's add to a
// zeroed plane gives (-0 becomes +0); the other places 0.
template <class T, class V>
inline void unpool_2x2(V v, V p, V r[4]) {
    const V z = V::zero();
    v = v + z;
    V q[4];
    for (int k = 0; k < 4; ++k) q[k] = select(eq(p, V::set1(T(k))), v, z);
    r[0] = zip_lo(q[0], q[1]), r[1] = zip_hi(q[0], q[1]), r[2] = zip_lo(q[2], q[3]), r[3] = zip_hi(q[2], q[3]);
}

}  // namespace
}  // namespace RC_NS
}  // namespace relucore
