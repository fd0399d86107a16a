// The GEMM inside cpp/ops (relucore/gemm.h): the tile width thread splits align to, and the GEMM
// split over our own threads.
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

// f(i0, i1, j0, j1) -> bool over blocks of an m x n output split across nt threads: by columns
// (multiples of the GEMM's tile width), or by rows when the output is narrow. nt = 1 is a plain
// call. False if any block's f was.
template <class F> bool par_blocks(int nt, i64 m, i64 n, i64 k, F&& f) {
    nt = cap(nt, m * n * k, kGrainFlops);
    const i64 align = gemm_align();
    std::atomic<bool> ok{true};
    if (nt > 1 && n >= align * nt)
        parallel_range(n, align, align, nt, [&](i64 j0, i64 j1, int) { if (!f(0, m, j0, j1)) ok = false; });
    else if (nt > 1 && m >= 16 * nt)
        parallel_range(m, 16, 16, nt, [&](i64 i0, i64 i1, int) { if (!f(i0, i1, 0, n)) ok = false; });
    else
        return f(0, m, 0, n);
    return ok;
}

// GEMM split over our own OpenMP threads (the BLAS stays single-threaded: two thread pools on
// the same cores fight, see docs/performance.md), block by block as par_blocks splits C.
template <class T>
bool par_gemm(int nt, Tr ta, Tr tb, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb, T beta,
              T* c, i64 ldc) {
    return par_blocks(nt, m, n, k, [&](i64 i0, i64 i1, i64 j0, i64 j1) {
        return gemm(ta, tb, i1 - i0, j1 - j0, k, alpha, ta == Tr::N ? a + i0 * lda : a + i0, lda,
                    tb == Tr::N ? b + j0 : b + j0 * ldb, ldb, beta, c + i0 * ldc + j0, ldc);
    });
}

}  // namespace ops
}  // namespace relucore
