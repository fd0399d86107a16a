// exp and expm1 written once against the vector wrapper (any V from cpp/simd, including Scalar).
// Cody-Waite reduction x = k*ln2 + r, |r| <= ln2/2, then a Taylor polynomial for expm1(r):
// degree 8 (float) / 13 (double) keeps the truncation below half an ulp.
#pragma once

namespace relucore {
namespace RC_NS {

template <class T> struct ExpConsts;
template <> struct ExpConsts<float> {
    static constexpr float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    static constexpr int ncoef = 7;  // 1/2! .. 1/8!
    static constexpr float coef[7] = {0.5f, 1.66666672e-1f, 4.16666679e-2f, 8.33333377e-3f,
                                      1.38888892e-3f, 1.98412701e-4f, 2.48015876e-5f};
    static constexpr float exp_lo = -104.0f, exp_hi = 89.0f;      // beyond: 0 and inf
    static constexpr float normal_lo = -87.0f;                     // exp is a normal number above
    static constexpr float expm1_lo = -40.0f, expm1_hi = 44.0f;   // beyond lo: -1 exactly
};
template <> struct ExpConsts<double> {
    static constexpr double log2e = 1.4426950408889634074, ln2_hi = 6.93147180369123816490e-01,
                            ln2_lo = 1.90821492927058770002e-10;
    static constexpr int ncoef = 12;  // 1/2! .. 1/13!
    static constexpr double coef[12] = {1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
                                        1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800,
                                        1.0 / 479001600, 1.0 / 6227020800.0};
    static constexpr double exp_lo = -746.0, exp_hi = 710.0;
    static constexpr double normal_lo = -708.0;
    static constexpr double expm1_lo = -40.0, expm1_hi = 44.0;
};

// Clamp that keeps NaN: the wrapper's max/min return the second operand when unordered.
template <class V> static inline V clamp_keep_nan(V x, typename V::type lo, typename V::type hi) {
    return min(V::set1(hi), max(V::set1(lo), x));
}

// r = x - k*ln2, k = round(x / ln2); returns expm1(r) and k.
template <class V> static inline V expm1_reduced(V x, V& k) {
    using T = typename V::type;
    using C = ExpConsts<T>;
    k = round_int(x * V::set1(C::log2e));
    V r = mul_add(k, V::set1(-C::ln2_hi), x);
    r = mul_add(k, V::set1(-C::ln2_lo), r);
    V q = V::set1(C::coef[C::ncoef - 1]);
    for (int j = C::ncoef - 2; j >= 0; --j) q = mul_add(q, r, V::set1(C::coef[j]));
    return mul_add(r * r, q, r);
}

template <class V> static inline V vexpm1(V x) {
    using C = ExpConsts<typename V::type>;
    V k;
    V p = expm1_reduced(clamp_keep_nan(x, C::expm1_lo, C::expm1_hi), k);
    V s = pow2_int(k);
    V y = mul_add(s, p, s - V::set1(1));     // 2^k * expm1(r) + (2^k - 1)
    return select(eq(x, V::zero()), x, y);   // expm1(-0.0) is -0.0
}

template <class V> static inline V vexp(V x) {
    using C = ExpConsts<typename V::type>;
    V k;
    V e = expm1_reduced(clamp_keep_nan(x, C::exp_lo, C::exp_hi), k) + V::set1(1);
    // 2^k in two halves so that overflow gives inf and underflow passes through subnormals.
    V k1 = round_int(k * V::set1(0.5));
    return (e * pow2_int(k1)) * pow2_int(k - k1);
}

// exp(x) for x <= 0 or NaN, as softmax needs after subtracting the maximum: one scaling step, since
// nothing overflows, and 0 instead of a subnormal below normal_lo (an error of < 1e-38 relative to
// the largest term, 1).
template <class V> static inline V vexp_nonpositive(V x) {
    using C = ExpConsts<typename V::type>;
    const V lo = V::set1(C::normal_lo);
    V k;
    V e = expm1_reduced(max(lo, x), k) + V::set1(1);  // max keeps a NaN x (second operand)
    return select(gt(lo, x), V::zero(), e * pow2_int(k));
}

}  // namespace RC_NS
}  // namespace relucore
