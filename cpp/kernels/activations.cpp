// The activation kernels: every op of relucore/activations.inc (its functor in act_ops.h) driven by
// one forward and one backward loop over the wrapper type W (the ISA's vector or its one-lane Scalar).
// Compiled once per ISA (see CMakeLists.txt): RC_NS names the ISA, the wrapper header comes from it.
#include "isa.h"
#include "act_ops.h"
#include "vmath.h"

namespace relucore {
namespace RC_NS {
namespace {

inline void put_bit(uint8_t* mask, i64 pos, bool on) {
    uint8_t b = (uint8_t)(1u << (pos & 7));
    if (on) mask[pos >> 3] |= b; else mask[pos >> 3] &= (uint8_t)~b;
}
inline bool get_bit(const uint8_t* mask, i64 pos) { return (mask[pos >> 3] >> (pos & 7)) & 1u; }

// ---- the loops ------------------------------------------------------------------------------------

template <class T> struct Tile {
    using V = typename VecOf<T>::type;
    using S = ScalarOf<T>;
    static constexpr int U = V::L >= 4 ? 4 : 8;  // unroll so a tile is a whole number of mask bytes
    static constexpr int B = V::L * U;            // 8..64 elements
};

// Advance i (scalar steps) until y + i is 64-byte aligned, as cache-bypassing stores need.
template <class T, class F> inline i64 align_head(const T* y, i64 i, i64 n, F&& one) {
    for (; i < n && ((uintptr_t)(y + i) & 63); ++i) one(i);
    return i;
}

template <class T, class Op, bool kMask, bool kCount, bool kStream>
i64 forward_loop(const Op& op, const T* x, T* y, i64 n, uint8_t* mask, i64 bit0) {
    using V = typename Tile<T>::V;
    using S = typename Tile<T>::S;
    constexpr int B = Tile<T>::B, U = Tile<T>::U, L = V::L;
    i64 i = 0, count = 0;
    auto one = [&](i64 j) {
        S xs = S::load(x + j), ys = op.fwd(xs);
        if (kMask) put_bit(mask, bit0 + j, op.pass_bits(xs) != 0);
        if (kCount) count += ys.v > T(0);
        ys.store(y + j);
    };
    if (kMask)
        for (; i < n && ((bit0 + i) & 7); ++i) one(i);  // align the mask to a byte
    if (kStream) i = align_head(y, i, n, one);
    for (; i + B <= n; i += B) {
        uint64_t mb = 0;
        for (int u = 0; u < U; ++u) {
            V xv = V::load(x + i + u * L), yv = op.fwd(xv);
            if (kMask) mb |= op.pass_bits(xv) << (u * L);
            if (kCount) count += __builtin_popcountll(bits(yv, gt(yv, V::zero())));
            if (kStream) yv.stream(y + i + u * L); else yv.store(y + i + u * L);
        }
        if (kMask) memcpy(mask + ((bit0 + i) >> 3), &mb, B / 8);  // x86 is little-endian
    }
    if (kStream) stream_fence();
    for (; i < n; ++i) one(i);
    return count;
}

template <class T, class Op>
i64 forward(const T* x, T* y, i64 n, T param, uint8_t* mask, i64 bit0, int flags) {
    const Op op{param};
    const bool count = flags & kCount;
    if (mask) return count ? forward_loop<T, Op, true, true, false>(op, x, y, n, mask, bit0)
                           : forward_loop<T, Op, true, false, false>(op, x, y, n, mask, bit0);
    if (flags & kStream)
        return count ? forward_loop<T, Op, false, true, true>(op, x, y, n, mask, bit0)
                     : forward_loop<T, Op, false, false, true>(op, x, y, n, mask, bit0);
    return count ? forward_loop<T, Op, false, true, false>(op, x, y, n, mask, bit0)
                 : forward_loop<T, Op, false, false, false>(op, x, y, n, mask, bit0);
}

template <class T, class Op, bool kStream>
void backward_loop(const Op& op, const T* dy, const T* s, T* dx, i64 n) {
    using V = typename Tile<T>::V;
    using S = typename Tile<T>::S;
    constexpr int B = Tile<T>::B, U = Tile<T>::U, L = V::L;
    auto one = [&](i64 j) { op.bwd(S::load(dy + j), S::load(s + j)).store(dx + j); };
    i64 i = kStream ? align_head(dx, 0, n, one) : 0;
    for (; i + B <= n; i += B)
        for (int u = 0; u < U; ++u) {
            const i64 j = i + u * L;
            V g = op.bwd(V::load(dy + j), V::load(s + j));
            if (kStream) g.stream(dx + j); else g.store(dx + j);
        }
    if (kStream) stream_fence();
    for (; i < n; ++i) one(i);
}

template <class T, class Op>
void backward(const T* dy, const T* s, T* dx, i64 n, T param, int flags) {
    const Op op{param};
    if (flags & kStream) backward_loop<T, Op, true>(op, dy, s, dx, n);
    else backward_loop<T, Op, false>(op, dy, s, dx, n);
}

template <class T, class Op>
void backward_mask(const T* dy, const uint8_t* mask, i64 bit0, T* dx, i64 n, T param) {
    using V = typename Tile<T>::V;
    using S = typename Tile<T>::S;
    constexpr int B = Tile<T>::B, U = Tile<T>::U, L = V::L;
    const Op op{param};
    i64 i = 0;
    auto one = [&](i64 j) {
        S d = S::load(dy + j);
        op.bwd_mask(get_bit(mask, bit0 + j), d).store(dx + j);
    };
    for (; i < n && ((bit0 + i) & 7); ++i) one(i);
    for (; i + B <= n; i += B) {
        uint64_t mb = 0;
        memcpy(&mb, mask + ((bit0 + i) >> 3), B / 8);
        for (int u = 0; u < U; ++u) {
            const i64 j = i + u * L;
            V d = V::load(dy + j);
            op.bwd_mask(from_bits(d, mb >> (u * L)), d).store(dx + j);
        }
    }
    for (; i < n; ++i) one(i);
}

template <class T>
double prelu_backward(const T* dy, const T* x, T* dx, i64 n, T w) {
    using V = typename Tile<T>::V;
    using S = typename Tile<T>::S;
    constexpr int B = Tile<T>::B, U = Tile<T>::U, L = V::L;
    const LeakyRelu<T> op{w};
    V acc[U];
    for (int u = 0; u < U; ++u) acc[u] = V::zero();
    i64 i = 0;
    for (; i + B <= n; i += B)
        for (int u = 0; u < U; ++u) {
            const i64 j = i + u * L;
            V d = V::load(dy + j), xv = V::load(x + j);
            op.bwd(d, xv).store(dx + j);
            acc[u] = acc[u] + select(gt(xv, V::zero()), V::zero(), xv * d);
        }
    double sum = 0;
    for (int u = 0; u < U; ++u) sum += (double)reduce_add(acc[u]);
    for (; i < n; ++i) {
        S d = S::load(dy + i), xs = S::load(x + i);
        op.bwd(d, xs).store(dx + i);
        sum += xs.v > T(0) ? 0.0 : (double)(xs.v * d.v);
    }
    return sum;
}

// The mask kernel of ops whose list entry has mask = 1; null for the others.
template <class T, class Op, int kMask> struct MaskKernel {
    static typename ElementwiseKernels<T>::BackwardMask get() { return nullptr; }
};
template <class T, class Op> struct MaskKernel<T, Op, 1> {
    static typename ElementwiseKernels<T>::BackwardMask get() { return backward_mask<T, Op>; }
};

}  // namespace

template <class T>
ElementwiseKernels<T> make_elementwise() {
    ElementwiseKernels<T> k;
#define RC_ACTIVATION(name, Op, from, cost, mask, ...)                \
    k.forward[(int)Act::name] = forward<T, Op<T>>;                    \
    k.backward[(int)Act::name] = backward<T, Op<T>>;                  \
    k.backward_mask[(int)Act::name] = MaskKernel<T, Op<T>, mask>::get();
#include "relucore/activations.inc"
#undef RC_ACTIVATION
    k.prelu_backward = prelu_backward<T>;
    k.tile = Tile<T>::B;
    return k;
}

template ElementwiseKernels<float> make_elementwise<float>();
template ElementwiseKernels<double> make_elementwise<double>();

}  // namespace RC_NS
}  // namespace relucore
