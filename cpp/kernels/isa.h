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
// The conv families' pieces of ConvKernels, one file each; make_conv (table.cpp) joins them.
template <class T> void fill_im2col(ConvKernels<T>& k);     // im2col.cpp
template <class T> void fill_pool(ConvKernels<T>& k);       // pool.cpp
template <class T> void fill_depthwise(ConvKernels<T>& k);  // depthwise.cpp
template <class T> void fill_small_conv(ConvKernels<T>& k);  // small_conv.cpp
template <class T> void fill_reduce(ConvKernels<T>& k);     // reduce.cpp
template <class T> GemmKernels<T> make_gemm();
template <class T> WinogradKernels<T> make_winograd();
template <class T> FftKernels<T> make_fft();
template <class T> NormKernels<T> make_norm();
template <class T> void fill_norm_pool(NormKernels<T>& k);  // norm_pool.cpp, for make_norm
template <class T> LossKernels<T> make_loss();
// Shared between im2col.cpp and gemm.cpp (the fused im2col GEMMs): rows [r0, r1) x columns [j0, j1)
// of one image's column matrix into dst with row stride ldd.
template <class T>
void im2col_block(const T* x, const ConvGeom& g, i64 r0, i64 r1, i64 j0, i64 j1, T* dst, i64 ldd);
}  // namespace RC_NS
}  // namespace relucore
