// Winograd F(2x2, 3x3) transforms (Lavin & Gray 2016) for stride-1 3x3 convolutions, L tiles of a
// tile row at a time: tile (th, tw) covers outputs [2th, 2th+2) x [2tw, 2tw+2) and reads the 4x4
// input patch at (2th, 2tw) of a zero-padded plane. cpp/ops/winograd.cpp runs the 16 GEMMs between.
//   V = B^T d B,  M = U . V (summed over input channels by the GEMMs),  Y = A^T M A,
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1].
// The kernel gradient is the adjoint of the same identity in k (Y = A^T [(G k G^T) . V] A):
//   dk = G^T [sum over tiles V . (A dy A^T)] G,  with V the forward's input transform of x.
// The channel-lane forms below (winograd_input_cl on) put L channels (filters) in the lanes instead,
// for F(2x2, 3x3), F(4x4, 3x3) (36 products per 4x4 outputs: 2.25 per output against 4) and, in
// float64, F(7x7, 3x3) (81 per 7x7: 1.65).
#include "isa.h"
#include "act_ops.h"
#include "gemm_tile.h"

namespace relucore {
namespace RC_NS {
namespace {

// One tile row of a padded plane (xp at its first row, row stride ldx; a row holds at least
// 2*ceil(TW/L)*L + 2 readable elements) -> store(tw, n, u): u[xi] = (B^T d B)[xi] of tiles
// tw .. tw + n (n <= L), xi = 4 * row + column of the 4x4 transform.
template <class T, class Store>
void input_row(const T* xp, i64 ldx, i64 TW, Store&& store) {
    using V = typename VecOf<T>::type;
    constexpr i64 L = V::L;
    for (i64 tw = 0; tw < TW; tw += L) {
        const i64 n = TW - tw < L ? TW - tw : L;
        V d[4][4];
        for (int q = 0; q < 4; ++q) {
            const T* p = xp + q * ldx + 2 * tw;
            const V a0 = V::load(p), a1 = V::load(p + L), b0 = V::load(p + 2), b1 = V::load(p + 2 + L);
            d[q][0] = even_lanes(a0, a1);
            d[q][1] = odd_lanes(a0, a1);
            d[q][2] = even_lanes(b0, b1);
            d[q][3] = odd_lanes(b0, b1);
        }
        V t[4][4];  // B^T d
        for (int j = 0; j < 4; ++j) {
            t[0][j] = d[0][j] - d[2][j];
            t[1][j] = d[1][j] + d[2][j];
            t[2][j] = d[2][j] - d[1][j];
            t[3][j] = d[1][j] - d[3][j];
        }
        V u[16];
        for (int q = 0; q < 4; ++q) {  // (B^T d) B, row q
            u[4 * q] = t[q][0] - t[q][2];
            u[4 * q + 1] = t[q][1] + t[q][2];
            u[4 * q + 2] = t[q][2] - t[q][1];
            u[4 * q + 3] = t[q][1] - t[q][3];
        }
        store(tw, n, u);
    }
}

// One padded plane xp (rows 2*TH + 2) -> v[xi * vs + th * TW + tw].
template <class T>
void winograd_input(const T* xp, i64 ldx, i64 TH, i64 TW, T* v, i64 vs) {
    using V = typename VecOf<T>::type;
    for (i64 th = 0; th < TH; ++th)
        input_row<T>(xp + 2 * th * ldx, ldx, TW, [&](i64 tw, i64 n, const V* u) {
            T* o = v + th * TW + tw;
            for (int xi = 0; xi < 16; ++xi) {
                if (n == V::L) u[xi].store(o + xi * vs);
                else u[xi].store_tail(o + xi * vs, n);
            }
        });
}

// n tiles of one tile row -> columns col .. col + n of the 16 matrices v[xi * vs ..], each cut in
// panels of NR columns, ps apart: one store per matrix, or two where the run crosses into the
// next panel (lanes from a on, stored from that panel's start).
template <class T>
void winograd_input_panels(const T* xp, i64 ldx, i64 n, i64 col, T* v, i64 vs, i64 ps) {
    using V = typename VecOf<T>::type;
    constexpr i64 NR = nr<T>();
    input_row<T>(xp, ldx, n, [&](i64 tw, i64 cnt, const V* u) {
        const i64 c = col + tw, j = c % NR, a = NR - j;
        T* p = v + c / NR * ps + j;
        if (cnt == V::L && a >= cnt) {
            for (int xi = 0; xi < 16; ++xi) u[xi].store(p + xi * vs);
        } else if (a >= cnt) {
            for (int xi = 0; xi < 16; ++xi) u[xi].store_tail(p + xi * vs, cnt);
        } else {
            T* q = p - j + ps - a;  // lane a at the next panel's first column
            for (int xi = 0; xi < 16; ++xi) {
                u[xi].store_tail(p + xi * vs, a);
                u[xi].store_lanes(q + xi * vs, a, cnt);
            }
        }
    });
}

// m[xi * ms + th * TW + tw] -> y (OH x OW, row stride ldy) = op(A^T m A + bias); outputs past
// OH x OW are not written. One entry per activation, chosen once per layer (a call covers a row of
// tiles or less).
template <class T, class Op>
void winograd_output(const T* m, i64 ms, i64 TH, i64 TW, T bias, T* y, i64 OH, i64 OW, i64 ldy, T param) {
    using V = typename VecOf<T>::type;
    const Op op{param};
    constexpr i64 L = V::L;
    const V vb = V::set1(bias);
    for (i64 th = 0; th < TH; ++th)
        for (i64 tw = 0; tw < TW; tw += L) {
            const i64 n = TW - tw < L ? TW - tw : L;
            const T* in = m + th * TW + tw;
            V s[2][4];  // A^T m
            for (int j = 0; j < 4; ++j) {
                V c[4];
                for (int q = 0; q < 4; ++q) {
                    const T* p = in + (4 * q + j) * ms;
                    c[q] = n == L ? V::load(p) : V::load_tail(p, n);
                }
                s[0][j] = c[0] + c[1] + c[2];
                s[1][j] = c[1] - c[2] - c[3];
            }
            const i64 w = OW - 2 * tw < 2 * L ? OW - 2 * tw : 2 * L;  // outputs of this row segment
            for (int i = 0; i < 2; ++i) {
                if (2 * th + i >= OH) break;
                const V y0 = op.fwd(s[i][0] + s[i][1] + s[i][2] + vb);
                const V y1 = op.fwd(s[i][1] - s[i][2] - s[i][3] + vb);
                const V lo = zip_lo(y0, y1), hi = zip_hi(y0, y1);
                T* o = y + (2 * th + i) * ldy + 2 * tw;
                if (w >= L) lo.store(o);
                else lo.store_tail(o, w);
                if (w >= 2 * L) hi.store(o + L);
                else if (w > L) hi.store_tail(o + L, w - L);
            }
        }
}

// The 16 products of `rows` kernels by `cols` tile columns (register tiles over the packed
// panels, into m: 16 x MR x NR, L1-sized), then their output transform into the image rows that
// the columns' tiles cover: the products never leave L1.
template <class T, class Op>
void winograd_fused(i64 k, const T* u, i64 us, const T* v, i64 vs, i64 rows, i64 q0, i64 cols, T* m,
                    const WinogradTiles<T>& to) {
    constexpr i64 NR = nr<T>(), ms = kMR * NR;
    for (int xi = 0; xi < 16; ++xi)
        tile_for<T, kNV>(k, u + xi * us, v + xi * vs, m + xi * ms, NR, rows, cols, T(0), static_cast<const T*>(nullptr),
                         Identity<T>{}, false);
    struct Run {
        i64 off, n, width, rows, y;  // columns off .. off + n: outputs width x rows at y
    };
    Run runs[NR];  // runs of columns in one tile row of one image, found once for every kernel
    i64 count = 0;
    for (i64 q = q0; q < q0 + cols; ++count) {
        const i64 img = q / to.TPI, t = q % to.TPI, th = t / to.TW, tw = t % to.TW;
        i64 n = to.TW - tw;  // to the end of the tile row (which ends the image's tiles too)
        if (q0 + cols - q < n) n = q0 + cols - q;
        runs[count] = Run{q - q0, n, to.OW - 2 * tw < 2 * n ? to.OW - 2 * tw : 2 * n, to.OH - 2 * th,
                          img * to.image_step + 2 * th * to.OW + 2 * tw};
        q += n;
    }
    for (i64 r = 0; r < rows; ++r) {
        const T b = to.bias ? to.bias[r] : T(0);
        for (i64 i = 0; i < count; ++i) {
            const Run& g = runs[i];
            winograd_output<T, Op>(m + r * NR + g.off, ms, 1, g.n, b, to.y + r * to.row_step + g.y, g.rows, g.width,
                                   to.OW, to.param);
        }
    }
}

// Kernels' 9 contiguous values <-> one vector per value with one kernel per lane: ceil(9 / L)
// chunks of L values, each an L x L register transpose of L kernels (lanes past `m` kernels are 0).
template <class V> constexpr int kChunks = (9 + V::L - 1) / V::L;

template <class V, class T> void gather_kernels(const T* const* k, i64 m, V* g) {  // kernel l at k[l]
    constexpr i64 L = V::L;
    for (int c = 0; c < kChunks<V>; ++c) {
        V* r = g + c * L;
        const i64 cnt = 9 - c * L < L ? 9 - c * L : L;
        for (i64 l = 0; l < L; ++l) r[l] = l < m && k[l] ? V::load_tail(k[l] + c * L, cnt) : V::zero();
        transpose(r);
    }
}

template <class V, class T> void scatter_kernels(V* g, i64 m, T* w, i64 ls) {
    constexpr i64 L = V::L;
    for (int c = 0; c < kChunks<V>; ++c) {
        V* r = g + c * L;
        const i64 cnt = 9 - c * L < L ? 9 - c * L : L;
        transpose(r);
        for (i64 l = 0; l < m; ++l) r[l].store_tail(w + l * ls + c * L, cnt);
    }
}

// The 1-D transforms of F(M x M, 3 x 3), A = M + 2 points, on vectors: bt (A inputs -> A, B^T),
// at (A -> M, A^T), a (M -> A, the A of the kernel gradient), g (3 -> A, G) and gt (A -> 3, G^T).
// The 2-D forms apply them to columns, then rows. F(2x2) is the top comment's; F(4x4) takes the
// points 0, 1, -1, 2, -2 and infinity (Lavin & Gray's):
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1],
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
template <int M> struct Wino;

// A transform's constant in every lane.
template <class V> V c(double x) { return V::set1(typename V::type(x)); }

template <> struct Wino<2> {
    static constexpr int A = 4;
    template <class V> static void bt(const V* d, V* o) {
        o[0] = d[0] - d[2];
        o[1] = d[1] + d[2];
        o[2] = d[2] - d[1];
        o[3] = d[1] - d[3];
    }
    template <class V> static void at(const V* m, V* y) {
        y[0] = m[0] + m[1] + m[2];
        y[1] = m[1] - m[2] - m[3];
    }
    template <class V> static void a(const V* g, V* h) {
        h[0] = g[0];
        h[1] = g[0] + g[1];
        h[2] = g[0] - g[1];
        h[3] = V::zero() - g[1];
    }
    template <class V> static void g(V k0, V k1, V k2, V* u) {
        const V half = V::set1(typename V::type(0.5));
        u[0] = k0;
        u[1] = (k0 + k1 + k2) * half;
        u[2] = (k0 - k1 + k2) * half;
        u[3] = k2;
    }
    template <class V> static void gt(const V* m, V* k) {
        const V half = V::set1(typename V::type(0.5));
        const V s = (m[1] + m[2]) * half;
        k[0] = m[0] + s;
        k[1] = (m[1] - m[2]) * half;
        k[2] = s + m[3];
    }
};

template <> struct Wino<4> {
    static constexpr int A = 6;
    template <class V> static void bt(const V* d, V* o) {
        const V d13 = d[3] - d[1], d42 = d[4] - d[2];
        o[0] = mul_add(c<V>(4), d[0], mul_add(c<V>(-5), d[2], d[4]));
        o[1] = mul_add(c<V>(-4), d[1] + d[2], d[3] + d[4]);
        o[2] = mul_add(c<V>(4), d[1] - d[2], d[4] - d[3]);
        o[3] = mul_add(c<V>(2), d13, d42);
        o[4] = mul_add(c<V>(-2), d13, d42);
        o[5] = mul_add(c<V>(4), d[1], mul_add(c<V>(-5), d[3], d[5]));
    }
    template <class V> static void at(const V* m, V* y) {
        const V a = m[1] + m[2], b = m[1] - m[2], s = m[3] + m[4], t = m[3] - m[4];
        y[0] = m[0] + a + s;
        y[1] = mul_add(c<V>(2), t, b);
        y[2] = mul_add(c<V>(4), s, a);
        y[3] = mul_add(c<V>(8), t, b) + m[5];
    }
    template <class V> static void a(const V* g, V* h) {
        const V e = g[0] + g[2], f = g[1] + g[3], p = mul_add(c<V>(4), g[2], g[0]), q = mul_add(c<V>(4), g[3], g[1]);
        h[0] = g[0];
        h[1] = e + f;
        h[2] = e - f;
        h[3] = mul_add(c<V>(2), q, p);
        h[4] = mul_add(c<V>(-2), q, p);
        h[5] = g[3];
    }
    template <class V> static void g(V k0, V k1, V k2, V* u) {
        const V s = k0 + k2, t = mul_add(c<V>(4), k2, k0);
        u[0] = k0 * c<V>(0.25);
        u[1] = (s + k1) * c<V>(-1.0 / 6);
        u[2] = (s - k1) * c<V>(-1.0 / 6);
        u[3] = mul_add(c<V>(2), k1, t) * c<V>(1.0 / 24);
        u[4] = mul_add(c<V>(-2), k1, t) * c<V>(1.0 / 24);
        u[5] = k2;
    }
    template <class V> static void gt(const V* m, V* k) {
        const V a = m[1] + m[2], b = m[1] - m[2], s = m[3] + m[4], t = m[3] - m[4];
        k[0] = mul_add(s, c<V>(1.0 / 24), mul_add(a, c<V>(-1.0 / 6), m[0] * c<V>(0.25)));
        k[1] = mul_add(t, c<V>(1.0 / 12), b * c<V>(-1.0 / 6));
        k[2] = mul_add(s - a, c<V>(1.0 / 6), m[5]);
    }
};

// F(7x7, 3x3): the points 1, -1, 2, -2, 1/2, -1/2, 1/4, -1/4 and infinity. 7 divides the 14, 28,
// 56 and 112-wide planes of common networks, so no tile overhangs them. Of the point sets tried
// (0, +-1, +-2, +-1/2 and one of +-1/4, +-4, +-3, 1/3, +-3/2, 2/3, +-3/4; the pairs above with
// +-3/4, +-3/2 or +-4 in place of +-1/4), this one gave the lowest float64 errors but for the tail of
// +-3/4's (whose median error was 5x); every entry of B^T and A^T is a dyadic fraction (exact in
// binary), only G's are rounded.
// The points come in pairs +-p (p = 1, 2, 1/2, 1/4): B^T's rows 2k and 2k + 1 are ev + od and
// od - ev (ev over the even-indexed inputs, od over the odd ones), A^T's rows take the pairs' sums or
// differences, A's rows 2k and 2k + 1 the even powers' sum plus or minus the odd powers', G's rows
// likewise: about half of the dense matrices' multiply-adds (dense, the transforms ran the
// forward 1.2x slower than this).
template <> struct Wino<7> {
    static constexpr int A = 9;
    // B^T's rows 2k: coefficients of d0, d2, d4, d6 (ev) and of d1, d3, d5 (od; d7's is 1).
    static constexpr double kEven[4][4] = {{-1.0 / 16, 81.0 / 64, -69.0 / 16, 1},
                                           {-1.0 / 32, 21.0 / 32, -21.0 / 8, 2},
                                           {-1.0 / 8, 69.0 / 32, -81.0 / 32, 1.0 / 2},
                                           {-1.0 / 4, 21.0 / 16, -21.0 / 16, 1.0 / 4}};
    static constexpr double kOdd[4][3] = {{-1.0 / 16, 81.0 / 64, -69.0 / 16},
                                          {-1.0 / 64, 21.0 / 64, -21.0 / 16},
                                          {-1.0 / 4, 69.0 / 16, -81.0 / 16},
                                          {-1, 21.0 / 4, -21.0 / 4}};
    static constexpr double kP[4] = {1, 2, 1.0 / 2, 1.0 / 4};
    template <class V> __attribute__((always_inline)) static void bt(const V* d, V* o) {
        for (int k = 0; k < 4; ++k) {
            const V ev = mul_add(c<V>(kEven[k][0]), d[0],
                                 mul_add(c<V>(kEven[k][1]), d[2],
                                         mul_add(c<V>(kEven[k][2]), d[4], d[6] * c<V>(kEven[k][3]))));
            const V od = mul_add(c<V>(kOdd[k][0]), d[1],
                                 mul_add(c<V>(kOdd[k][1]), d[3], mul_add(c<V>(kOdd[k][2]), d[5], d[7])));
            o[2 * k] = ev + od;
            o[2 * k + 1] = od - ev;
        }
        o[8] = mul_add(c<V>(1.0 / 16), d[0],  // B^T's row 8: 1/16, 0, -85/64, 0, 357/64, 0, -85/16, 0, 1
                       mul_add(c<V>(-85.0 / 64), d[2],
                               mul_add(c<V>(357.0 / 64), d[4], mul_add(c<V>(-85.0 / 16), d[6], d[8]))));
    }
    template <class V> __attribute__((always_inline)) static void at(const V* m, V* y) {
        V s[4], t[4];
        for (int k = 0; k < 4; ++k) {
            s[k] = m[2 * k] + m[2 * k + 1];
            t[k] = m[2 * k] - m[2 * k + 1];
        }
        double pw[4] = {1, 1, 1, 1};  // kP^i
        for (int i = 0; i < 7; ++i) {
            const V* u = i % 2 ? t : s;
            y[i] = mul_add(c<V>(pw[3]), u[3], mul_add(c<V>(pw[2]), u[2], mul_add(c<V>(pw[1]), u[1], u[0])));
            for (int k = 0; k < 4; ++k) pw[k] *= kP[k];
        }
        y[6] = y[6] + m[8];
    }
    template <class V> __attribute__((always_inline)) static void a(const V* g, V* h) {
        for (int k = 0; k < 4; ++k) {
            const double p = kP[k], p2 = p * p;
            const V ev =
                mul_add(c<V>(p2 * p2 * p2), g[6], mul_add(c<V>(p2 * p2), g[4], mul_add(c<V>(p2), g[2], g[0])));
            const V od = mul_add(c<V>(p2 * p2 * p), g[5], mul_add(c<V>(p2 * p), g[3], g[1] * c<V>(p)));
            h[2 * k] = ev + od;
            h[2 * k + 1] = ev - od;
        }
        h[8] = g[6];
    }
    // G's rows 2k and 2k + 1 are s_k [1, p, p^2] and -s_k [1, -p, p^2] (s_k = 1 / the Lagrange
    // denominator of p), row 8 [0, 0, 1].
    static constexpr double kS[4] = {-32.0 / 135, 16.0 / 2835, 256.0 / 135, -8192.0 / 2835};
    template <class V> static void g(V k0, V k1, V k2, V* u) {
        for (int k = 0; k < 4; ++k) {
            const V e = mul_add(c<V>(kP[k] * kP[k]), k2, k0), o = k1 * c<V>(kP[k]);
            u[2 * k] = (e + o) * c<V>(kS[k]);
            u[2 * k + 1] = (o - e) * c<V>(kS[k]);
        }
        u[8] = k2;
    }
    template <class V> static void gt(const V* m, V* k) {
        V k0 = V::zero(), k1 = V::zero(), k2 = m[8];
        for (int j = 0; j < 4; ++j) {
            const V d = (m[2 * j] - m[2 * j + 1]) * c<V>(kS[j]), s = (m[2 * j] + m[2 * j + 1]) * c<V>(kS[j]);
            k0 = k0 + d;
            k1 = mul_add(c<V>(kP[j]), s, k1);
            k2 = mul_add(c<V>(kP[j] * kP[j]), d, k2);
        }
        k[0] = k0;
        k[1] = k1;
        k[2] = k2;
    }
};

// The rows x cols grid of kernels, kernel (r, c) row-major at w[r*lr + c*lc ..+9] (rotated by 180
// degrees if flip), transformed: element (r, c) of u[xi * us ..] is (G k G^T)[xi], xi < A * A.
// Layout: row-major (mr = 0), or panels of mr columns, each rows x mr (a GEMM's packed operand;
// columns past cols zero). This call writes the elements [e0, e1) of that layout, L at a time, so
// every store is a whole contiguous vector.
template <class T, int M>
void winograd_weights(const T* w, i64 rows, i64 cols, i64 lr, i64 lc, int flip, i64 mr, i64 e0, i64 e1, T* u,
                      i64 us) {
    using V = typename VecOf<T>::type;
    using W = Wino<M>;
    constexpr i64 L = V::L;
    constexpr int A = W::A;
    const i64 width = mr ? mr : cols;  // columns per row of a panel (one panel when mr = 0)
    i64 p = e0 / (width * rows), r = e0 % (width * rows) / width, c = e0 % width;  // walks the layout
    for (i64 e = e0; e < e1; e += L) {
        const i64 m = e1 - e < L ? e1 - e : L;
        const T* k[L];
        for (i64 l = 0; l < m; ++l) {
            const i64 col = p * width + c;
            k[l] = col < cols ? w + r * lr + col * lc : nullptr;
            if (++c == width) {
                c = 0;
                if (++r == rows) r = 0, ++p;
            }
        }
        V g[kChunks<V> * L];  // g[v]: value v of the kernels
        gather_kernels(k, m, g);
        const auto at = [&](int i, int j) { return g[flip ? 8 - 3 * i - j : 3 * i + j]; };
        V t[A][3];  // G k
        for (int j = 0; j < 3; ++j) {
            V o[A];
            W::g(at(0, j), at(1, j), at(2, j), o);
            for (int i = 0; i < A; ++i) t[i][j] = o[i];
        }
        for (int i = 0; i < A; ++i) {  // (G k) G^T
            V o[A];
            W::g(t[i][0], t[i][1], t[i][2], o);
            for (int j = 0; j < A; ++j) {
                T* dst = u + (A * i + j) * us + e;
                if (m == L) o[j].store(dst);
                else o[j].store_tail(dst, m);
            }
        }
    }
}

// dw[l*ls + 3i + j] = (G^T m_l G)[i][j] for n kernels, m_l[xi] = the sum over `parts` partials of
// m[part * ps + xi * ms + l], added in part order.
template <class T, int M>
void winograd_weights_grad(const T* m, i64 ms, i64 parts, i64 ps, i64 n, T* dw, i64 ls) {
    using V = typename VecOf<T>::type;
    using W = Wino<M>;
    constexpr i64 L = V::L;
    constexpr int A = W::A;
    for (i64 l0 = 0; l0 < n; l0 += L) {
        const i64 k = n - l0 < L ? n - l0 : L;
        V t[3][A];  // G^T m
        for (int j = 0; j < A; ++j) {
            V c[A], o[3];
            for (int q = 0; q < A; ++q) {
                const T* p = m + (A * q + j) * ms + l0;
                c[q] = k == L ? V::load(p) : V::load_tail(p, k);
                for (i64 part = 1; part < parts; ++part)
                    c[q] = c[q] + (k == L ? V::load(p + part * ps) : V::load_tail(p + part * ps, k));
            }
            W::gt(c, o);
            for (int i = 0; i < 3; ++i) t[i][j] = o[i];
        }
        V r[kChunks<V> * L];  // r[3i + j]: value (i, j) of the kernels' gradients
        for (auto& v : r) v = V::zero();
        for (int i = 0; i < 3; ++i) W::gt(t[i], r + 3 * i);  // (G^T m) G
        scatter_kernels(r, k, dw + l0 * ls, ls);
    }
}

// Channels in the lanes (the forward, dx and the kernel gradient): each transformed tile is a row of
// L channels (or filters), so a block's tiles form operands that the register tiles below read as
// they are (the tile-lane transforms above would need a transpose of their expanded output).
// The transposes happen on the raw rows, L positions of L planes at a time, into buffers of
// positions [0, M*L + 2) a row, rounded up to whole vectors (P of them).
template <class V, int M> constexpr i64 kClRow = (M * V::L + 2 + V::L - 1) / V::L * V::L;

// Rows r0 .. r0 + rows, columns c0 .. c0 + chunks * L of nch <= L planes (H x W, plane l at src +
// l * ps) -> buf[r * P + column]: one vector of the planes' values per position; 0 outside the
// planes (the zero padding) and in the lanes of planes past nch. With scan, scan[0] takes the
// largest |value| read and scan[1] the sum of value * 0 (NaN once an inf or NaN was read, else 0).
template <class V, class T>
__attribute__((always_inline)) inline void to_lanes(const T* src, i64 ps, i64 nch, i64 H, i64 W, i64 r0, i64 c0,
                                                    int rows, i64 chunks, i64 P, V* buf, V* scan) {
    constexpr i64 L = V::L;
    for (int r = 0; r < rows; ++r)
        for (i64 c = 0; c < chunks; ++c) {
            V* v = buf + r * P + c * L;
            const i64 ih = r0 + r, iw = c0 + c * L;  // lane j: column iw + j
            const i64 lo = iw < 0 ? -iw : 0, hi = W - iw < L ? W - iw : L;
            if (ih < 0 || ih >= H || lo >= hi) {
                for (i64 l = 0; l < L; ++l) v[l] = V::zero();
                continue;
            }
            // lanes outside [lo, hi) are neither read nor faulted (iw may be -1: the padding)
            const T* p = src + ih * W + iw;
            V t[L];  // transposed in registers, stored once
            for (i64 l = 0; l < L; ++l)
                t[l] = l >= nch ? V::zero() : lo == 0 && hi == L ? V::load(p + l * ps) : V::load_lanes(p + l * ps, lo, hi);
            if (scan)
                for (i64 l = 0; l < L; ++l) {
                    scan[0] = max(scan[0], abs(t[l]));
                    scan[1] = mul_add(t[l], V::zero(), scan[1]);
                }
            transpose(t);
            for (i64 l = 0; l < L; ++l) v[l] = t[l];
        }
}

// The scan of to_lanes' reads as scalars: out[0] = the largest |value|, out[1] = NaN if an inf or
// NaN was read, else 0 (null out: no scan).
template <class V, class T> void scan_out(const V* scan, T* out) {
    if (!out) return;
    T lanes[V::L];
    scan[0].store(lanes);
    T m = T(0);
    for (int l = 0; l < V::L; ++l) m = lanes[l] > m ? lanes[l] : m;
    out[0] = m;
    out[1] = reduce_add(scan[1]);
}

// trows tile rows of n tiles each of nch <= L input planes (H x W, plane l at x + l * ps), the first
// tile's A x A patch from row r0, column c0 (negative in the padding) -> v[xi * vs + (r * tstep + i)
// * ld ..+L] = (B^T d B)[xi] of tile i of tile row r, the channels in the lanes (0 in those past
// nch). Tile rows overlap by two input rows: per block of L tile columns, going down, the rows a
// tile row shares with the one above stay in a ring of transposed rows, so each input row is
// transposed once per block.
template <class T, int M>
void winograd_input_cl(const T* x, i64 ps, i64 nch, i64 H, i64 W, i64 r0, i64 c0, i64 n, i64 trows, i64 tstep,
                       T* v, i64 vs, i64 ld, T* scan) {
    using V = typename VecOf<T>::type;
    using Wn = Wino<M>;
    constexpr i64 L = V::L, P = kClRow<V, M>;
    constexpr int A = Wn::A, R = A <= 4 ? 4 : A <= 8 ? 8 : 16;  // ring slots: input row q at slot q % R
    V buf[R * P];
    V sc[2] = {V::zero(), V::zero()};
    V* const s = scan ? sc : nullptr;
    for (i64 i0 = 0; i0 < n; i0 += L) {
        const i64 m = n - i0 < L ? n - i0 : L, chunks = (M * m + 2 + L - 1) / L;  // the m patches' columns
        to_lanes<V>(x, ps, nch, H, W, r0, c0 + M * i0, 2, chunks, P, buf, s);
        for (i64 r = 0; r < trows; ++r) {
            for (i64 q = M * r + 2; q < M * r + A; ++q)
                to_lanes<V>(x, ps, nch, H, W, r0 + q, c0 + M * i0, 1, chunks, P, buf + q % R * P, s);
            const V* d[A];
            for (int q = 0; q < A; ++q) d[q] = buf + (M * r + q) % R * P;
            for (i64 i = 0; i < m; ++i) {
                const i64 j0 = M * i;  // the tile's patch: columns j0 .. j0 + A - 1 of the A rows
                V t[A][A];             // t[q][j] = (B^T d)[q][j]
                for (int j = 0; j < A; ++j) {
                    V col[A], o[A];
                    for (int q = 0; q < A; ++q) col[q] = d[q][j0 + j];
                    Wn::bt(col, o);
                    for (int q = 0; q < A; ++q) t[q][j] = o[q];
                }
                T* out = v + (r * tstep + i0 + i) * ld;
                for (int q = 0; q < A; ++q) {  // (B^T d) B, row q
                    V o[A];
                    Wn::bt(t[q], o);
                    for (int j = 0; j < A; ++j) o[j].store(out + (A * q + j) * vs);
                }
            }
        }
    }
    scan_out(sc, scan);
}

// n M x M tiles of a tile row of nch <= L dy planes (OH x OW, plane l at g + l * ps), the first from
// row r0, column c0 -> v[xi * vs + i * ld ..+L] = (A g A^T)[xi] of tile i, the filters in the lanes.
template <class T, int M>
void winograd_output_grad_cl(const T* g, i64 ps, i64 nch, i64 OH, i64 OW, i64 r0, i64 c0, i64 n, T* v, i64 vs,
                             i64 ld, T* scan) {
    using V = typename VecOf<T>::type;
    using Wn = Wino<M>;
    constexpr i64 L = V::L, P = kClRow<V, M>;
    constexpr int A = Wn::A;
    V buf[M * P];
    V sc[2] = {V::zero(), V::zero()};
    for (i64 i0 = 0; i0 < n; i0 += L) {
        const i64 m = n - i0 < L ? n - i0 : L;
        to_lanes<V>(g, ps, nch, OH, OW, r0, c0 + M * i0, M, (M * m + L - 1) / L, P, buf, scan ? sc : nullptr);
        for (i64 i = 0; i < m; ++i) {
            const V* d = buf + M * i;
            V h[A][M];  // A g
            for (int b = 0; b < M; ++b) {
                V col[M], o[A];
                for (int r = 0; r < M; ++r) col[r] = d[r * P + b];
                Wn::a(col, o);
                for (int q = 0; q < A; ++q) h[q][b] = o[q];
            }
            T* out = v + (i0 + i) * ld;
            for (int q = 0; q < A; ++q) {  // (A g) A^T, row q
                V o[A];
                Wn::a(h[q], o);
                for (int j = 0; j < A; ++j) o[j].store(out + (A * q + j) * vs);
            }
        }
    }
    scan_out(sc, scan);
}

// c (rows x cols, at most MR x NV*L; ldc) = [c +] the sum over p < kc of a[i*ra + p*pa] * b[p*ldb + j]:
// the GEMM's register tile over operands with strides instead of packed panels (A depth-major,
// pa = lda, ra = 1, or row-major, ra = lda, pa = 1). Rows of A past `rows` repeat the last; reads
// NV vectors of each b row whatever cols is.
template <class T, int NV>
void cl_tile(i64 kc, const T* a, i64 ra, i64 pa, const T* __restrict b, i64 ldb, T* c, i64 ldc, i64 rows, i64 cols,
             bool add) {
    using V = typename VecOf<T>::type;
    const T* ar[kMR];
    for (int i = 0; i < kMR; ++i) ar[i] = a + (i < rows ? i : rows - 1) * ra;
    V acc[kMR][NV];
    for (int i = 0; i < kMR; ++i)
        for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();
    for (i64 p = 0; p < kc; ++p, b += ldb) {
        V bv[NV];
        for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * V::L);
        for (int i = 0; i < kMR; ++i) {
            const V av = V::set1(ar[i][p * pa]);
            for (int j = 0; j < NV; ++j) acc[i][j] = mul_add(av, bv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < kMR && i < rows; ++i)
        for (int j = 0; j < NV; ++j) {
            T* p = c + i * ldc + j * V::L;
            const i64 n = cols - j * V::L;
            if (n >= V::L) (add ? acc[i][j] + V::load(p) : acc[i][j]).store(p);
            else if (n > 0) (add ? acc[i][j] + V::load_tail(p, n) : acc[i][j]).store_tail(p, n);
        }
}

// The narrowest tile that covers `cols`.
template <class T, int NV>
void cl_tile_for(i64 kc, const T* a, i64 ra, i64 pa, const T* b, i64 ldb, T* c, i64 ldc, i64 rows, i64 cols,
                 bool add) {
    if constexpr (NV > 1) {
        if (cols <= (NV - 1) * VecOf<T>::type::L)
            return cl_tile_for<T, NV - 1>(kc, a, ra, pa, b, ldb, c, ldc, rows, cols, add);
    }
    cl_tile<T, NV>(kc, a, ra, pa, b, ldb, c, ldc, rows, cols, add);
}

// The forward (and dx) with channels in the lanes, for `rows` <= MR consecutive tiles of the batch
// from tile q0: their A*A products with the transformed kernels (v + xi*vs: the tiles as rows of k
// channels, ldv apart; u + xi*us: k rows of F filters, ldu apart) into m (A*A x MR x Fp, Fp = F
// rounded up to whole vectors), then the output transform, bias and activation, the outputs of L
// filters turned from filter lanes to position lanes by register transposes and stored row segment
// by row segment into `to` (to.y and to.bias: filter 0).
template <class T, int M, class Op>
void winograd_cl_fused(i64 k, const T* u, i64 us, i64 ldu, const T* v, i64 vs, i64 ldv, i64 rows, i64 F, i64 q0,
                       T* m, const WinogradTiles<T>& to) {
    using V = typename VecOf<T>::type;
    using Wn = Wino<M>;
    constexpr int A = Wn::A, XI = A * A;
    constexpr i64 L = V::L, PB = (M * kMR + L - 1) / L;  // blocks of L positions of a tile row
    const i64 nvt = (F + L - 1) / L, Fp = nvt * L, ms = kMR * Fp;
    for (int xi = 0; xi < XI; ++xi) {
        const T* a = v + xi * vs;
        const T* b = u + xi * us;
        T* c = m + xi * ms;
        for (i64 j = 0; j < nvt;) {  // NV vectors of filters at a time, split evenly (4 -> 2 + 2)
            const i64 r = nvt - j, nv = r <= kNV ? r : r < 2 * kNV ? (r + 1) / 2 : kNV;
            cl_tile_for<T, kNV>(k, a, ldv, 1, b + j * L, ldu, c + j * L, Fp, rows, nv * L, false);
            j += nv;
        }
    }
    struct Run {
        i64 p0, width, rows, y;  // positions p0 .. p0 + width of the group: outputs width x rows at y
    };
    Run runs[kMR];
    i64 count = 0;
    for (i64 q = q0; q < q0 + rows; ++count) {
        const i64 img = q / to.TPI, t = q % to.TPI, th = t / to.TW, tw = t % to.TW;
        i64 n = to.TW - tw;
        if (q0 + rows - q < n) n = q0 + rows - q;
        runs[count] = Run{M * (q - q0), to.OW - M * tw < M * n ? to.OW - M * tw : M * n, to.OH - M * th,
                          img * to.image_step + M * th * to.OW + M * tw};
        q += n;
    }
    const Op op{to.param};
    for (i64 f0 = 0; f0 < F; f0 += L) {
        const i64 nf = F - f0 < L ? F - f0 : L;
        const V vb = to.bias ? V::load_tail(to.bias + f0, nf) : V::zero();
        V P[M][PB * L];  // P[a][position]: outputs of row a of the tiles, L filters a vector
        for (i64 i = 0; i < rows; ++i) {
            const T* in = m + i * Fp + f0;
            V s[M][A];  // A^T m
            for (int j = 0; j < A; ++j) {
                V col[A], o[M];
                for (int q = 0; q < A; ++q) col[q] = V::load(in + (A * q + j) * ms);
                Wn::at(col, o);
                for (int a = 0; a < M; ++a) s[a][j] = o[a];
            }
            for (int a = 0; a < M; ++a) {
                V o[M];
                Wn::at(s[a], o);
                for (int e = 0; e < M; ++e) P[a][M * i + e] = op.fwd(o[e] + vb);
            }
        }
        for (int a = 0; a < M; ++a) {
            for (i64 e = M * rows; e < PB * L; ++e) P[a][e] = V::zero();
            for (i64 blk = 0; blk < PB; ++blk) transpose(P[a] + blk * L);  // now filter l, positions blk*L ..
            for (i64 ri = 0; ri < count; ++ri) {
                const Run& g = runs[ri];
                if (a >= g.rows) continue;
                T* row = to.y + g.y + a * to.OW - g.p0;  // position p of the group at row[p]
                for (i64 blk = g.p0 / L; blk * L < g.p0 + g.width; ++blk) {
                    const i64 lo = g.p0 > blk * L ? g.p0 - blk * L : 0;
                    const i64 hi = g.p0 + g.width < (blk + 1) * L ? g.p0 + g.width - blk * L : L;
                    const V* src = P[a] + blk * L;
                    T* dst = row + f0 * to.row_step + blk * L;
                    if (nf == L && lo == 0 && hi == L) {  // the common case with a fixed count: no tests per store
                        for (i64 l = 0; l < L; ++l) src[l].store(dst + l * to.row_step);
                    } else {
                        for (i64 l = 0; l < nf; ++l) src[l].store_lanes(dst + l * to.row_step, lo, hi);
                    }
                }
            }
        }
    }
}

// c (F x C, ldc) = [c +] a^T b over kc rows of a (F values, lda apart) and b (C values, ldb apart),
// one register tile at a time.
template <class T>
void winograd_dw_products(i64 kc, const T* a, i64 lda, const T* b, i64 ldb, i64 F, i64 C, T* c, i64 ldc, int add) {
    constexpr i64 NR = nr<T>();
    for (i64 j = 0; j < C; j += NR) {
        const i64 cols = C - j < NR ? C - j : NR;
        for (i64 i = 0; i < F; i += kMR)
            cl_tile_for<T, kNV>(kc, a + i, 1, lda, b + j, ldb, c + i * ldc + j, ldc, F - i < kMR ? F - i : kMR, cols,
                                add != 0);
    }
}

template <class T, int M> WinogradClKernels<T> make_cl() {
    WinogradClKernels<T> k;
    k.weights = &winograd_weights<T, M>;
    k.weights_grad = &winograd_weights_grad<T, M>;
    k.input = &winograd_input_cl<T, M>;
    k.output_grad = &winograd_output_grad_cl<T, M>;
    k.fused[kNormNone] = &winograd_cl_fused<T, M, Identity<T>>;
    k.fused[kNormRelu] = &winograd_cl_fused<T, M, Relu<T>>;
    k.fused[kNormLeaky] = &winograd_cl_fused<T, M, LeakyRelu<T>>;
    k.fused[kNormElu] = &winograd_cl_fused<T, M, Elu<T>>;
    return k;
}

}  // namespace

template <class T> WinogradKernels<T> make_winograd() {
    WinogradKernels<T> k;
    k.input = &winograd_input<T>;
    k.output[kNormNone] = &winograd_output<T, Identity<T>>;
    k.output[kNormRelu] = &winograd_output<T, Relu<T>>;
    k.output[kNormLeaky] = &winograd_output<T, LeakyRelu<T>>;
    k.output[kNormElu] = &winograd_output<T, Elu<T>>;
    k.input_panels = &winograd_input_panels<T>;
    k.fused[kNormNone] = &winograd_fused<T, Identity<T>>;
    k.fused[kNormRelu] = &winograd_fused<T, Relu<T>>;
    k.fused[kNormLeaky] = &winograd_fused<T, LeakyRelu<T>>;
    k.fused[kNormElu] = &winograd_fused<T, Elu<T>>;
    k.cl[0] = make_cl<T, 2>();
    k.cl[1] = make_cl<T, 4>();
    if constexpr (sizeof(T) == 8) k.cl[2] = make_cl<T, 7>();  // float32 keeps smaller tiles (tile_size):
    else k.cl[2] = WinogradClKernels<T>{};                      // null entries, never called
    k.dw_products = &winograd_dw_products<T>;
    k.mr = kMR;
    k.lanes = (int)VecOf<T>::type::L;
    return k;
}
template WinogradKernels<float> make_winograd<float>();
template WinogradKernels<double> make_winograd<double>();

}  // namespace RC_NS
}  // namespace relucore
