// The GEMM inside cpp/ops (relucore/gemm.h): the tile width thread splits align to, and the GEMM
// split over our own threads, by blocks of the output or by chunks of the depth.
#pragma once
#include <stdint.h>

#include <atomic>

#include "blas.h"
#include "items.h"
#include "relucore/gemm.h"

namespace relucore {
namespace ops {

// Columns of C per full float register tile of the GEMM in use, a multiple of the double one
// (thread splits fall on multiples of it).
int64_t gemm_align();

// Threads for a GEMM: by its multiply-adds, or by the elements it moves when that asks for more (a
// product with few rows, e.g. batch-1 inference, reads each weight once: bandwidth-bound at a
// fraction of a thread's multiply-add grain).
inline int gemm_cap(int nt, i64 m, i64 n, i64 k) {
    const int by_flops = cap(nt, m * n * k, kGrainFlops), by_bytes = cap(nt, m * k + k * n + m * n, kGrainCopy);
    return by_flops > by_bytes ? by_flops : by_bytes;
}

// f(i0, i1, j0, j1) -> bool over blocks of an m x n output split across nt threads: by columns
// (multiples of the GEMM's tile width), or by rows when the output is narrow. With `longer`, along
// the longer side when both would do: each block packs the whole operand along the other side
// again, so that one should be the smaller (linear layers; convolution builds its columns per
// block, and keeps columns). nt = 1 is a plain call. False if any block's f was.
template <class F> bool par_blocks(int nt, i64 m, i64 n, i64 k, F&& f, bool longer = false) {
    nt = gemm_cap(nt, m, n, k);
    const i64 align = gemm_align();
    const bool cols_ok = n >= align * nt, rows_ok = m >= 16 * nt;
    std::atomic<bool> ok{true};
    if (nt > 1 && cols_ok && (!longer || n >= m || !rows_ok))
        parallel_range(n, align, align, nt, [&](i64 j0, i64 j1, int) { if (!f(0, m, j0, j1)) ok = false; });
    else if (nt > 1 && rows_ok)
        parallel_range(m, 16, 16, nt, [&](i64 i0, i64 i1, int) { if (!f(i0, i1, 0, n)) ok = false; });
    else
        return f(0, m, 0, n);
    return ok;
}

// GEMM split over our own OpenMP threads (the BLAS stays single-threaded: two thread pools on
// the same cores fight, see docs/performance.md), block by block as par_blocks splits C.
template <class T>
bool par_gemm(int nt, Tr ta, Tr tb, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb, T beta,
              T* c, i64 ldc, bool longer = false) {
    return par_blocks(nt, m, n, k, [&](i64 i0, i64 i1, i64 j0, i64 j1) {
        return gemm(ta, tb, i1 - i0, j1 - j0, k, alpha, ta == Tr::N ? a + i0 * lda : a + i0, lda,
                    tb == Tr::N ? b + j0 : b + j0 * ldb, ldb, beta, c + i0 * ldc + j0, ldc);
    }, longer);
}

// The depth split: a small output (too few columns or rows to share out whole tiles evenly, e.g.
// 100 x 100) over a long depth. The depth is cut into kKChunks fixed chunks, whose partial
// products run on any free thread and are then added in chunk order: the same sums for any
// thread count. Chooses by shape alone.
constexpr int kKChunks = 4;
inline bool use_ksplit(i64 m, i64 n, i64 k) {
    return k >= kKChunks * 256 && m * n <= 128 * 128 && k >= 4 * (m + n);
}

// Chunk c of [0, k): equal shares, cut at multiples of 16 (whole cache lines of a row).
inline i64 chunk_start(i64 k, int c) { return c == kKChunks ? k : (k * c / kKChunks) / 16 * 16; }

// par_gemm by use_ksplit's chunks: chunk 0 into C (with beta), the others into kept scratch of
// the calling thread, then added to C in order. False if a GEMM or the scratch failed.
template <class T>
bool gemm_ksplit(int nt, Tr ta, Tr tb, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb,
                 T beta, T* c, i64 ldc) {
    const i64 mn = m * n;
    T* part = scratch<T>(kPartials, (kKChunks - 1) * mn);
    if (!part) return false;
    std::atomic<bool> ok{true};
    parallel_items(kKChunks, gemm_cap(nt, m, n, k), [&](i64 ch) {
        const i64 p0 = chunk_start(k, (int)ch), p1 = chunk_start(k, (int)ch + 1);
        const T* ap = ta == Tr::N ? a + p0 : a + p0 * lda;
        const T* bp = tb == Tr::N ? b + p0 * ldb : b + p0;
        const bool good = ch == 0 ? gemm(ta, tb, m, n, p1 - p0, alpha, ap, lda, bp, ldb, beta, c, ldc)
                                  : gemm(ta, tb, m, n, p1 - p0, alpha, ap, lda, bp, ldb, T(0), part + (ch - 1) * mn, n);
        if (!good) ok = false;
    });
    if (!ok) return false;
    for (int ch = 1; ch < kKChunks; ++ch) {
        const T* p = part + (ch - 1) * mn;
        for (i64 i = 0; i < m; ++i)
            for (i64 j = 0; j < n; ++j) c[i * ldc + j] += p[i * n + j];
    }
    return true;
}

// The GEMM of a linear layer: gemm_ksplit for the shapes use_ksplit picks, else par_gemm split
// along the longer side.
template <class T>
bool par_gemm_any(int nt, Tr ta, Tr tb, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb,
                  T beta, T* c, i64 ldc) {
    if (use_ksplit(m, n, k)) return gemm_ksplit(nt, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return par_gemm(nt, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, true);
}

}  // namespace ops
}  // namespace relucore
