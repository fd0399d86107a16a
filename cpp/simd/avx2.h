// AVX2+FMA wrapper: 8 x float, 4 x double. Compiled only into the avx2 kernel objects.
#pragma once
#include <immintrin.h>
#include "scalar.h"

namespace relucore {
namespace RC_NS {

// Lanes i < n set, for the masked tail loads and stores.
static inline __m256i tail_mask32(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i tail_mask64(int64_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

struct F32x8 { using type = float; static constexpr int L = 8; __m256 v;
    static F32x8 load(const float* p) { return {_mm256_loadu_ps(p)}; }
    static F32x8 set1(float a) { return {_mm256_set1_ps(a)}; }
    static F32x8 zero() { return {_mm256_setzero_ps()}; }
    void store(float* p) const { _mm256_storeu_ps(p, v); }
    void stream(float* p) const { _mm256_stream_ps(p, v); }  // p 32-byte aligned
    // The first n < L lanes; the others read as 0 and are never touched (no fault past the end).
    static F32x8 load_tail(const float* p, int64_t n) { return {_mm256_maskload_ps(p, tail_mask32(n))}; }
    void store_tail(float* p, int64_t n) const { _mm256_maskstore_ps(p, tail_mask32(n), v); }
    // Lanes lo <= i < n to p[i], the others untouched.
    void store_lanes(float* p, int64_t lo, int64_t n) const {
        _mm256_maskstore_ps(p, _mm256_andnot_si256(tail_mask32(lo), tail_mask32(n)), v);
    }
    // Lanes lo <= i < n from p[i], the others 0 and never touched.
    static F32x8 load_lanes(const float* p, int64_t lo, int64_t n) {
        return {_mm256_maskload_ps(p, _mm256_andnot_si256(tail_mask32(lo), tail_mask32(n)))};
    } };
struct F64x4 { using type = double; static constexpr int L = 4; __m256d v;
    static F64x4 load(const double* p) { return {_mm256_loadu_pd(p)}; }
    static F64x4 set1(double a) { return {_mm256_set1_pd(a)}; }
    static F64x4 zero() { return {_mm256_setzero_pd()}; }
    void store(double* p) const { _mm256_storeu_pd(p, v); }
    void stream(double* p) const { _mm256_stream_pd(p, v); }
    static F64x4 load_tail(const double* p, int64_t n) { return {_mm256_maskload_pd(p, tail_mask64(n))}; }
    void store_tail(double* p, int64_t n) const { _mm256_maskstore_pd(p, tail_mask64(n), v); }
    void store_lanes(double* p, int64_t lo, int64_t n) const {
        _mm256_maskstore_pd(p, _mm256_andnot_si256(tail_mask64(lo), tail_mask64(n)), v);
    }
    static F64x4 load_lanes(const double* p, int64_t lo, int64_t n) {
        return {_mm256_maskload_pd(p, _mm256_andnot_si256(tail_mask64(lo), tail_mask64(n)))};
    } };
struct M32x8 { __m256 m; };
struct M64x4 { __m256d m; };

static inline F32x8 operator+(F32x8 a, F32x8 b) { return {_mm256_add_ps(a.v, b.v)}; }
static inline F32x8 operator-(F32x8 a, F32x8 b) { return {_mm256_sub_ps(a.v, b.v)}; }
static inline F32x8 operator*(F32x8 a, F32x8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
static inline F32x8 operator/(F32x8 a, F32x8 b) { return {_mm256_div_ps(a.v, b.v)}; }
static inline F32x8 mul_add(F32x8 a, F32x8 b, F32x8 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
static inline F32x8 max(F32x8 a, F32x8 b) { return {_mm256_max_ps(a.v, b.v)}; }
static inline F32x8 min(F32x8 a, F32x8 b) { return {_mm256_min_ps(a.v, b.v)}; }
static inline M32x8 gt(F32x8 a, F32x8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
static inline M32x8 le(F32x8 a, F32x8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ)}; }
static inline M32x8 eq(F32x8 a, F32x8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ)}; }
static inline F32x8 select(M32x8 m, F32x8 a, F32x8 b) { return {_mm256_blendv_ps(b.v, a.v, m.m)}; }
static inline uint64_t bits(F32x8, M32x8 m) { return (uint64_t)(unsigned)_mm256_movemask_ps(m.m); }
static inline M32x8 from_bits(F32x8, uint64_t b) {
    const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i t = _mm256_and_si256(_mm256_set1_epi32((int)(b & 0xff)), lane);
    return {_mm256_castsi256_ps(_mm256_cmpeq_epi32(t, lane))};
}
static inline float reduce_add(F32x8 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline F32x8 round_int(F32x8 a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline F32x8 pow2_int(F32x8 k) {
    __m256i i = _mm256_add_epi32(_mm256_cvtps_epi32(k.v), _mm256_set1_epi32(127));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(i, 23))};
}
static inline F32x8 abs(F32x8 a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
static inline F32x8 copy_sign(F32x8 a, F32x8 s) {
    const __m256 sg = _mm256_set1_ps(-0.0f);
    return {_mm256_or_ps(_mm256_andnot_ps(sg, a.v), _mm256_and_ps(sg, s.v))};
}

static inline F64x4 operator+(F64x4 a, F64x4 b) { return {_mm256_add_pd(a.v, b.v)}; }
static inline F64x4 operator-(F64x4 a, F64x4 b) { return {_mm256_sub_pd(a.v, b.v)}; }
static inline F64x4 operator*(F64x4 a, F64x4 b) { return {_mm256_mul_pd(a.v, b.v)}; }
static inline F64x4 operator/(F64x4 a, F64x4 b) { return {_mm256_div_pd(a.v, b.v)}; }
static inline F64x4 mul_add(F64x4 a, F64x4 b, F64x4 c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
static inline F64x4 max(F64x4 a, F64x4 b) { return {_mm256_max_pd(a.v, b.v)}; }
static inline F64x4 min(F64x4 a, F64x4 b) { return {_mm256_min_pd(a.v, b.v)}; }
static inline M64x4 gt(F64x4 a, F64x4 b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_GT_OQ)}; }
static inline M64x4 le(F64x4 a, F64x4 b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_LE_OQ)}; }
static inline M64x4 eq(F64x4 a, F64x4 b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_EQ_OQ)}; }
static inline F64x4 select(M64x4 m, F64x4 a, F64x4 b) { return {_mm256_blendv_pd(b.v, a.v, m.m)}; }
static inline uint64_t bits(F64x4, M64x4 m) { return (uint64_t)(unsigned)_mm256_movemask_pd(m.m); }
static inline M64x4 from_bits(F64x4, uint64_t b) {
    const __m256i lane = _mm256_setr_epi64x(1, 2, 4, 8);
    __m256i t = _mm256_and_si256(_mm256_set1_epi64x((long long)(b & 0xf)), lane);
    return {_mm256_castsi256_pd(_mm256_cmpeq_epi64(t, lane))};
}
static inline double reduce_add(F64x4 a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}
static inline F64x4 round_int(F64x4 a) { return {_mm256_round_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline F64x4 pow2_int(F64x4 k) {
    // k + (2^52 + 1023) holds k + 1023 in its low mantissa bits; shift them into the exponent.
    __m256d t = _mm256_add_pd(k.v, _mm256_set1_pd(4503599627371519.0));
    return {_mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52))};
}
static inline F64x4 abs(F64x4 a) { return {_mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v)}; }
static inline F64x4 copy_sign(F64x4 a, F64x4 s) {
    const __m256d sg = _mm256_set1_pd(-0.0);
    return {_mm256_or_pd(_mm256_andnot_pd(sg, a.v), _mm256_and_pd(sg, s.v))};
}

