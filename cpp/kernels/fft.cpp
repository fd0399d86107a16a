// Complex 2-D FFTs of small square planes for the FFT convolution (ops/fft_conv.cpp), written once
// against the vector wrapper. A 1-D pass transforms along the row index for every column at once,
// so each load and store is a contiguous vector of columns (no shuffles, no gathers); the second
// dimension is a transpose and the same pass. Stages are Stockham's (out of place, self-sorting):
// with span L* = the radices before a stage and r = n / (L* p) rows left, the stage of radix p maps
// rows j r p + k + r t (t < p), times the twiddles w^(j t), to rows (j + L* s) r + k (s < p).
#include <math.h>

#include "isa.h"
#include "act_ops.h"

namespace relucore {
namespace RC_NS {
namespace {

template <class T> using Vec = typename VecOf<T>::type;

// Radix-p butterfly in place on (re, im): s_k = sum_t e^(-+2 pi i k t / p) a_t (+ for the inverse).
template <class V, int P> struct Butterfly;

template <class V> struct Butterfly<V, 2> {
    static void run(V* r, V* i, bool) {
        const V r0 = r[0], i0 = i[0];
        r[0] = r0 + r[1], i[0] = i0 + i[1];
        r[1] = r0 - r[1], i[1] = i0 - i[1];
    }
};

template <class V> struct Butterfly<V, 4> {
    static void run(V* r, V* i, bool inv) {
        const V r0 = r[0] + r[2], i0 = i[0] + i[2], r1 = r[0] - r[2], i1 = i[0] - i[2];
        const V r2 = r[1] + r[3], i2 = i[1] + i[3], r3 = r[1] - r[3], i3 = i[1] - i[3];
        r[0] = r0 + r2, i[0] = i0 + i2;
        r[2] = r0 - r2, i[2] = i0 - i2;
        // forward: s1 = t1 - i t3, s3 = t1 + i t3; the inverse swaps them
        const V ar = r1 + i3, ai = i1 - r3, br = r1 - i3, bi = i1 + r3;
        if (inv) r[1] = br, i[1] = bi, r[3] = ar, i[3] = ai;
        else r[1] = ar, i[1] = ai, r[3] = br, i[3] = bi;
    }
};

// Radix 8 as two radix-4 halves (even and odd inputs) joined by w8^k = e^(-+i pi k / 4).
template <class V> struct Butterfly<V, 8> {
    static void run(V* r, V* i, bool inv) {
        using T = typename V::type;
        V er[4] = {r[0], r[2], r[4], r[6]}, ei[4] = {i[0], i[2], i[4], i[6]};
        V orr[4] = {r[1], r[3], r[5], r[7]}, oi[4] = {i[1], i[3], i[5], i[7]};
        Butterfly<V, 4>::run(er, ei, inv);
        Butterfly<V, 4>::run(orr, oi, inv);
        const V h = V::set1((T)0.70710678118654752440);  // w8 = (1 -+ i) / sqrt(2), w8^2 = -+i
        V tr[4], ti[4];
        tr[0] = orr[0], ti[0] = oi[0];
        if (inv) {
            tr[1] = (orr[1] - oi[1]) * h, ti[1] = (oi[1] + orr[1]) * h;
            tr[2] = V::zero() - oi[2], ti[2] = orr[2];
            tr[3] = V::zero() - (orr[3] + oi[3]) * h, ti[3] = (orr[3] - oi[3]) * h;
        } else {
            tr[1] = (orr[1] + oi[1]) * h, ti[1] = (oi[1] - orr[1]) * h;
            tr[2] = oi[2], ti[2] = V::zero() - orr[2];
            tr[3] = (oi[3] - orr[3]) * h, ti[3] = V::zero() - (orr[3] + oi[3]) * h;
        }
        for (int k = 0; k < 4; ++k) {
            r[k] = er[k] + tr[k], i[k] = ei[k] + ti[k];
            r[k + 4] = er[k] - tr[k], i[k + 4] = ei[k] - ti[k];
        }
    }
};

// Odd radix from the sums u_t = a_t + a_(p-t) and differences v_t = a_t - a_(p-t):
// s_k, s_(p-k) = a_0 + sum cos(2 pi k t / p) u_t  -+  i sum sin(2 pi k t / p) v_t.
template <class V, int P> struct OddButterfly {
    static void run(V* r, V* i, bool inv) {
        constexpr int H = P / 2;
        using T = typename V::type;
        V ur[H + 1], ui[H + 1], vr[H + 1], vi[H + 1];
        V sr = r[0], si = i[0];
        for (int t = 1; t <= H; ++t) {
            ur[t] = r[t] + r[P - t], ui[t] = i[t] + i[P - t];
            vr[t] = r[t] - r[P - t], vi[t] = i[t] - i[P - t];
            sr = sr + ur[t], si = si + ui[t];
        }
        const V r0 = r[0], i0 = i[0];
        r[0] = sr, i[0] = si;
        for (int k = 1; k <= H; ++k) {
            V ar = r0, ai = i0, br = V::zero(), bi = V::zero();
            for (int t = 1; t <= H; ++t) {
                const int m = (k * t) % P;
                const V c = V::set1((T)cos(2 * M_PI * m / P)), s = V::set1((T)sin(2 * M_PI * m / P));
                ar = mul_add(c, ur[t], ar), ai = mul_add(c, ui[t], ai);
                br = mul_add(s, vr[t], br), bi = mul_add(s, vi[t], bi);
            }
            // forward: s_k = A - i B, s_(p-k) = A + i B
            const V pr = ar + bi, pi = ai - br, qr = ar - bi, qi = ai + br;
            if (inv) r[k] = qr, i[k] = qi, r[P - k] = pr, i[P - k] = pi;
            else r[k] = pr, i[k] = pi, r[P - k] = qr, i[P - k] = qi;
        }
    }
};
template <class V> struct Butterfly<V, 3> : OddButterfly<V, 3> {};
template <class V> struct Butterfly<V, 5> : OddButterfly<V, 5> {};

// Where a pass reads or writes a plane: row i's real parts at p + i * ld, imaginary at + m.
template <class T> struct Rows {
    T* p;
    i64 ld, m;
};

// One stage of radix P over columns [0, cols) (a multiple of the lanes), from rows of x to rows of y.
template <class T, int P>
void stage(Rows<T> xr, Rows<T> yr, i64 span, i64 r, const T* twr, const T* twi, bool inv, i64 cols) {
    const T* x = xr.p;
    T* y = yr.p;
    using V = Vec<T>;
    for (i64 j = 0; j < span; ++j) {
        V wr[P], wi[P];
        for (int t = 1; t < P; ++t) {
            wr[t] = V::set1(twr[j * P + t]);
            wi[t] = V::set1(inv ? -twi[j * P + t] : twi[j * P + t]);
        }
        for (i64 k = 0; k < r; ++k) {
            const T* in[P];
            T* out[P];
            for (int t = 0; t < P; ++t) in[t] = x + (j * r * P + k + r * t) * xr.ld;
            for (int s = 0; s < P; ++s) out[s] = y + ((j + span * s) * r + k) * yr.ld;
            for (i64 c = 0; c < cols; c += V::L) {
                V ar[P], ai[P];
                for (int t = 0; t < P; ++t) ar[t] = V::load(in[t] + c), ai[t] = V::load(in[t] + xr.m + c);
                if (j > 0)
                    for (int t = 1; t < P; ++t) {
                        const V a = ar[t];
                        ar[t] = mul_add(a, wr[t], V::zero() - ai[t] * wi[t]);
                        ai[t] = mul_add(a, wi[t], ai[t] * wr[t]);
                    }
                Butterfly<V, P>::run(ar, ai, inv);
                for (int s = 0; s < P; ++s) ar[s].store(out[s] + c), ai[s].store(out[s] + yr.m + c);
            }
        }
    }
}

// Every stage along the row index, from src, through the work planes w0 and w1 (src may be
// either), to dst if given (else the result stays in a work plane: returned).
template <class T>
Rows<T> pass(const FftPlan<T>& p, Rows<T> src, T* w0, T* w1, i64 ld, const Rows<T>* dst, bool inv, i64 cols) {
    Rows<T> cur = src;
    for (int q = 0; q < p.stages; ++q) {
        const i64 span = p.span[q], r = p.n / (span * p.radix[q]);
        const T *twr = p.twr + p.tw[q], *twi = p.twi + p.tw[q];
        const Rows<T> out = q == p.stages - 1 && dst ? *dst : Rows<T>{cur.p == w0 ? w1 : w0, ld, p.n * ld};
        switch (p.radix[q]) {
            case 2: stage<T, 2>(cur, out, span, r, twr, twi, inv, cols); break;
            case 3: stage<T, 3>(cur, out, span, r, twr, twi, inv, cols); break;
            case 4: stage<T, 4>(cur, out, span, r, twr, twi, inv, cols); break;
            case 8: stage<T, 8>(cur, out, span, r, twr, twi, inv, cols); break;
            default: stage<T, 5>(cur, out, span, r, twr, twi, inv, cols); break;
        }
        cur = out;
    }
    return cur;
}

// An 8 x 8 (or 4 x 4 for AVX2 doubles) block: d[c * ldd + i] = s[i * lds + c]. Returns false
// where this ISA has no block transpose (element by element then).
inline bool block_transpose(const double* s, i64 lds, double* d, i64 ldd) {
#if defined(RC_ISA_AVX512)
    __m512d r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm512_loadu_pd(s + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    // u[0..3]: columns {0,4}, {2,6}, {1,5}, {3,7} of rows 0-3 (as pairs); u[4..7] of rows 4-7
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm512_shuffle_f64x2(t[h], t[h + 2], 0x88);
        u[h + 1] = _mm512_shuffle_f64x2(t[h], t[h + 2], 0xdd);
        u[h + 2] = _mm512_shuffle_f64x2(t[h + 1], t[h + 3], 0x88);
        u[h + 3] = _mm512_shuffle_f64x2(t[h + 1], t[h + 3], 0xdd);
    }
    const int col[4][2] = {{0, 4}, {2, 6}, {1, 5}, {3, 7}};
    for (int q = 0; q < 4; ++q) {
        _mm512_storeu_pd(d + col[q][0] * ldd, _mm512_shuffle_f64x2(u[q], u[q + 4], 0x88));
        _mm512_storeu_pd(d + col[q][1] * ldd, _mm512_shuffle_f64x2(u[q], u[q + 4], 0xdd));
    }
    return true;
#elif defined(RC_ISA_AVX2)
    for (int b = 0; b < 8; b += 4)
        for (int a = 0; a < 8; a += 4) {  // 4 x 4 sub-blocks
            const double* p = s + a * lds + b;
            const __m256d r0 = _mm256_loadu_pd(p), r1 = _mm256_loadu_pd(p + lds), r2 = _mm256_loadu_pd(p + 2 * lds),
                          r3 = _mm256_loadu_pd(p + 3 * lds);
            const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double* q = d + b * ldd + a;
            _mm256_storeu_pd(q, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(q + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(q + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(q + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
    return true;
#else
    (void)s, (void)lds, (void)d, (void)ldd;
    return false;
#endif
}

inline bool block_transpose(const float* s, i64 lds, float* d, i64 ldd) {
#if defined(RC_ISA_AVX512) || defined(RC_ISA_AVX2)
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int q = 0; q < 4; ++q) {
        _mm256_storeu_ps(d + q * ldd, _mm256_permute2f128_ps(u[q], u[q + 4], 0x20));
        _mm256_storeu_ps(d + (q + 4) * ldd, _mm256_permute2f128_ps(u[q], u[q + 4], 0x31));
    }
    return true;
#else
    (void)s, (void)lds, (void)d, (void)ldd;
    return false;
#endif
}

i64 round_up(i64 a, i64 b) { return (a + b - 1) / b * b; }

// d[c][i] = s[r0 + i][c] for i < rows, c < n (real and imaginary planes); columns c >= valid of s
// are taken as zero (a pass that skipped them left them unwritten), and d's columns from rows up
// to the next multiple of the lanes are zeroed (the next pass's vectors read them).
template <class T> void transpose(const T* s, T* d, i64 n, i64 ld, i64 r0, i64 rows, i64 valid) {
    const i64 m = n * ld;
    constexpr i64 B = 8;
    for (int part = 0; part < 2; ++part, s += m, d += m) {
        for (i64 c0 = 0; c0 < valid; c0 += B)
            for (i64 i0 = 0; i0 < rows; i0 += B) {
                const i64 c1 = c0 + B < valid ? c0 + B : valid, i1 = i0 + B < rows ? i0 + B : rows;
                if (c1 - c0 == B && i1 - i0 == B && block_transpose(s + (r0 + i0) * ld + c0, ld, d + c0 * ld + i0, ld))
                    continue;
                for (i64 c = c0; c < c1; ++c)
                    for (i64 i = i0; i < i1; ++i) d[c * ld + i] = s[(r0 + i) * ld + c];
            }
        for (i64 c = valid; c < n; ++c)
            for (i64 i = 0; i < rows; ++i) d[c * ld + i] = T(0);
        const i64 cols = round_up(rows, Vec<T>::L);
        for (i64 c = 0; c < n; ++c)
            for (i64 i = rows; i < cols; ++i) d[c * ld + i] = T(0);
    }
}

template <class T>
void fft_forward(const T* a, const T* b, i64 h, i64 w, i64 pr, i64 pc, const FftPlan<T>& p, i64 ld, T* z, i64 zs,
                 i64 zm, T* work) {
    const i64 n = p.n, m = n * ld, L = Vec<T>::L;
    T* w0 = work;
    T* w1 = work + 2 * m;
    const i64 cols = round_up(pc + w, L);  // columns past the data stay zero through the first pass
    for (int part = 0; part < 2; ++part) {
        T* d = w0 + part * m;
        const T* src = part ? b : a;
        for (i64 i = 0; i < n; ++i) {
            T* row = d + i * ld;
            const i64 hr = i - pr;
            if (!src || hr < 0 || hr >= h) {
                for (i64 c = 0; c < cols; ++c) row[c] = T(0);
                continue;
            }
            for (i64 c = 0; c < pc; ++c) row[c] = T(0);
            for (i64 c = 0; c < w; ++c) row[pc + c] = src[hr * w + c];
            for (i64 c = pc + w; c < cols; ++c) row[c] = T(0);
        }
    }
    const Rows<T> r1 = pass(p, Rows<T>{w0, ld, m}, w0, w1, ld, (const Rows<T>*)nullptr, false, cols);
    T* t = r1.p == w0 ? w1 : w0;
    transpose(r1.p, t, n, ld, 0, n, pc + w);
    const Rows<T> dst{z, zs, zm};
    pass(p, Rows<T>{t, ld, m}, w0, w1, ld, &dst, false, round_up(n, L));
    for (i64 i = 0; i < n; ++i)  // columns past the last vector: zero for the pointwise products
        for (i64 c = round_up(n, L); c < ld; ++c) z[i * zs + c] = z[i * zs + zm + c] = T(0);
}

template <class T, class Op>
void fft_inverse(const T* z, i64 zs, i64 zm, const FftPlan<T>& p, i64 ld, T* work, i64 r0, i64 c0, i64 oh, i64 ow,
                 T s, T* ya, T ba, T* yb, T bb, T param) {
    using V = Vec<T>;
    const i64 n = p.n, m = n * ld, L = V::L;
    const Op op{param};
    T* w0 = work;
    T* w1 = work + 2 * m;
    // along k2 (rows become x's columns), then only the columns kept, along k1
    const Rows<T> r1 =
        pass(p, Rows<T>{const_cast<T*>(z), zs, zm}, w0, w1, ld, (const Rows<T>*)nullptr, true, round_up(n, L));
    T* t = r1.p == w0 ? w1 : w0;
    transpose(r1.p, t, n, ld, c0, ow, n);
    const T* v = pass(p, Rows<T>{t, ld, m}, w0, w1, ld, (const Rows<T>*)nullptr, true, round_up(ow, L)).p;
    const V vs = V::set1(s);
    for (int part = 0; part < 2; ++part) {
        T* y = part ? yb : ya;
        if (!y) continue;
        const V bias = V::set1(part ? bb : ba);
        const T* src = v + part * m + r0 * ld;
        for (i64 i = 0; i < oh; ++i, src += ld, y += ow) {
            i64 c = 0;
            for (; c + L <= ow; c += L) op.fwd(mul_add(V::load(src + c), vs, bias)).store(y + c);
            if (c < ow) op.fwd(mul_add(V::load(src + c), vs, bias)).store_tail(y + c, ow - c);
        }
    }
}

// Output tiles of the pointwise products: TI x TJ complex accumulators and their operands fit the
// register file (16 + 6 + 8 of 32 zmm; 4 + 3 + 4 of 16 ymm).
#if defined(RC_ISA_AVX512)
constexpr int kTileI = 2, kTileJ = 4;
#else
constexpr int kTileI = 1, kTileJ = 2;
#endif

// CJ: which operand is conjugated (0 none, 1 A, 2 B); the signs are folded into the FMAs, one
// negation per A element loaded.
template <class T, int TI, int TJ, int CJ>
void cgemm_tile(i64 K, const T* a, i64 ai, i64 ak, const T* b, i64 bk, i64 bj, T* o, i64 oi, i64 oj, i64 m, i64 e0,
                i64 e1) {
    using V = Vec<T>;
    for (i64 e = e0; e < e1; e += V::L) {
        V re[TI][TJ], im[TI][TJ];
        for (int i = 0; i < TI; ++i)
            for (int j = 0; j < TJ; ++j) re[i][j] = im[i][j] = V::zero();
        for (i64 k = 0; k < K; ++k) {
            V br[TJ], bi[TJ];
            for (int j = 0; j < TJ; ++j) {
                const T* q = b + k * bk + j * bj + e;
                br[j] = V::load(q), bi[j] = V::load(q + m);
            }
            for (int i = 0; i < TI; ++i) {
                const T* q = a + i * ai + k * ak + e;
                const V ar = V::load(q), av = V::load(q + m);
                // re += ar br -+ ai bi, im += ar bi +- ai br (none / conj A); conj B: re += ar br +
                // ai bi, im += ai br - ar bi
                const V n = V::zero() - (CJ == 2 ? ar : av);
                for (int j = 0; j < TJ; ++j) {
                    if (CJ == 0) {
                        re[i][j] = mul_add(n, bi[j], mul_add(ar, br[j], re[i][j]));
                        im[i][j] = mul_add(av, br[j], mul_add(ar, bi[j], im[i][j]));
                    } else if (CJ == 1) {
                        re[i][j] = mul_add(av, bi[j], mul_add(ar, br[j], re[i][j]));
                        im[i][j] = mul_add(n, br[j], mul_add(ar, bi[j], im[i][j]));
                    } else {
                        re[i][j] = mul_add(av, bi[j], mul_add(ar, br[j], re[i][j]));
                        im[i][j] = mul_add(n, bi[j], mul_add(av, br[j], im[i][j]));
                    }
                }
            }
        }
        for (int i = 0; i < TI; ++i)
            for (int j = 0; j < TJ; ++j) {
                T* q = o + i * oi + j * oj + e;
                re[i][j].store(q), im[i][j].store(q + m);
            }
    }
}

template <class T, int TI, int CJ>
void cgemm_row(i64 J, i64 K, const T* a, i64 ai, i64 ak, const T* b, i64 bk, i64 bj, T* o, i64 oi, i64 oj, i64 m,
               i64 e0, i64 e1) {
    i64 j = 0;
    for (; j + kTileJ <= J; j += kTileJ)
        cgemm_tile<T, TI, kTileJ, CJ>(K, a, ai, ak, b + j * bj, bk, bj, o + j * oj, oi, oj, m, e0, e1);
    b += j * bj, o += j * oj;
    switch (J - j) {  // the remaining columns in one tile
        case 3: return cgemm_tile<T, TI, 3, CJ>(K, a, ai, ak, b, bk, bj, o, oi, oj, m, e0, e1);
        case 2: return cgemm_tile<T, TI, 2, CJ>(K, a, ai, ak, b, bk, bj, o, oi, oj, m, e0, e1);
        case 1: return cgemm_tile<T, TI, 1, CJ>(K, a, ai, ak, b, bk, bj, o, oi, oj, m, e0, e1);
        default: return;
    }
}

template <class T, int CJ>
void cgemm_conj(i64 I, i64 J, i64 K, const T* a, i64 ai, i64 ak, const T* b, i64 bk, i64 bj, T* o, i64 oi, i64 oj,
                i64 m, i64 e0, i64 e1) {
    i64 i = 0;
    for (; i + kTileI <= I; i += kTileI)
        cgemm_row<T, kTileI, CJ>(J, K, a + i * ai, ai, ak, b, bk, bj, o + i * oi, oi, oj, m, e0, e1);
    for (; i < I; ++i) cgemm_row<T, 1, CJ>(J, K, a + i * ai, ai, ak, b, bk, bj, o + i * oi, oi, oj, m, e0, e1);
}

template <class T>
void cgemm(i64 I, i64 J, i64 K, const T* a, i64 ai, i64 ak, const T* b, i64 bk, i64 bj, T* o, i64 oi, i64 oj, i64 m,
           i64 e0, i64 e1, int conj_a, int conj_b) {
    if (conj_a) return cgemm_conj<T, 1>(I, J, K, a, ai, ak, b, bk, bj, o, oi, oj, m, e0, e1);
    if (conj_b) return cgemm_conj<T, 2>(I, J, K, a, ai, ak, b, bk, bj, o, oi, oj, m, e0, e1);
    cgemm_conj<T, 0>(I, J, K, a, ai, ak, b, bk, bj, o, oi, oj, m, e0, e1);
}

}  // namespace

template <class T> FftKernels<T> make_fft() {
    FftKernels<T> k;
    k.forward = &fft_forward<T>;
    k.inverse[kNormNone] = &fft_inverse<T, Identity<T>>;
    k.inverse[kNormRelu] = &fft_inverse<T, Relu<T>>;
    k.inverse[kNormLeaky] = &fft_inverse<T, LeakyRelu<T>>;
    k.inverse[kNormElu] = &fft_inverse<T, Elu<T>>;
    k.cgemm = &cgemm<T>;
    k.lanes = (int)Vec<T>::L;
    return k;
}
template FftKernels<float> make_fft<float>();
template FftKernels<double> make_fft<double>();

}  // namespace RC_NS
}  // namespace relucore
