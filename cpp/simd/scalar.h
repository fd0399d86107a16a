// Scalar "vector" of one lane: the reference semantics every SIMD wrapper must match, and the
// tail handler of every kernel. Lives in the per-ISA namespace RC_NS (ODR: each ISA gets its own copy).
#pragma once
#include <stdint.h>
#include <string.h>

#ifndef RC_NS
#error "RC_NS (the per-ISA namespace) must be defined by the build"
#endif

namespace relucore {
namespace RC_NS {

template <class T, bool kFMA>
struct Scalar {
    using type = T;
    static constexpr int L = 1;
    T v;
    static Scalar load(const T* p) { return {*p}; }
    static Scalar set1(T a) { return {a}; }
    static Scalar zero() { return {T(0)}; }
    void store(T* p) const { *p = v; }
    void stream(T* p) const { *p = v; }  // no cache-bypassing store without SIMD
    static Scalar load_tail(const T* p, int64_t n) { return {n > 0 ? *p : T(0)}; }
    void store_tail(T* p, int64_t n) const {
        if (n > 0) *p = v;
    }
    void store_lanes(T* p, int64_t lo, int64_t n) const {
        if (lo == 0 && n > 0) *p = v;
    }
    static Scalar load_lanes(const T* p, int64_t lo, int64_t n) { return {lo == 0 && n > 0 ? *p : T(0)}; }
};

#define RC_S template <class T, bool F> static inline
RC_S Scalar<T, F> operator+(Scalar<T, F> a, Scalar<T, F> b) { return {a.v + b.v}; }
RC_S Scalar<T, F> operator-(Scalar<T, F> a, Scalar<T, F> b) { return {a.v - b.v}; }
RC_S Scalar<T, F> operator*(Scalar<T, F> a, Scalar<T, F> b) { return {a.v * b.v}; }
RC_S Scalar<T, F> operator/(Scalar<T, F> a, Scalar<T, F> b) { return {a.v / b.v}; }
// a*b + c, fused exactly when the SIMD path of this ISA fuses (so tails round like bodies).
template <bool F> static inline Scalar<float, F> mul_add(Scalar<float, F> a, Scalar<float, F> b, Scalar<float, F> c) {
    if (F) return {__builtin_fmaf(a.v, b.v, c.v)};
    return {a.v * b.v + c.v};
}
template <bool F> static inline Scalar<double, F> mul_add(Scalar<double, F> a, Scalar<double, F> b, Scalar<double, F> c) {
    if (F) return {__builtin_fma(a.v, b.v, c.v)};
    return {a.v * b.v + c.v};
}
// x86 maxps/minps semantics: the second operand is returned when either is NaN or they are equal.
RC_S Scalar<T, F> max(Scalar<T, F> a, Scalar<T, F> b) { return {a.v > b.v ? a.v : b.v}; }
RC_S Scalar<T, F> min(Scalar<T, F> a, Scalar<T, F> b) { return {a.v < b.v ? a.v : b.v}; }
RC_S bool gt(Scalar<T, F> a, Scalar<T, F> b) { return a.v > b.v; }
RC_S bool le(Scalar<T, F> a, Scalar<T, F> b) { return a.v <= b.v; }
RC_S bool eq(Scalar<T, F> a, Scalar<T, F> b) { return a.v == b.v; }
RC_S Scalar<T, F> select(bool m, Scalar<T, F> a, Scalar<T, F> b) { return m ? a : b; }
RC_S uint64_t bits(Scalar<T, F>, bool m) { return m ? 1u : 0u; }
RC_S bool from_bits(Scalar<T, F>, uint64_t b) { return (b & 1u) != 0; }
RC_S T reduce_add(Scalar<T, F> a) { return a.v; }
// Round to nearest integer (|a| < 2^22), without libm.
RC_S Scalar<T, F> round_int(Scalar<T, F> a) {
    const T magic = sizeof(T) == 4 ? T(12582912.0) : T(6755399441055744.0);  // 1.5 * 2^mantissa
    return {(a.v + magic) - magic};  // no -ffast-math anywhere, so this is not folded
}
// 2^k for integral k in the normal exponent range: k + (2^m + bias) holds k + bias in its low
// mantissa bits, which are shifted into the exponent (no float-to-int conversion, so NaN is not UB).
template <bool F> static inline Scalar<float, F> pow2_int(Scalar<float, F> k) {
    float t = k.v + 8388735.0f;  // 2^23 + 127
    uint32_t u;
    memcpy(&u, &t, 4);
    u <<= 23;
    memcpy(&t, &u, 4);
    return {t};
}
template <bool F> static inline Scalar<double, F> pow2_int(Scalar<double, F> k) {
    double t = k.v + 4503599627371519.0;  // 2^52 + 1023
    uint64_t u;
    memcpy(&u, &t, 8);
    u <<= 52;
    memcpy(&t, &u, 8);
    return {t};
}
template <bool F> static inline Scalar<float, F> abs(Scalar<float, F> a) { return {__builtin_fabsf(a.v)}; }
template <bool F> static inline Scalar<double, F> abs(Scalar<double, F> a) { return {__builtin_fabs(a.v)}; }
// magnitude of a with the sign bit of s
template <bool F> static inline Scalar<float, F> copy_sign(Scalar<float, F> a, Scalar<float, F> s) {
    return {__builtin_copysignf(a.v, s.v)};
}
template <bool F> static inline Scalar<double, F> copy_sign(Scalar<double, F> a, Scalar<double, F> s) {
    return {__builtin_copysign(a.v, s.v)};
}
// Lane 0 of a:b (one lane each).
template <class T, bool F> static inline Scalar<T, F> even_lanes(Scalar<T, F> a, Scalar<T, F>) { return a; }
// Lane 1 of a:b.
template <class T, bool F> static inline Scalar<T, F> odd_lanes(Scalar<T, F>, Scalar<T, F> b) { return b; }
// a0 b0: the first lane of the interleaving, and the second.
template <class T, bool F> static inline Scalar<T, F> zip_lo(Scalar<T, F> a, Scalar<T, F>) { return a; }
template <class T, bool F> static inline Scalar<T, F> zip_hi(Scalar<T, F>, Scalar<T, F> b) { return b; }
// A 1 x 1 block is its own transpose.
template <class T, bool F> static inline void transpose(Scalar<T, F>*) {}
#undef RC_S

}  // namespace RC_NS
}  // namespace relucore
