// GEMM from scipy-openblas32 (row-major, 32-bit indices), and control of its thread pool so that it
// never runs threads inside our thread pool's jobs.
#pragma once
#include <stdint.h>

#include "relucore/blas.h"
#include "relucore/gemm.h"

namespace relucore {
namespace ops {

// OpenBLAS's C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C; leading dimensions in elements.
void blas_gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc);
void blas_gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc);

}  // namespace ops
}  // namespace relucore
