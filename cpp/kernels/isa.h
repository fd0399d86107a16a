// Included first by every kernel source: the vector wrapper of the ISA this object is compiled for
// (RC_NS and RC_ISA_* come from CMake), and the per-ISA pieces that table.cpp assembles.
#pragma once
#include "relucore/kernels.h"

#if defined(RC_ISA_AVX512)
#include "../simd/avx512.h"
#elif defined(RC_ISA_AVX2)
#include "../simd/avx2.h"
#else
#include "../simd/scalar_isa.h"
#endif

namespace relucore {
namespace RC_NS {
template <class T> ElementwiseKernels<T> make_elementwise();
template <class T> ConvKernels<T> make_conv();
template <class T> GemmKernels<T> make_gemm();
}  // namespace RC_NS
}  // namespace relucore
