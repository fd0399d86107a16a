// GEMM from scipy-openblas32 (row-major, 32-bit indices), and control of its thread pool so that it
// never runs threads inside our thread pool's jobs.
#pragma once
#include <stdint.h>

#include <initializer_list>

namespace relucore {
namespace ops {

enum class Tr { N, T };

// OpenBLAS's C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C; leading dimensions in elements.
void blas_gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc);
void blas_gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc);

// The BLAS may use n threads for the next calls (1 inside our own parallel regions).
void blas_threads(int n);
const char* blas_name();
const char* blas_config();  // the library's own description (version, core, threads)

// True if every size fits the BLAS's 32-bit integers.
bool blas_fits(std::initializer_list<int64_t> sizes);

}  // namespace ops
}  // namespace relucore
