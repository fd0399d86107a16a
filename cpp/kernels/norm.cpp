// Batch norm with its activation fused into the same passes: the statistics (one read), the
// normalize+activation pass, the backward's two sums (one read of dy and x or y) and the dx pass.
// Over runs of one channel's values, or across the columns of an (N, C) (or (N, C*S)) matrix in the
// vector lanes. Compiled once per ISA; the caller (cpp/ops/norm.cpp) lays out and threads the work.
#include "isa.h"
#include "act_ops.h"

namespace relucore {
namespace RC_NS {
namespace {

// Elements summed in T before the partial sums move to double: short enough that float32
// accumulation stays accurate, long enough that the flush costs nothing.
constexpr i64 kBlock = 1 << 12;
// ... and at the end of a run once this many have been summed: a call over a channel's N runs then
// sums as accurately as one call per run (float32 over 4096 elements per lane lost 4 digits of
// a sum with cancellation on the scalar ISA).
constexpr i64 kRunFlush = 1 << 8;

template <class T> using Vec = typename VecOf<T>::type;

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

// Calls f.vec(offset) for whole vectors (with U = 4, f.vec4(offset) for groups of four first: sums
// into four accumulators, whose adds do not wait on each other) and f.one(offset) for the tail of
// every run, and f.flush() once at least kBlock elements have been summed since the last flush, at
// the end of a run once kRunFlush have, and at the end (the summation order depends only on the
// shape).
template <class V, class F, int U = 1> inline void for_runs(const NormRuns& r, F& f) {
    constexpr int L = V::L;
    i64 pending = 0;
    for (i64 n = 0; n < r.runs; ++n) {
        const i64 base = n * r.stride;
        for (i64 b = 0; b < r.len; b += kBlock) {
            const i64 e = b + kBlock < r.len ? b + kBlock : r.len;
            i64 i = b;
            if constexpr (U == 4)
                for (; i + 4 * L <= e; i += 4 * L) f.vec4(base + i);
            for (; i + L <= e; i += L) f.vec(base + i);
            for (; i < e; ++i) f.one(base + i);
            pending += e - b;
            if (pending >= kBlock) {
                f.flush();
                pending = 0;
            }
        }
        if (pending >= kRunFlush) {
            f.flush();
            pending = 0;
        }
    }
    f.flush();
}

template <class T> struct Moments {
    using V = typename VecOf<T>::type;
    using S = ScalarOf<T>;
    const T* x;
    T shift;
    V a1[4] = {V::zero(), V::zero(), V::zero(), V::zero()}, a2[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    T t1 = 0, t2 = 0;
    double s1 = 0, s2 = 0;
    void add(int u, i64 i) {  // the vector at i into accumulator pair u
        const V d = V::load(x + i) - V::set1(shift);
        a1[u] = a1[u] + d;
        a2[u] = mul_add(d, d, a2[u]);
    }
    void vec4(i64 i) {
        for (int u = 0; u < 4; ++u) add(u, i + u * V::L);
    }
    void vec(i64 i) { add(0, i); }
    void one(i64 i) {
        T d = x[i] - shift;
        t1 += d;
        t2 += d * d;
    }
    void flush() {
        s1 += (double)reduce_add((a1[0] + a1[1]) + (a1[2] + a1[3])) + (double)t1;
        s2 += (double)reduce_add((a2[0] + a2[1]) + (a2[2] + a2[3])) + (double)t2;
        for (int u = 0; u < 4; ++u) a1[u] = a2[u] = V::zero();
        t1 = t2 = 0;
    }
};

template <class T>
void moments(const T* x, const NormRuns& r, T shift, double* s1, double* s2) {
    Moments<T> m{x, shift};
    for_runs<typename VecOf<T>::type, Moments<T>, 4>(r, m);
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
    V ag[4] = {V::zero(), V::zero(), V::zero(), V::zero()}, agu[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    T tg = 0, tgu = 0;
    double sg = 0, sgu = 0;
    void add(int q, i64 i) {  // the vector at i into accumulator pair q
        V g, u;
        t.at(k, V::load(dy + i), V::load(s + i), g, u);
        ag[q] = ag[q] + g;
        agu[q] = mul_add(g, u, agu[q]);
    }
    void vec4(i64 i) {
        for (int q = 0; q < 4; ++q) add(q, i + q * V::L);
    }
    void vec(i64 i) { add(0, i); }
    void one(i64 i) {
        S g, u;
        t.at(k, S::load(dy + i), S::load(s + i), g, u);
        tg += g.v;
        tgu += g.v * u.v;
    }
    void flush() {
        sg += (double)reduce_add((ag[0] + ag[1]) + (ag[2] + ag[3])) + (double)tg;
        sgu += (double)reduce_add((agu[0] + agu[1]) + (agu[2] + agu[3])) + (double)tgu;
        for (int q = 0; q < 4; ++q) ag[q] = agu[q] = V::zero();
        tg = tgu = 0;
    }
};

template <class T, class Op, class Inv, int kFrom>
void grad_sums(const T* dy, const T* s, const NormRuns& r, const NormCoef<T>& k, double* sg, double* sgu) {
    GradSums<T, Op, Inv, kFrom> f{dy, s, k, {Op{k.param}, Inv{k.param}}};
    for_runs<typename GradSums<T, Op, Inv, kFrom>::V, GradSums<T, Op, Inv, kFrom>, 4>(r, f);
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
// Swept row by row over chunks of kChunk channels: walking down one channel's column instead would
// touch one cache line per row, `ld` apart, and with ld a multiple of 1-2 KiB every row maps to the
// same few L1 sets (measured 5-8x slower for (256, 512)). Per-channel partial sums live in small
// arrays of T for one chunk, moved to double every kBlock rows: each channel is still summed in
// row order, whatever the chunking or thread count.

constexpr i64 kChunk = 512;

// f(W(), c) for whole vectors (W = V) of [b, e), then one column at a time.
template <class T, class V, class F> inline void each_col(i64 b, i64 e, F&& f) {
    i64 c = b;
    for (; c + V::L <= e; c += V::L) f(V(), c);
    for (; c < e; ++c) f(ScalarOf<T>(), c);
}

// Column sums of p and p * q down the rows: pq(w, r, c, p, q) gives row r's terms for the W at
// column c. In T within blocks of kBlock rows, in double across blocks.
template <class T, class V, class F>
inline void col_sums(i64 rows, i64 c0, i64 c1, double* sp, double* spq, F&& pq) {
    T ap[kChunk], apq[kChunk];
    for (i64 b = c0; b < c1; b += kChunk) {
        const i64 e = b + kChunk < c1 ? b + kChunk : c1;
        for (i64 c = b; c < e; ++c) sp[c] = spq[c] = 0;
        for (i64 r0 = 0; r0 < rows; r0 += kBlock) {
            const i64 r1 = r0 + kBlock < rows ? r0 + kBlock : rows;
            for (i64 c = 0; c < e - b; ++c) ap[c] = apq[c] = 0;
            for (i64 r = r0; r < r1; ++r)
                each_col<T, V>(b, e, [&](auto w, i64 c) {
                    using W = decltype(w);
                    W p, q;
                    pq(w, r, c, p, q);
                    (W::load(ap + c - b) + p).store(ap + c - b);
                    mul_add(p, q, W::load(apq + c - b)).store(apq + c - b);
                });
            for (i64 c = b; c < e; ++c) {
                sp[c] += (double)ap[c - b];
                spq[c] += (double)apq[c - b];
            }
        }
    }
}

// Shifted by row 0 (no cancellation when |mean| >> spread).
template <class T>
void col_moments(const T* x, i64 rows, i64 ld, i64 c0, i64 c1, double* s1, double* s2) {
    col_sums<T, Vec<T>>(rows, c0, c1, s1, s2, [&](auto w, i64 r, i64 c, auto& d, auto& d2) {
        using W = decltype(w);
        d = d2 = W::load(x + r * ld + c) - W::load(x + c);
    });
}

template <class T, class Op>
void col_normalize(const T* x, T* y, i64 rows, i64 ld, i64 c0, i64 c1, const NormCols<T>& k, i64* counts) {
    const Op op{k.param};
    T pos[kChunk];  // positives per channel since the last move to counts (exact below 2^24 in float)
    for (i64 b = c0; b < c1; b += kChunk) {
        const i64 e = b + kChunk < c1 ? b + kChunk : c1;
        if (counts)
            for (i64 c = b; c < e; ++c) counts[c] = 0;
        for (i64 r0 = 0; r0 < rows; r0 += kBlock) {
            const i64 r1 = r0 + kBlock < rows ? r0 + kBlock : rows;
            for (i64 c = 0; c < e - b; ++c) pos[c] = 0;
            for (i64 r = r0; r < r1; ++r)
                each_col<T, Vec<T>>(b, e, [&](auto w, i64 c) {
                    using W = decltype(w);
                    const W z = mul_add(W::load(x + r * ld + c) - W::load(k.mean + c), W::load(k.scale + c),
                                        W::load(k.bias + c));
                    const W v = op.fwd(z);
                    v.store(y + r * ld + c);
                    if (counts)
                        (W::load(pos + c - b) + select(gt(v, W::zero()), W::set1(1), W::zero())).store(pos + c - b);
                });
            if (counts)
                for (i64 c = b; c < e; ++c) counts[c] += (i64)pos[c - b];
        }
    }
}

// g and u of one vector of channels (see NormKernels): from x through Op, from y through Inv.
template <class T, class Op, class Inv, int kFrom, class W>
inline void col_terms(const Op& op, const Inv& inv, W dy, W s, W m, W sc, W b, W& g, W& u) {
    if constexpr (kFrom == kFromX) {
        u = s - m;
        g = op.bwd(dy, mul_add(u, sc, b));
    } else {
        u = inv.inv(s) - b;
        g = inv.grad(dy, s);
    }
}

template <class T, class Op, class Inv, int kFrom>
void col_grad_sums(const T* dy, const T* s, i64 rows, i64 ld, i64 c0, i64 c1, const NormCols<T>& k, double* sg,
                   double* sgu) {
    const Op op{k.param};
    const Inv inv{k.param};
    col_sums<T, typename VecFor<T, Inv, kFrom>::type>(rows, c0, c1, sg, sgu, [&](auto w, i64 r, i64 c, auto& g, auto& u) {
        using W = decltype(w);
        col_terms<T, Op, Inv, kFrom>(op, inv, W::load(dy + r * ld + c), W::load(s + r * ld + c), W::load(k.mean + c),
                                     W::load(k.scale + c), W::load(k.bias + c), g, u);
    });
}

template <class T, class Op, class Inv, int kFrom>
void col_grad_input(const T* dy, const T* s, T* dx, i64 rows, i64 ld, i64 c0, i64 c1, const NormCols<T>& k,
                    int training) {
    const Op op{k.param};
    const Inv inv{k.param};
    for (i64 r = 0; r < rows; ++r)
        each_col<T, typename VecFor<T, Inv, kFrom>::type>(c0, c1, [&](auto w, i64 c) {
            using W = decltype(w);
            W g, u;
            col_terms<T, Op, Inv, kFrom>(op, inv, W::load(dy + r * ld + c), W::load(s + r * ld + c),
                                         W::load(k.mean + c), W::load(k.scale + c), W::load(k.bias + c), g, u);
            const W a = W::load(k.a + c);
            const W d = training ? mul_add(a, g, mul_add(W::load(k.c2 + c), u, W::load(k.c0 + c))) : a * g;
            d.store(dx + r * ld + c);
        });
}

template <class T, class Op, class Inv>
void set_act(NormKernels<T>& k, int act) {
    k.col_normalize[act] = col_normalize<T, Op>;
    k.col_grad_sums[act][kFromX] = col_grad_sums<T, Op, Inv, kFromX>;
    k.col_grad_input[act][kFromX] = col_grad_input<T, Op, Inv, kFromX>;
    k.col_grad_sums[act][kFromY] = col_grad_sums<T, Op, Inv, kFromY>;
    k.col_grad_input[act][kFromY] = col_grad_input<T, Op, Inv, kFromY>;
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
    k.col_grad_sums[kNormRelu][kFromY] = nullptr;
    k.col_grad_input[kNormRelu][kFromY] = nullptr;
    set_act<T, LeakyRelu<T>, LeakyFromY<T>>(k, kNormLeaky);
    set_act<T, Elu<T>, EluFromY<T>>(k, kNormElu);
    fill_norm_pool(k);
    return k;
}

template NormKernels<float> make_norm<float>();
template NormKernels<double> make_norm<double>();

}  // namespace RC_NS
}  // namespace relucore
