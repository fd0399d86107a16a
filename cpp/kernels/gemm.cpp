// Single-threaded GEMM, row-major: C = alpha * op(A) op(B) + beta * C, written once against the
// vector wrapper. Goto/BLIS blocking: a KC x NC block of op(B) is packed into NR-wide panels that
// stay in L2, an MC x KC block of op(A) into MR-row panels (one stays in L1), and a register tile
// of MR rows x NV vectors accumulates over KC. Packing zero-pads the edges, so the inner loop has
// no tail; only the stores of edge tiles are masked. cpp/ops splits calls across threads.
#include <stdlib.h>

#include "isa.h"

namespace relucore {
namespace RC_NS {
namespace {

// Register tile: MR rows of C by NV vectors (MR*NV accumulators + NV B vectors + 1 broadcast must
// fit the register file: 8*3+3+1 of 32 zmm, 6*2+2+1 of 16 ymm).
#if defined(RC_ISA_AVX512)
constexpr int kMR = 8, kNV = 3;
#elif defined(RC_ISA_AVX2)
constexpr int kMR = 6, kNV = 2;
#else
constexpr int kMR = 4, kNV = 4;
#endif
constexpr i64 kKC = 256;             // depth of one block: an A panel is MR*KC elements (8 KB float)
constexpr i64 kMC = 192;             // rows of A packed at a time (a multiple of every MR)
constexpr i64 kL2Bytes = 512 << 10;  // budget for the packed B block (KC x NC)

template <class T> constexpr i64 nr() { return kNV * VecOf<T>::type::L; }
template <class T> constexpr i64 nc() { return kL2Bytes / (kKC * (i64)sizeof(T)) / nr<T>() * nr<T>(); }

// A growable 64-byte aligned scratch buffer per thread (packing buffers: at most
// MC*KC + KC*NC elements, ~0.7 MB, whatever the GEMM's size).
template <class T> T* scratch(int which, i64 n) {
    struct Buf {
        void* p = nullptr;
        i64 bytes = 0;
        ~Buf() { free(p); }
    };
    thread_local Buf bufs[2];
    Buf& b = bufs[which];
    const i64 need = (n * (i64)sizeof(T) + 63) / 64 * 64;
    if (b.bytes < need) {
        free(b.p);
        b.p = aligned_alloc(64, (size_t)need);
        b.bytes = b.p ? need : 0;
    }
    return static_cast<T*>(b.p);
}

// op(A)(i, p) for rows [i0, i0+mc) and depths [p0, p0+kc) into MR-row panels, each kc x MR
// (depth-major), rows past mc zero; scaled by alpha.
template <class T>
void pack_a(bool ta, const T* a, i64 lda, i64 i0, i64 mc, i64 p0, i64 kc, T alpha, T* dst) {
    for (i64 ir = 0; ir < mc; ir += kMR, dst += kMR * kc) {
        const i64 rows = mc - ir < kMR ? mc - ir : kMR;
        if (ta) {  // op(A)(i, p) = a[p * lda + i]: MR contiguous values per depth
            for (i64 p = 0; p < kc; ++p) {
                const T* src = a + (p0 + p) * lda + i0 + ir;
                T* d = dst + p * kMR;
                for (i64 i = 0; i < rows; ++i) d[i] = alpha * src[i];
                for (i64 i = rows; i < kMR; ++i) d[i] = T(0);
            }
        } else {  // op(A)(i, p) = a[i * lda + p]: read each row contiguously
            for (i64 i = 0; i < rows; ++i) {
                const T* src = a + (i0 + ir + i) * lda + p0;
                for (i64 p = 0; p < kc; ++p) dst[p * kMR + i] = alpha * src[p];
            }
            for (i64 i = rows; i < kMR; ++i)
                for (i64 p = 0; p < kc; ++p) dst[p * kMR + i] = T(0);
        }
    }
}

// op(B)(p, j) for depths [p0, p0+kc) and columns [j0, j0+ncols) into NR-wide panels, each kc x NR,
// columns past ncols zero.
template <class T>
void pack_b(bool tb, const T* b, i64 ldb, i64 p0, i64 kc, i64 j0, i64 ncols, T* dst) {
    constexpr i64 NR = nr<T>();
    for (i64 jr = 0; jr < ncols; jr += NR, dst += NR * kc) {
        const i64 cols = ncols - jr < NR ? ncols - jr : NR;
        if (!tb) {  // op(B)(p, j) = b[p * ldb + j]: rows of the panel are contiguous
            for (i64 p = 0; p < kc; ++p) {
                const T* src = b + (p0 + p) * ldb + j0 + jr;
                T* d = dst + p * NR;
                for (i64 j = 0; j < cols; ++j) d[j] = src[j];
                for (i64 j = cols; j < NR; ++j) d[j] = T(0);
            }
        } else {  // op(B)(p, j) = b[j * ldb + p]
            for (i64 j = 0; j < cols; ++j) {
                const T* src = b + (j0 + jr + j) * ldb + p0;
                for (i64 p = 0; p < kc; ++p) dst[p * NR + j] = src[p];
            }
            for (i64 j = cols; j < NR; ++j)
                for (i64 p = 0; p < kc; ++p) dst[p * NR + j] = T(0);
        }
    }
}

// C tile (rows x cols, at most MR x NV*L) = acc + beta * C, where acc = the packed panels' product
// over kc. beta == 0 never reads C (it may hold NaN or garbage).
template <class T, int NV>
void tile(i64 kc, const T* __restrict a, const T* __restrict b, T* c, i64 ldc, i64 rows, i64 cols, T beta) {
    using V = typename VecOf<T>::type;
    constexpr i64 NR = nr<T>();
    V acc[kMR][NV];
    for (int i = 0; i < kMR; ++i)
        for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();
    for (i64 p = 0; p < kc; ++p, a += kMR, b += NR) {
        V bv[NV];
        for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * V::L);
        for (int i = 0; i < kMR; ++i) {
            const V av = V::set1(a[i]);
            for (int j = 0; j < NV; ++j) acc[i][j] = mul_add(av, bv[j], acc[i][j]);
        }
    }
    const V vb = V::set1(beta);
    if (rows == kMR && cols == NV * V::L) {
        for (int i = 0; i < kMR; ++i)
            for (int j = 0; j < NV; ++j) {
                T* p = c + i * ldc + j * V::L;
                (beta == T(0) ? acc[i][j] : mul_add(vb, V::load(p), acc[i][j])).store(p);
            }
        return;
    }
    for (int i = 0; i < kMR; ++i) {
        if (i >= rows) break;
        for (int j = 0; j < NV; ++j) {
            T* p = c + i * ldc + j * V::L;
            const i64 n = cols - j * V::L;
            if (n >= V::L) (beta == T(0) ? acc[i][j] : mul_add(vb, V::load(p), acc[i][j])).store(p);
            else if (n > 0) (beta == T(0) ? acc[i][j] : mul_add(vb, V::load_tail(p, n), acc[i][j])).store_tail(p, n);
        }
    }
}

// The narrowest tile that covers `cols` (edge panels of a narrow C do not pay for NV vectors).
template <class T, int NV>
void tile_for(i64 kc, const T* a, const T* b, T* c, i64 ldc, i64 rows, i64 cols, T beta) {
    using V = typename VecOf<T>::type;
    if constexpr (NV > 1) {
        if (cols <= (NV - 1) * V::L) return tile_for<T, NV - 1>(kc, a, b, c, ldc, rows, cols, beta);
    }
    tile<T, NV>(kc, a, b, c, ldc, rows, cols, beta);
}

template <class T>
void gemm(int ta, int tb, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb, T beta, T* c,
          i64 ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == T(0)) {  // C = beta * C (beta == 0 writes zeros, as BLAS does)
        for (i64 i = 0; i < m; ++i)
            for (i64 j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
        return;
    }
    constexpr i64 NR = nr<T>(), NC = nc<T>();
    const i64 kc_max = k < kKC ? k : kKC;
    const i64 nc_max = n < NC ? (n + NR - 1) / NR * NR : NC;
    const i64 mc_max = m < kMC ? (m + kMR - 1) / kMR * kMR : kMC;
    T* bp = scratch<T>(0, kc_max * nc_max);
    T* ap = scratch<T>(1, kc_max * mc_max);
    if (!bp || !ap) return;  // cpp/ops sizes never get here; an allocation failure leaves C as is
    for (i64 jc = 0; jc < n; jc += NC) {
        const i64 ncols = n - jc < NC ? n - jc : NC;
        for (i64 pc = 0; pc < k; pc += kKC) {
            const i64 kc = k - pc < kKC ? k - pc : kKC;
            const T bet = pc == 0 ? beta : T(1);
            pack_b(tb != 0, b, ldb, pc, kc, jc, ncols, bp);
            for (i64 ic = 0; ic < m; ic += kMC) {
                const i64 mc = m - ic < kMC ? m - ic : kMC;
                pack_a(ta != 0, a, lda, ic, mc, pc, kc, alpha, ap);
                for (i64 ir = 0; ir < mc; ir += kMR) {
                    const i64 rows = mc - ir < kMR ? mc - ir : kMR;
                    for (i64 jr = 0; jr < ncols; jr += NR) {
                        const i64 cols = ncols - jr < NR ? ncols - jr : NR;
                        tile_for<T, kNV>(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc, rows,
                                         cols, bet);
                    }
                }
            }
        }
    }
}

}  // namespace

template <class T> GemmKernels<T> make_gemm() {
    GemmKernels<T> g;
    g.gemm = &gemm<T>;
    g.mr = kMR;
    g.nr = (int)nr<T>();
    return g;
}
template GemmKernels<float> make_gemm<float>();
template GemmKernels<double> make_gemm<double>();

}  // namespace RC_NS
}  // namespace relucore
