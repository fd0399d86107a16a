// The activation functors, each written once against the wrapper type W: fwd(x), bwd(dy, s), and
// for ops with a mask pass_bits(x) and bwd_mask(pass, dy). Used by the activation kernels
// (activations.cpp, one per line of relucore/activations.inc) and by the passes that fuse an
// activation (NormAct): batch norm's, and the convolution's output stores.
#pragma once
#include "vmath.h"

namespace relucore {
namespace RC_NS {
namespace {

template <class W> inline uint64_t lanes_mask() { return W::L >= 64 ? ~0ull : ((1ull << W::L) - 1); }

// ---- the ops -------------------------------------------------------------------------------------

template <class T> struct Relu {
    T g0;  // gradient at exactly 0 (backward)
    template <class W> W fwd(W x) const { return max(W::zero(), x); }  // x < 0 ? 0 : x; keeps -0.0, NaN
    template <class W> uint64_t pass_bits(W x) const { return bits(x, le(x, W::zero())) ^ lanes_mask<W>(); }
    template <class W> W bwd(W dy, W x) const {
        W g = select(le(x, W::zero()), W::zero(), dy);
        return g0 == T(0) ? g : select(eq(x, W::zero()), W::set1(g0) * dy, g);
    }
    template <class W, class M> W bwd_mask(M pass, W dy) const { return select(pass, dy, W::zero()); }
};

template <class T> struct LeakyRelu {
    T slope;
    template <class W> W fwd(W x) const { return select(gt(x, W::zero()), x, x * W::set1(slope)); }
    template <class W> uint64_t pass_bits(W x) const { return bits(x, gt(x, W::zero())); }
    template <class W> W bwd(W dy, W x) const { return select(gt(x, W::zero()), dy, dy * W::set1(slope)); }
    template <class W, class M> W bwd_mask(M pass, W dy) const { return select(pass, dy, dy * W::set1(slope)); }
};

template <class T> struct Elu {
    T alpha;
    template <class W> W fwd(W x) const { return select(le(x, W::zero()), W::set1(alpha) * vexpm1(x), x); }
    template <class W> uint64_t pass_bits(W) const { return 0; }
    template <class W> W bwd(W dy, W x) const {
        return select(le(x, W::zero()), (dy * W::set1(alpha)) * vexp(x), dy);
    }
};

template <class T> struct Sigmoid {
    T unused;  // every op is built as Op{param}
    template <class W> W fwd(W x) const { return W::set1(1) / (W::set1(1) + vexp(W::zero() - x)); }
    template <class W> uint64_t pass_bits(W) const { return 0; }
    template <class W> W bwd(W dy, W y) const { return (dy * y) * (W::set1(1) - y); }
};

template <class T> struct Tanh {
    T unused;
    template <class W> W fwd(W x) const {
        W a = abs(x);
        W e = vexpm1(a + a);  // tanh|x| = expm1(2|x|) / (expm1(2|x|) + 2), accurate near 0
        return copy_sign(e / (e + W::set1(2)), x);
    }
    template <class W> uint64_t pass_bits(W) const { return 0; }
    template <class W> W bwd(W dy, W y) const { return dy * (W::set1(1) - y * y); }
};

template <class T> struct Relu6 {
    T unused;
    // max(0, x) keeps -0.0 and NaN; min(6, y) keeps NaN (the second operand wins when unordered)
    template <class W> W fwd(W x) const { return min(W::set1(6), max(W::zero(), x)); }
    template <class W> uint64_t pass_bits(W x) const {
        return (bits(x, le(x, W::zero())) | bits(x, le(W::set1(6), x))) ^ lanes_mask<W>();
    }
    template <class W> W bwd(W dy, W x) const {
        return select(le(x, W::zero()), W::zero(), select(le(W::set1(6), x), W::zero(), dy));
    }
    template <class W, class M> W bwd_mask(M pass, W dy) const { return select(pass, dy, W::zero()); }
};

// No activation (NormAct kNormNone): fwd and bwd compile to nothing.
template <class T> struct Identity {
    T unused;
    template <class W> W fwd(W x) const { return x; }
    template <class W> W bwd(W dy, W) const { return dy; }
};

// y[i] = op.fwd(y[i]) for i < n, in vectors with a masked last one (a scalar remainder would
// cost a whole vector's exp per element).
template <class T, class Op> inline void fwd_in_place(const Op& op, T* y, i64 n) {
    using V = typename VecOf<T>::type;
    i64 i = 0;
    for (; i + V::L <= n; i += V::L) op.fwd(V::load(y + i)).store(y + i);
    if (i < n) op.fwd(V::load_tail(y + i, n - i)).store_tail(y + i, n - i);
}

// f(op) with the functor of a fused activation: kernels dispatch once per call, then run a loop
// templated on the functor.
template <class T, class F> inline auto with_act(int act, T param, F&& f) {
    switch (act) {
        case kNormRelu: return f(Relu<T>{T(0)});
        case kNormLeaky: return f(LeakyRelu<T>{param});
        case kNormElu: return f(Elu<T>{param});
        default: return f(Identity<T>{param});
    }
}

}  // namespace
}  // namespace RC_NS
}  // namespace relucore
