// The only file that includes the BLAS header.
#include "blas.h"

#include <atomic>

#include <cblas.h>

namespace relucore {
namespace ops {
namespace {
CBLAS_TRANSPOSE tr(Tr t) { return t == Tr::N ? CblasNoTrans : CblasTrans; }
std::atomic<int> g_blas_threads{-1};
}  // namespace

void blas_gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
    scipy_cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b,
                      (blasint)ldb, beta, c, (blasint)ldc);
}

void blas_gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc) {
    scipy_cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b,
                      (blasint)ldb, beta, c, (blasint)ldc);
}

void blas_threads(int n) {
    if (n < 1) n = 1;
    if (g_blas_threads.exchange(n) != n) scipy_openblas_set_num_threads(n);
}

const char* blas_name() { return "scipy-openblas32"; }

const char* blas_config() { return scipy_openblas_get_config(); }

}  // namespace ops
}  // namespace relucore
