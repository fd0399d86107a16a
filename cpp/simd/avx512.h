// AVX-512 (F, DQ, BW, VL) wrapper: 16 x float, 8 x double. Compiled only into the avx512 objects.
#pragma once
#include <immintrin.h>
#include "scalar.h"

namespace relucore {
namespace RC_NS {

struct F32x16 { using type = float; static constexpr int L = 16; __m512 v;
    static F32x16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
    static F32x16 set1(float a) { return {_mm512_set1_ps(a)}; }
    static F32x16 zero() { return {_mm512_setzero_ps()}; }
    void store(float* p) const { _mm512_storeu_ps(p, v); }
    void stream(float* p) const { _mm512_stream_ps(p, v); }  // p 64-byte aligned
    // The first n < L lanes; the others read as 0 and are never touched (no fault past the end).
    static F32x16 load_tail(const float* p, int64_t n) { return {_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p)}; }
    void store_tail(float* p, int64_t n) const { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
    // Lanes lo <= i < n to p[i], the others untouched.
    void store_lanes(float* p, int64_t lo, int64_t n) const {
        _mm512_mask_storeu_ps(p, (__mmask16)(((1u << n) - 1) & ~((1u << lo) - 1)), v);
    }
    // Lanes lo <= i < n from p[i], the others 0 and never touched.
    static F32x16 load_lanes(const float* p, int64_t lo, int64_t n) {
        return {_mm512_maskz_loadu_ps((__mmask16)(((1u << n) - 1) & ~((1u << lo) - 1)), p)};
    } };
struct F64x8 { using type = double; static constexpr int L = 8; __m512d v;
    static F64x8 load(const double* p) { return {_mm512_loadu_pd(p)}; }
    static F64x8 set1(double a) { return {_mm512_set1_pd(a)}; }
    static F64x8 zero() { return {_mm512_setzero_pd()}; }
    void store(double* p) const { _mm512_storeu_pd(p, v); }
    void stream(double* p) const { _mm512_stream_pd(p, v); }
    static F64x8 load_tail(const double* p, int64_t n) { return {_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), p)}; }
    void store_tail(double* p, int64_t n) const { _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), v); }
    void store_lanes(double* p, int64_t lo, int64_t n) const {
        _mm512_mask_storeu_pd(p, (__mmask8)(((1u << n) - 1) & ~((1u << lo) - 1)), v);
    }
    static F64x8 load_lanes(const double* p, int64_t lo, int64_t n) {
        return {_mm512_maskz_loadu_pd((__mmask8)(((1u << n) - 1) & ~((1u << lo) - 1)), p)};
    } };
struct M16 { __mmask16 m; };
struct M8 { __mmask8 m; };

static inline F32x16 operator+(F32x16 a, F32x16 b) { return {_mm512_add_ps(a.v, b.v)}; }
static inline F32x16 operator-(F32x16 a, F32x16 b) { return {_mm512_sub_ps(a.v, b.v)}; }
static inline F32x16 operator*(F32x16 a, F32x16 b) { return {_mm512_mul_ps(a.v, b.v)}; }
static inline F32x16 operator/(F32x16 a, F32x16 b) { return {_mm512_div_ps(a.v, b.v)}; }
static inline F32x16 mul_add(F32x16 a, F32x16 b, F32x16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
static inline F32x16 max(F32x16 a, F32x16 b) { return {_mm512_max_ps(a.v, b.v)}; }
static inline F32x16 min(F32x16 a, F32x16 b) { return {_mm512_min_ps(a.v, b.v)}; }
static inline M16 gt(F32x16 a, F32x16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)}; }
static inline M16 le(F32x16 a, F32x16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }
static inline M16 eq(F32x16 a, F32x16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ)}; }
static inline F32x16 select(M16 m, F32x16 a, F32x16 b) { return {_mm512_mask_blend_ps(m.m, b.v, a.v)}; }
static inline uint64_t bits(F32x16, M16 m) { return (uint64_t)m.m; }
static inline M16 from_bits(F32x16, uint64_t b) { return {(__mmask16)(b & 0xffff)}; }
static inline float reduce_add(F32x16 a) { return _mm512_reduce_add_ps(a.v); }
static inline F32x16 round_int(F32x16 a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline F32x16 pow2_int(F32x16 k) {
    __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(k.v), _mm512_set1_epi32(127));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(i, 23))};
}
static inline F32x16 abs(F32x16 a) { return {_mm512_andnot_ps(_mm512_set1_ps(-0.0f), a.v)}; }
static inline F32x16 copy_sign(F32x16 a, F32x16 s) {
    const __m512 sg = _mm512_set1_ps(-0.0f);
    return {_mm512_or_ps(_mm512_andnot_ps(sg, a.v), _mm512_and_ps(sg, s.v))};
}

