// Batch norm with its activation fused into the same passes: the statistics (one read), the
// normalize+activation pass, the backward's two sums (one read of dy and x or y) and the dx pass.
// Over one channel's runs of an (N, C, S) array, or across channels in the vector lanes for an (N, C)
// array. Compiled once per ISA; the caller (cpp/ops/norm.cpp) threads over channels.
#include "isa.h"
#include "act_ops.h"

namespace relucore {
namespace RC_NS {
namespace {

// Elements summed in T before the partial sums move to double: short enough that float32
// accumulation stays accurate, long enough that the flush costs nothing.
constexpr i64 kBlock = 1 << 12;

// The y-only backward's view of an activation: z = act^-1(y) and dy * act'(z) computed from y.
template <class T> struct IdentityFromY {
    T unused;
    template <class W> W inv(W y) const { return y; }
    template <class W> W grad(W dy, W) const { return dy; }
};
template <class T> struct LeakyFromY {
    T slope;
    template <class W> W inv(W y) const { return select(gt(y, W::zero()), y, y / W::set1(slope)); }
    template <class W> W grad(W dy, W y) const { return select(gt(y, W::zero()), dy, dy * W::set1(slope)); }
};
// Inverting ELU needs log1p, which the wrapper lacks: this one runs one lane at a time (W = Scalar).
template <class T> struct EluFromY {
    T alpha;
    template <class W> W inv(W y) const {
        if (y.v > T(0)) return y;
        return {sizeof(T) == 4 ? (T)__builtin_log1pf((float)(y.v / alpha)) : (T)__builtin_log1p((double)(y.v / alpha))};
    }
    template <class W> W grad(W dy, W y) const {  // alpha * exp(z) = y + alpha
        return select(gt(y, W::zero()), dy, dy * (y + W::set1(alpha)));
    }
};

// Calls f.vec(offset) for whole vectors and f.one(offset) for the tail of every run, and
// f.flush() after each block of kBlock elements and at the end of each run.
template <class V, class F> inline void for_runs(const NormRuns& r, F& f) {
    constexpr int L = V::L;
    for (i64 n = 0; n < r.runs; ++n) {
        const i64 base = n * r.stride;
        for (i64 b = 0; b < r.len; b += kBlock) {
            const i64 e = b + kBlock < r.len ? b + kBlock : r.len;
            i64 i = b;
            for (; i + L <= e; i += L) f.vec(base + i);
            for (; i < e; ++i) f.one(base + i);
            f.flush();
        }
    }
}

template <class T> struct Moments {
    using V = typename VecOf<T>::type;
    using S = ScalarOf<T>;
    const T* x;
    T shift;
    V a1 = V::zero(), a2 = V::zero();
    T t1 = 0, t2 = 0;
    double s1 = 0, s2 = 0;
    void vec(i64 i) {
        V d = V::load(x + i) - V::set1(shift);
        a1 = a1 + d;
        a2 = mul_add(d, d, a2);
    }
    void one(i64 i) {
        T d = x[i] - shift;
        t1 += d;
        t2 += d * d;
    }
    void flush() {
        s1 += (double)reduce_add(a1) + (double)t1;
        s2 += (double)reduce_add(a2) + (double)t2;
        a1 = a2 = V::zero();
        t1 = t2 = 0;
    }
};

template <class T>
void moments(const T* x, const NormRuns& r, T shift, double* s1, double* s2) {
    Moments<T> m{x, shift};
    for_runs<typename VecOf<T>::type>(r, m);
    *s1 = m.s1;
    *s2 = m.s2;
}

template <class T, class Op> struct Normalize {
    using V = typename VecOf<T>::type;
    using S = ScalarOf<T>;
    const T* x;
    T* y;
    T mean, scale, bias;
    Op op;
    bool count;
    i64 n = 0;
    template <class W> void at(i64 i) {
        W z = mul_add(W::load(x + i) - W::set1(mean), W::set1(scale), W::set1(bias));
        W v = op.fwd(z);
        v.store(y + i);
        if (count) n += __builtin_popcountll(bits(v, gt(v, W::zero())));
    }
    void vec(i64 i) { at<V>(i); }
    void one(i64 i) { at<S>(i); }
    void flush() {}
};

template <class T, class Op>
i64 normalize(const T* x, T* y, const NormRuns& r, T mean, T scale, T bias, T param, int count) {
    Normalize<T, Op> f{x, y, mean, scale, bias, Op{param}, count != 0};
    for_runs<typename VecOf<T>::type>(r, f);
    return f.n;
}

// g and u of one vector (see NormKernels): from x through the forward functor Op, from y through
// the inverse functor Inv.
template <class T, class Op, class Inv, int kFrom> struct GradTerms {
    Op op;
    Inv inv;
    template <class W> void at(const NormCoef<T>& k, W dy, W s, W& g, W& u) const {
        if constexpr (kFrom == kFromX) {
            u = s - W::set1(k.mean);
            g = op.bwd(dy, mul_add(u, W::set1(k.scale), W::set1(k.bias)));
        } else {
            u = inv.inv(s) - W::set1(k.bias);
            g = inv.grad(dy, s);
        }
    }
};

// Vectors of the y-only ELU run one lane at a time (see EluFromY).
template <class T, class Inv, int kFrom> struct VecFor { using type = typename VecOf<T>::type; };
template <class T, int kFrom> struct VecFor<T, EluFromY<T>, kFrom> { using type = ScalarOf<T>; };
template <class T> struct VecFor<T, EluFromY<T>, kFromX> { using type = typename VecOf<T>::type; };

template <class T, class Op, class Inv, int kFrom> struct GradSums {
    using V = typename VecFor<T, Inv, kFrom>::type;
    using S = ScalarOf<T>;
    const T *dy, *s;
    const NormCoef<T>& k;
    GradTerms<T, Op, Inv, kFrom> t;
    V ag = V::zero(), agu = V::zero();
    T tg = 0, tgu = 0;
    double sg = 0, sgu = 0;
    void vec(i64 i) {
        V g, u;
        t.at(k, V::load(dy + i), V::load(s + i), g, u);
        ag = ag + g;
        agu = mul_add(g, u, agu);
    }
    void one(i64 i) {
        S g, u;
        t.at(k, S::load(dy + i), S::load(s + i), g, u);
        tg += g.v;
        tgu += g.v * u.v;
    }
    void flush() {
        sg += (double)reduce_add(ag) + (double)tg;
        sgu += (double)reduce_add(agu) + (double)tgu;
        ag = agu = V::zero();
        tg = tgu = 0;
    }
};

template <class T, class Op, class Inv, int kFrom>
void grad_sums(const T* dy, const T* s, const NormRuns& r, const NormCoef<T>& k, double* sg, double* sgu) {
    GradSums<T, Op, Inv, kFrom> f{dy, s, k, {Op{k.param}, Inv{k.param}}};
    for_runs<typename GradSums<T, Op, Inv, kFrom>::V>(r, f);
    *sg = f.sg;
    *sgu = f.sgu;
}

template <class T, class Op, class Inv, int kFrom, bool kTraining> struct GradInput {
    using V = typename VecFor<T, Inv, kFrom>::type;
    using S = ScalarOf<T>;
    const T *dy, *s;
    T* dx;
    const NormCoef<T>& k;
    GradTerms<T, Op, Inv, kFrom> t;
    template <class W> void at(i64 i) {
        W g, u;
        t.at(k, W::load(dy + i), W::load(s + i), g, u);
        W d = kTraining ? mul_add(W::set1(k.a), g, mul_add(W::set1(k.c2), u, W::set1(k.c0))) : W::set1(k.a) * g;
        d.store(dx + i);
    }
    void vec(i64 i) { at<V>(i); }
    void one(i64 i) { at<S>(i); }
    void flush() {}
};

template <class T, class Op, class Inv, int kFrom>
void grad_input(const T* dy, const T* s, T* dx, const NormRuns& r, const NormCoef<T>& k, int training) {
    using V = typename VecFor<T, Inv, kFrom>::type;
    const GradTerms<T, Op, Inv, kFrom> t{Op{k.param}, Inv{k.param}};
    if (training) {
        GradInput<T, Op, Inv, kFrom, true> f{dy, s, dx, k, t};
        for_runs<V>(r, f);
    } else {
        GradInput<T, Op, Inv, kFrom, false> f{dy, s, dx, k, t};
        for_runs<V>(r, f);
    }
}

// ---- (N, C) arrays: lanes across channels ------------------------------------------------------

// Adds the lanes of a to s[0 .. W::L).
template <class T, class W> inline void flush_lanes(W a, double* s) {
    T t[W::L];
    a.store(t);
    for (int l = 0; l < W::L; ++l) s[l] += (double)t[l];
}

// f.template at<W>(c) for whole vectors of channels from c0, then one channel at a time.
template <class T, class F> inline void for_cols(i64 c0, i64 c1, F&& f) {
    using V = typename VecOf<T>::type;
    i64 c = c0;
    for (; c + V::L <= c1; c += V::L) f.template at<V>(c);
    for (; c < c1; ++c) f.template at<ScalarOf<T>>(c);
}

// Column sums of p and p * q down the rows, in W within blocks of kBlock rows, in double across
// blocks; pq(r, p, q) gives row r's terms.
template <class T, class W, class F> inline void col_sums(i64 rows, double* sp, double* spq, F&& pq) {
    for (int l = 0; l < W::L; ++l) sp[l] = spq[l] = 0;
    for (i64 r0 = 0; r0 < rows; r0 += kBlock) {
        const i64 r1 = r0 + kBlock < rows ? r0 + kBlock : rows;
        W ap = W::zero(), apq = W::zero();
        for (i64 r = r0; r < r1; ++r) {
            W p, q;
            pq(r, p, q);
            ap = ap + p;
            apq = mul_add(p, q, apq);
        }
        flush_lanes<T>(ap, sp);
        flush_lanes<T>(apq, spq);
    }
}

template <class T> struct ColMoments {
    const T* x;
    i64 rows, ld;
    double *s1, *s2;
    template <class W> void at(i64 c) {
        const W shift = W::load(x + c);
        col_sums<T, W>(rows, s1 + c, s2 + c, [&](i64 r, W& d, W& d2) { d = d2 = W::load(x + r * ld + c) - shift; });
    }
};

template <class T>
void col_moments(const T* x, i64 rows, i64 ld, i64 c0, i64 c1, double* s1, double* s2) {
    for_cols<T>(c0, c1, ColMoments<T>{x, rows, ld, s1, s2});
}

template <class T, class Op> struct ColNormalize {
    const T* x;
    T* y;
    i64 rows, ld;
    const NormCols<T>& k;
    i64* counts;
    template <class W> void at(i64 c) {
        const Op op{k.param};
        const W m = W::load(k.mean + c), s = W::load(k.scale + c), b = W::load(k.bias + c);
        if (counts)
            for (int l = 0; l < W::L; ++l) counts[c + l] = 0;
        for (i64 r = 0; r < rows; ++r) {
            W v = op.fwd(mul_add(W::load(x + r * ld + c) - m, s, b));
            v.store(y + r * ld + c);
            if (counts) {
                const uint64_t pos = bits(v, gt(v, W::zero()));
                for (int l = 0; l < W::L; ++l) counts[c + l] += (i64)((pos >> l) & 1);
            }
        }
    }
};

template <class T, class Op>
void col_normalize(const T* x, T* y, i64 rows, i64 ld, i64 c0, i64 c1, const NormCols<T>& k, i64* counts) {
    for_cols<T>(c0, c1, ColNormalize<T, Op>{x, y, rows, ld, k, counts});
}

template <class T, class Op> struct ColGradSums {
    const T *dy, *x;
    i64 rows, ld;
    const NormCols<T>& k;
    double *sg, *sgu;
    template <class W> void at(i64 c) {
        const Op op{k.param};
        const W m = W::load(k.mean + c), s = W::load(k.scale + c), b = W::load(k.bias + c);
        col_sums<T, W>(rows, sg + c, sgu + c, [&](i64 r, W& g, W& u) {
            u = W::load(x + r * ld + c) - m;
            g = op.bwd(W::load(dy + r * ld + c), mul_add(u, s, b));
        });
    }
};

template <class T, class Op>
void col_grad_sums(const T* dy, const T* x, i64 rows, i64 ld, i64 c0, i64 c1, const NormCols<T>& k, double* sg,
                   double* sgu) {
    for_cols<T>(c0, c1, ColGradSums<T, Op>{dy, x, rows, ld, k, sg, sgu});
}

template <class T, class Op> struct ColGradInput {
    const T *dy, *x;
    T* dx;
    i64 rows, ld;
    const NormCols<T>& k;
    bool training;
    template <class W> void at(i64 c) {
        const Op op{k.param};
        const W m = W::load(k.mean + c), s = W::load(k.scale + c), b = W::load(k.bias + c);
        const W a = W::load(k.a + c), c0 = W::load(k.c0 + c), c2 = W::load(k.c2 + c);
        for (i64 r = 0; r < rows; ++r) {
            W u = W::load(x + r * ld + c) - m;
            W g = op.bwd(W::load(dy + r * ld + c), mul_add(u, s, b));
            W d = training ? mul_add(a, g, mul_add(c2, u, c0)) : a * g;
            d.store(dx + r * ld + c);
        }
    }
};

template <class T, class Op>
void col_grad_input(const T* dy, const T* x, T* dx, i64 rows, i64 ld, i64 c0, i64 c1, const NormCols<T>& k,
                    int training) {
    for_cols<T>(c0, c1, ColGradInput<T, Op>{dy, x, dx, rows, ld, k, training != 0});
}

template <class T, class Op, class Inv>
void set_act(NormKernels<T>& k, int act) {
    k.col_normalize[act] = col_normalize<T, Op>;
    k.col_grad_sums[act] = col_grad_sums<T, Op>;
    k.col_grad_input[act] = col_grad_input<T, Op>;
    k.normalize[act] = normalize<T, Op>;
    k.grad_sums[act][kFromX] = grad_sums<T, Op, Inv, kFromX>;
    k.grad_input[act][kFromX] = grad_input<T, Op, Inv, kFromX>;
    k.grad_sums[act][kFromY] = grad_sums<T, Op, Inv, kFromY>;
    k.grad_input[act][kFromY] = grad_input<T, Op, Inv, kFromY>;
}

}  // namespace

template <class T>
NormKernels<T> make_norm() {
    NormKernels<T> k;
    k.moments = moments<T>;
    k.col_moments = col_moments<T>;
    k.lanes = VecOf<T>::type::L;
    set_act<T, Identity<T>, IdentityFromY<T>>(k, kNormNone);
    set_act<T, Relu<T>, IdentityFromY<T>>(k, kNormRelu);
    k.grad_sums[kNormRelu][kFromY] = nullptr;  // relu is not invertible
    k.grad_input[kNormRelu][kFromY] = nullptr;
    set_act<T, LeakyRelu<T>, LeakyFromY<T>>(k, kNormLeaky);
    set_act<T, Elu<T>, EluFromY<T>>(k, kNormElu);
    return k;
}

template NormKernels<float> make_norm<float>();
template NormKernels<double> make_norm<double>();

}  // namespace RC_NS
}  // namespace relucore
