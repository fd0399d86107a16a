// Batch norm over one channel at a time, with its activation fused into the same passes: the
// statistics (one read), the normalize+activation pass, the backward's two sums (one read of dy and
// x or y) and the dx pass. Compiled once per ISA; the caller (cpp/ops/norm.cpp) threads over channels.
#include "isa.h"
#include "act_ops.h"

namespace relucore {
namespace RC_NS {
namespace {

// Elements summed in T before the partial sums move to double: short enough that float32
// accumulation stays accurate, long enough that the flush costs nothing.
constexpr i64 kBlock = 1 << 12;

template <class T> struct Identity {
    T unused;
    template <class W> W fwd(W x) const { return x; }
    template <class W> W bwd(W dy, W) const { return dy; }
};

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

template <class T, class Op, class Inv>
void set_act(NormKernels<T>& k, int act) {
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
