// The GEMM that cpp/ops calls: our per-ISA kernel (cpp/kernels/gemm.cpp) or OpenBLAS, chosen
// once per call by the backend setting (RELUCORE_GEMM, read by the Python layer).
#pragma once
#include <stdint.h>

#include <string>

#include "blas.h"

namespace relucore {
namespace ops {

// Row-major C (m x n) = alpha * op(A) op(B) + beta * C on the calling thread; false if scratch
// memory could not be allocated (C incomplete: the caller raises MemoryError, outside any parallel
// region).
bool gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc);
bool gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc);

// Columns of C per full float register tile of the GEMM in use, a multiple of the double one
// (thread splits fall on multiples of it).
int64_t gemm_align();

// Frees the scratch buffers kept between calls on the calling thread and relucore's pool
// worker threads (defined here: it reaches the GEMM kernels' buffers too).
void release_scratch();

// "auto" (own kernel where it measured faster than OpenBLAS: the avx512 table), "own" or "blas".
bool set_gemm_backend(const std::string& name);  // false for an unknown name
std::string gemm_backend();                       // the setting
bool gemm_uses_own();                             // what "auto" means on the active ISA

}  // namespace ops
}  // namespace relucore