static inline F64x8 operator+(F64x8 a, F64x8 b) { return {_mm512_add_pd(a.v, b.v)}; }
static inline F64x8 operator-(F64x8 a, F64x8 b) { return {_mm512_sub_pd(a.v, b.v)}; }
static inline F64x8 operator*(F64x8 a, F64x8 b) { return {_mm512_mul_pd(a.v, b.v)}; }
static inline F64x8 operator/(F64x8 a, F64x8 b) { return {_mm512_div_pd(a.v, b.v)}; }
static inline F64x8 mul_add(F64x8 a, F64x8 b, F64x8 c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
static inline F64x8 max(F64x8 a, F64x8 b) { return {_mm512_max_pd(a.v, b.v)}; }
static inline F64x8 min(F64x8 a, F64x8 b) { return {_mm512_min_pd(a.v, b.v)}; }
static inline M8 gt(F64x8 a, F64x8 b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_GT_OQ)}; }
static inline M8 le(F64x8 a, F64x8 b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_LE_OQ)}; }
static inline M8 eq(F64x8 a, F64x8 b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_EQ_OQ)}; }
static inline F64x8 select(M8 m, F64x8 a, F64x8 b) { return {_mm512_mask_blend_pd(m.m, b.v, a.v)}; }
static inline uint64_t bits(F64x8, M8 m) { return (uint64_t)m.m; }
static inline M8 from_bits(F64x8, uint64_t b) { return {(__mmask8)(b & 0xff)}; }
static inline double reduce_add(F64x8 a) { return _mm512_reduce_add_pd(a.v); }
static inline F64x8 round_int(F64x8 a) { return {_mm512_roundscale_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline F64x8 pow2_int(F64x8 k) {
    __m512i i = _mm512_add_epi64(_mm512_cvtpd_epi64(k.v), _mm512_set1_epi64(1023));
    return {_mm512_castsi512_pd(_mm512_slli_epi64(i, 52))};
}
static inline F64x8 abs(F64x8 a) { return {_mm512_andnot_pd(_mm512_set1_pd(-0.0), a.v)}; }
static inline F64x8 copy_sign(F64x8 a, F64x8 s) {
    const __m512d sg = _mm512_set1_pd(-0.0);
    return {_mm512_or_pd(_mm512_andnot_pd(sg, a.v), _mm512_and_pd(sg, s.v))};
}

// Lanes 0, 2, 4, ... of the 2L lanes a:b (stride-2 gathers of contiguous data).
static inline F32x16 even_lanes(F32x16 a, F32x16 b) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return {_mm512_permutex2var_ps(a.v, idx, b.v)};
}
static inline F64x8 even_lanes(F64x8 a, F64x8 b) {
    const __m512i idx = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    return {_mm512_permutex2var_pd(a.v, idx, b.v)};
}
// Lanes 1, 3, 5, ... of a:b.
static inline F32x16 odd_lanes(F32x16 a, F32x16 b) {
    const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return {_mm512_permutex2var_ps(a.v, idx, b.v)};
}
static inline F64x8 odd_lanes(F64x8 a, F64x8 b) {
    const __m512i idx = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    return {_mm512_permutex2var_pd(a.v, idx, b.v)};
}

// a0 b0 a1 b1 ... (the first L of the 2L interleaved lanes) and the rest.
static inline F32x16 zip_lo(F32x16 a, F32x16 b) {
    const __m512i idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    return {_mm512_permutex2var_ps(a.v, idx, b.v)};
}
static inline F32x16 zip_hi(F32x16 a, F32x16 b) {
    const __m512i idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    return {_mm512_permutex2var_ps(a.v, idx, b.v)};
}
static inline F64x8 zip_lo(F64x8 a, F64x8 b) {
    return {_mm512_permutex2var_pd(a.v, _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), b.v)};
}
static inline F64x8 zip_hi(F64x8 a, F64x8 b) {
    return {_mm512_permutex2var_pd(a.v, _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), b.v)};
}

// r[i] (row i of an L x L block) becomes column i. Unpacks build 4x4 (2x2) blocks inside each
// 128-bit lane; two rounds of lane shuffles then transpose the 4 x 4 grid of lanes. Always inlined:
// called out of line, the rows go through memory.
__attribute__((always_inline)) static inline void lane_transpose4(__m512& a, __m512& b, __m512& c, __m512& d) {
    const __m512 v0 = _mm512_shuffle_f32x4(a, b, 0x44), v1 = _mm512_shuffle_f32x4(a, b, 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(c, d, 0x44), v3 = _mm512_shuffle_f32x4(c, d, 0xEE);
    a = _mm512_shuffle_f32x4(v0, v2, 0x88);
    b = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    c = _mm512_shuffle_f32x4(v1, v3, 0x88);
    d = _mm512_shuffle_f32x4(v1, v3, 0xDD);
}
__attribute__((always_inline)) static inline void transpose(F32x16* r) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i].v, r[2 * i + 1].v);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i].v, r[2 * i + 1].v);
    }
    for (int i = 0; i < 4; ++i) {  // u[4i+e], lane L: rows 4i..4i+3 of column 4L+e
        u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int e = 0; e < 4; ++e) {
        lane_transpose4(u[e], u[4 + e], u[8 + e], u[12 + e]);
        for (int L = 0; L < 4; ++L) r[4 * L + e].v = u[4 * L + e];
    }
}
__attribute__((always_inline)) static inline void transpose(F64x8* r) {
    __m512 t[8];
    for (int i = 0; i < 4; ++i) {  // t[2i+e], lane L: rows 2i, 2i+1 of column 2L+e
        t[2 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(r[2 * i].v, r[2 * i + 1].v));
        t[2 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(r[2 * i].v, r[2 * i + 1].v));
    }
    for (int e = 0; e < 2; ++e) {
        lane_transpose4(t[e], t[2 + e], t[4 + e], t[6 + e]);
        for (int L = 0; L < 4; ++L) r[2 * L + e].v = _mm512_castps_pd(t[2 * L + e]);
    }
}

static inline void stream_fence() { _mm_sfence(); }

template <class T> struct VecOf;
template <> struct VecOf<float> { using type = F32x16; };
template <> struct VecOf<double> { using type = F64x8; };
template <class T> using ScalarOf = Scalar<T, true>;
#define RC_ISA_NAME "avx512"

}  // namespace RC_NS
}  // namespace relucore