// Lanes 0, 2, 4, ... of the 2L lanes a:b (stride-2 gathers of contiguous data): pick within
// 128-bit lanes, then put the 64-bit halves in order.
static inline F32x8 even_lanes(F32x8 a, F32x8 b) {
    const __m256 t = _mm256_shuffle_ps(a.v, b.v, 0x88);  // a0 a2 b0 b2 | a4 a6 b4 b6
    return {_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8))};
}
static inline F64x4 even_lanes(F64x4 a, F64x4 b) {
    return {_mm256_permute4x64_pd(_mm256_unpacklo_pd(a.v, b.v), 0xD8)};  // a0 b0 | a2 b2 -> a0 a2 b0 b2
}
// Lanes 1, 3, 5, ... of a:b.
static inline F32x8 odd_lanes(F32x8 a, F32x8 b) {
    const __m256 t = _mm256_shuffle_ps(a.v, b.v, 0xDD);  // a1 a3 b1 b3 | a5 a7 b5 b7
    return {_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8))};
}
static inline F64x4 odd_lanes(F64x4 a, F64x4 b) {
    return {_mm256_permute4x64_pd(_mm256_unpackhi_pd(a.v, b.v), 0xD8)};  // a1 b1 | a3 b3 -> a1 a3 b1 b3
}

// a0 b0 a1 b1 ... (the first L of the 2L interleaved lanes) and the rest.
static inline F32x8 zip_lo(F32x8 a, F32x8 b) {
    return {_mm256_permute2f128_ps(_mm256_unpacklo_ps(a.v, b.v), _mm256_unpackhi_ps(a.v, b.v), 0x20)};
}
static inline F32x8 zip_hi(F32x8 a, F32x8 b) {
    return {_mm256_permute2f128_ps(_mm256_unpacklo_ps(a.v, b.v), _mm256_unpackhi_ps(a.v, b.v), 0x31)};
}
static inline F64x4 zip_lo(F64x4 a, F64x4 b) {
    return {_mm256_permute2f128_pd(_mm256_unpacklo_pd(a.v, b.v), _mm256_unpackhi_pd(a.v, b.v), 0x20)};
}
static inline F64x4 zip_hi(F64x4 a, F64x4 b) {
    return {_mm256_permute2f128_pd(_mm256_unpacklo_pd(a.v, b.v), _mm256_unpackhi_pd(a.v, b.v), 0x31)};
}

// r[i] (row i of an L x L block) becomes column i: unpacks inside 128-bit lanes, then lane swaps.
__attribute__((always_inline)) static inline void transpose(F32x8* r) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i].v, r[2 * i + 1].v);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i].v, r[2 * i + 1].v);
    }
    for (int i = 0; i < 2; ++i) {  // u[4i+e], lane L: rows 4i..4i+3 of column 4L+e
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int e = 0; e < 4; ++e) {
        r[e].v = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
        r[4 + e].v = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
    }
}
__attribute__((always_inline)) static inline void transpose(F64x4* r) {
    const __m256d t0 = _mm256_unpacklo_pd(r[0].v, r[1].v), t1 = _mm256_unpackhi_pd(r[0].v, r[1].v);
    const __m256d t2 = _mm256_unpacklo_pd(r[2].v, r[3].v), t3 = _mm256_unpackhi_pd(r[2].v, r[3].v);
    r[0].v = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1].v = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2].v = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3].v = _mm256_permute2f128_pd(t1, t3, 0x31);
}

static inline void stream_fence() { _mm_sfence(); }

template <class T> struct VecOf;
template <> struct VecOf<float> { using type = F32x8; };
template <> struct VecOf<double> { using type = F64x4; };
template <class T> using ScalarOf = Scalar<T, true>;
#define RC_ISA_NAME "avx2"

}  // namespace RC_NS
}  // namespace relucore
