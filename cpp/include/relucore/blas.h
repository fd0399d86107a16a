// The BLAS behind relucore's GEMM (scipy-openblas32): its name, build and thread count.
#pragma once

namespace relucore {
namespace ops {

// The BLAS may use n threads for the next calls (1 inside our own parallel regions).
void blas_threads(int n);
const char* blas_name();
const char* blas_config();  // the library's own description (version, core, threads)

}  // namespace ops
}  // namespace relucore
