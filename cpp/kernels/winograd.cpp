// Winograd F(2x2, 3x3) transforms (Lavin & Gray 2016) for stride-1 3x3 convolutions, L tiles of a
// tile row at a time: tile (th, tw) covers outputs [2th, 2th+2) x [2tw, 2tw+2) and reads the 4x4
// input patch at (2th, 2tw) of a zero-padded plane. cpp/ops/winograd.cpp runs the 16 GEMMs between.
//   V = B^T d B,  M = U . V (summed over input channels by the GEMMs),  Y = A^T M A,
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1].
#include "isa.h"

namespace relucore {
namespace RC_NS {
namespace {

// One padded plane xp (row stride ldx; rows 2*TH + 2; a row holds at least 2*ceil(TW/L)*L + 2
// readable elements) -> v[xi * vs + th * TW + tw] for xi = 4 * row + column of the 4x4 transform.
template <class T>
void winograd_input(const T* xp, i64 ldx, i64 TH, i64 TW, T* v, i64 vs) {
    using V = typename VecOf<T>::type;
    constexpr i64 L = V::L;
    for (i64 th = 0; th < TH; ++th)
        for (i64 tw = 0; tw < TW; tw += L) {
            const i64 n = TW - tw < L ? TW - tw : L;
            V d[4][4];
            for (int q = 0; q < 4; ++q) {
                const T* p = xp + (2 * th + q) * ldx + 2 * tw;
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
            T* out = v + th * TW + tw;
            for (int q = 0; q < 4; ++q) {  // (B^T d) B, row q
                const V u[4] = {t[q][0] - t[q][2], t[q][1] + t[q][2], t[q][2] - t[q][1], t[q][1] - t[q][3]};
                for (int j = 0; j < 4; ++j) {
                    T* o = out + (4 * q + j) * vs;
                    if (n == L) u[j].store(o);
                    else u[j].store_tail(o, n);
                }
            }
        }
}

// m[xi * ms + th * TW + tw] -> one output plane y (OH x OW) = A^T m A + bias.
template <class T>
void winograd_output(const T* m, i64 ms, i64 TH, i64 TW, T bias, T* y, i64 OH, i64 OW) {
    using V = typename VecOf<T>::type;
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
                const V y0 = s[i][0] + s[i][1] + s[i][2] + vb, y1 = s[i][1] - s[i][2] - s[i][3] + vb;
                const V lo = zip_lo(y0, y1), hi = zip_hi(y0, y1);
                T* o = y + (2 * th + i) * OW + 2 * tw;
                if (w >= L) lo.store(o);
                else lo.store_tail(o, w);
                if (w >= 2 * L) hi.store(o + L);
                else if (w > L) hi.store_tail(o + L, w - L);
            }
        }
}

// u[xi * us + l] = (G k_l G^T)[xi] for n kernels, kernel l's element (i, j) at w[l*ls + i*si + j*sj];
// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. L kernels at a time: their 9 values are gathered
// into lanes first (a scalar copy: the kernels are strided, 9 apart or a whole filter apart).
template <class T>
void winograd_weights(const T* w, i64 ls, i64 si, i64 sj, i64 n, T* u, i64 us) {
    using V = typename VecOf<T>::type;
    constexpr i64 L = V::L;
    const V half = V::set1(T(0.5));
    alignas(64) T g[9][L];
    for (i64 l0 = 0; l0 < n; l0 += L) {
        const i64 m = n - l0 < L ? n - l0 : L;
        for (int e = 0; e < 9; ++e) {
            const T* p = w + l0 * ls + (e / 3) * si + (e % 3) * sj;
            for (i64 l = 0; l < m; ++l) g[e][l] = p[l * ls];
            for (i64 l = m; l < L; ++l) g[e][l] = T(0);
        }
        V t[4][3];  // G k
        for (int j = 0; j < 3; ++j) {
            const V a = V::load(g[j]), b = V::load(g[3 + j]), c = V::load(g[6 + j]);
            t[0][j] = a;
            t[1][j] = (a + b + c) * half;
            t[2][j] = (a - b + c) * half;
            t[3][j] = c;
        }
        for (int i = 0; i < 4; ++i) {  // (G k) G^T
            const V a = t[i][0], b = t[i][1], c = t[i][2];
            const V r[4] = {a, (a + b + c) * half, (a - b + c) * half, c};
            for (int j = 0; j < 4; ++j) {
                T* o = u + (4 * i + j) * us + l0;
                if (m == L) r[j].store(o);
                else r[j].store_tail(o, m);
            }
        }
    }
}

}  // namespace

template <class T> WinogradKernels<T> make_winograd() {
    WinogradKernels<T> k;
    k.input = &winograd_input<T>;
    k.output = &winograd_output<T>;
    k.weights = &winograd_weights<T>;
    k.lanes = (int)VecOf<T>::type::L;
    return k;
}
template WinogradKernels<float> make_winograd<float>();
template WinogradKernels<double> make_winograd<double>();

}  // namespace RC_NS
}  // namespace relucore
