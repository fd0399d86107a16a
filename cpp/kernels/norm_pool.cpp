// Batch norm + activation + 2x2 stride-2 max pooling over one (H, W) plane with no plane in
// between: the forward normalizes the four vectors of each row pair's windows as it loads them and
// pools them (the values and positions of normalize, then max_pool_pos); the backward's sums run
// over the windows' winners only (the other places' dy is 0), and its dx pass unpools dy in
// registers. Per value the arithmetic is norm.cpp's (GradTerms, GradInput), so the forward and dx
// are those of the separate kernels; the sums differ from theirs in the order of the adds (and
// in the fused multiply-add of the terms that norm.cpp's scalar tails multiply and add apart).
#include "isa.h"
#include "act_ops.h"
#include "pool_2x2.h"

namespace relucore {
namespace RC_NS {
namespace {

// Elements summed in T before the partial sums move to double, per lane as norm.cpp's sums do.
constexpr i64 kPooledBlock = 1 << 10;

template <class T, class Op> struct NormPrep {  // act((x - mean) * scale + bias), as normalize
    T mean, scale, bias;
    Op op;
    template <class W> W operator()(W x) const {
        return op.fwd(mul_add(x - W::set1(mean), W::set1(scale), W::set1(bias)));
    }
};

template <class T, class Op>
void pool2_normalize(const T* x, T* y, uint8_t* pos, const ConvGeom& g, T mean, T scale, T bias, T param) {
    max_pool_2x2s2(x, y, PosSink{pos}, g, NormPrep<T, Op>{mean, scale, bias, Op{param}});
}

// One row pair's windows [ow, ow + n) of a plane: the four loaded vectors (first row's 2L columns,
// then the second's; whole vectors while they stay inside the plane, which ends at `end`), and dy's
// and the positions' n values (whole while L stay inside the pooled plane of `out`).
template <class T, class V> struct Windows {
    V x[4], dy, pos;
    uint64_t valid;  // the lanes of the n windows
    Windows(const T* r0, const T* r1, const T* end, const T* dyp, const uint8_t* posp, i64 o, i64 n, i64 out) {
        constexpr int L = V::L;
        valid = n == L ? ~uint64_t(0) : (uint64_t(1) << n) - 1;
        const T* rows[2] = {r0, r1};
        for (int h = 0; h < 2; ++h) {
            if (n == L || rows[h] + 2 * L <= end) {
                x[2 * h] = V::load(rows[h]), x[2 * h + 1] = V::load(rows[h] + L);
            } else {
                const i64 lo = 2 * n < L ? 2 * n : L;
                x[2 * h] = V::load_tail(rows[h], lo), x[2 * h + 1] = V::load_tail(rows[h] + L, 2 * n - lo);
            }
        }
        const bool in = o + L <= out;
        dy = in ? V::load(dyp + o) : V::load_tail(dyp + o, n);
        pos = in ? load_pos<T, V>(posp + o) : load_pos_tail<T, V>(posp + o, n);
    }
};

// f(w, r, ow, n) for each row pair's runs of n <= L windows from window column ow, in plane order
// (r: the pair's first row's offset in the plane).
template <class T, class V, class F>
void for_windows(const T* dy, const uint8_t* pos, const T* x, const ConvGeom& g, F&& f) {
    constexpr int L = V::L;
    const T* end = x + g.H * g.W;
    for (i64 oh = 0; oh < g.OH; ++oh) {
        const i64 r = 2 * oh * g.W;
        for (i64 ow = 0; ow < g.OW; ow += L) {
            const i64 n = g.OW - ow < L ? g.OW - ow : L;
            f(Windows<T, V>(x + r + 2 * ow, x + r + g.W + 2 * ow, end, dy, pos, oh * g.OW + ow, n, g.OH * g.OW), r,
              ow, n);
        }
    }
}

// f(i) for the places no window covers (flat index i): the last column of odd widths, then the last
// row of odd heights.
template <class F> void for_uncovered(const ConvGeom& g, F&& f) {
    if (g.W > 2 * g.OW)
        for (i64 h = 0; h < 2 * g.OH; ++h) f(h * g.W + g.W - 1);
    for (i64 i = 2 * g.OH * g.W; i < g.H * g.W; ++i) f(i);
}

// 0 * u summed over the places that are not a window's winner: NaN where such a u is inf or NaN (as
// the sum over the whole plane has it), else 0. Run for the planes where the sums' quick check
// (every u finite) fails.
template <class T>
T non_winners_nan(const uint8_t* pos, const T* x, const ConvGeom& g, T mean) {
    const T z = T(0);
    T nan = z;
    for (i64 h = 0; h < g.H; ++h)
        for (i64 w = 0; w < g.W; ++w) {
            const i64 oh = h / 2, ow = w / 2;
            const bool winner = oh < g.OH && ow < g.OW && pos[oh * g.OW + ow] == (h % 2) * 2 + w % 2;
            if (!winner) nan += (x[h * g.W + w] - mean) * z;
        }
    return nan;
}

// The plane's sums of g and g * u (see NormKernels::grad_sums) over its windows' winners, the
// other places' dy being 0. Their terms there are 0 * u: 0, or NaN where u is inf or NaN, which
// non_winners_nan adds where some u is not finite. False if a position is over 3.
template <class T, class Op>
bool pool2_grad_sums(const T* dy, const uint8_t* pos, const T* x, const ConvGeom& g, const NormCoef<T>& k,
                     double* sg, double* sgu) {
    using V = typename VecOf<T>::type;
    using S = ScalarOf<T>;
    const Op op{k.param};
    const V mean = V::set1(k.mean), scale = V::set1(k.scale), bias = V::set1(k.bias), z = V::zero();
    V ag = z, agu = z, nan = z;  // nan: u * 0 over every x read (lanes past the row read other x)
    double s1 = 0, s2 = 0;
    uint64_t bad = 0;
    i64 pending = 0;
    for_windows<T, V>(dy, pos, x, g, [&](const Windows<T, V>& w, i64, i64, i64 n) {
        bad |= bits(w.pos, gt(w.pos, V::set1(T(3)))) & w.valid;
        for (int q = 0; q < 4; ++q) nan = mul_add(w.x[q] - mean, z, nan);
        const V c[4] = {even_lanes(w.x[0], w.x[1]), odd_lanes(w.x[0], w.x[1]), even_lanes(w.x[2], w.x[3]),
                        odd_lanes(w.x[2], w.x[3])};
        V xw = c[0];
        for (int q = 1; q < 4; ++q) xw = select(eq(w.pos, V::set1(T(q))), c[q], xw);
        const auto valid = from_bits(z, w.valid);
        const V u = select(valid, xw - mean, z);
        const V gv = select(valid, op.bwd(w.dy + z, mul_add(u, scale, bias)), z);  // 0 + dy, as unpooled
        ag = ag + gv;
        agu = mul_add(gv, u, agu);
        if ((pending += n) >= kPooledBlock) {
            s1 += (double)reduce_add(ag), s2 += (double)reduce_add(agu);
            ag = agu = z, pending = 0;
        }
    });
    S tail = S::zero();
    for_uncovered(g, [&](i64 i) { tail = mul_add(S::load(x + i) - S::set1(k.mean), S::zero(), tail); });
    *sg = s1 + (double)reduce_add(ag);
    *sgu = s2 + (double)reduce_add(agu);
    const T check = reduce_add(nan) + tail.v;
    if (check != check) *sgu += (double)non_winners_nan(pos, x, g, k.mean);
    return bad == 0;
}

// dx over the plane (see NormKernels::grad_input), dy unpooled in registers: row pairs left to right,
// a row's last windows stored whole where the lanes past the row land inside the plane and where
// this pass writes later (the next rows, the uncovered places), else masked.
template <class T, class Op, bool kTraining>
void pool2_grad_input_as(const T* dy, const uint8_t* pos, const T* x, T* dx, const ConvGeom& g,
                         const NormCoef<T>& k) {
    using V = typename VecOf<T>::type;
    using S = ScalarOf<T>;
    constexpr int L = V::L;
    const Op op{k.param};
    const T* end = x + g.H * g.W;
    const auto at = [&](auto d, auto xv) {  // GradInput::at's arithmetic
        using Wt = decltype(d);
        const Wt u = xv - Wt::set1(k.mean);
        const Wt gv = op.bwd(d, mul_add(u, Wt::set1(k.scale), Wt::set1(k.bias)));
        return kTraining ? mul_add(Wt::set1(k.a), gv, mul_add(Wt::set1(k.c2), u, Wt::set1(k.c0))) : Wt::set1(k.a) * gv;
    };
    for_windows<T, V>(dy, pos, x, g, [&](const Windows<T, V>& w, i64 r, i64 ow, i64 n) {
        V d[4];
        unpool_2x2<T>(w.dy, w.pos, d);
        for (int q = 0; q < 4; ++q) {
            const i64 i = r + (q >> 1) * g.W + 2 * ow + (q & 1) * L;  // this vector's place in the plane
            const V v = at(d[q], w.x[q]);
            // row 0's lanes past the row would land in row 1's start, written before unless ow == 0
            if (n == L || (x + i + L <= end && (q >= 2 || ow == 0 || 2 * ow + (q & 1) * L + L <= g.W))) {
                v.store(dx + i);
            } else {
                const i64 lo = 2 * n < L ? 2 * n : L;
                v.store_tail(dx + i, q & 1 ? 2 * n - lo : lo);
            }
        }
    });
    for_uncovered(g, [&](i64 i) { at(S::zero(), S::load(x + i)).store(dx + i); });
}

template <class T, class Op>
void pool2_grad_input(const T* dy, const uint8_t* pos, const T* x, T* dx, const ConvGeom& g, const NormCoef<T>& k,
                      int training) {
    if (training) pool2_grad_input_as<T, Op, true>(dy, pos, x, dx, g, k);
    else pool2_grad_input_as<T, Op, false>(dy, pos, x, dx, g, k);
}

template <class T, class Op>
void set_act(NormKernels<T>& k, int act) {
    k.pool2_normalize[act] = pool2_normalize<T, Op>;
    k.pool2_grad_sums[act] = pool2_grad_sums<T, Op>;
    k.pool2_grad_input[act] = pool2_grad_input<T, Op>;
}

}  // namespace

template <class T> void fill_norm_pool(NormKernels<T>& k) {
    set_act<T, Identity<T>>(k, kNormNone);
    set_act<T, Relu<T>>(k, kNormRelu);
    set_act<T, LeakyRelu<T>>(k, kNormLeaky);
    set_act<T, Elu<T>>(k, kNormElu);
}
template void fill_norm_pool<float>(NormKernels<float>&);
template void fill_norm_pool<double>(NormKernels<double>&);

}  // namespace RC_NS
}  // namespace relucore
