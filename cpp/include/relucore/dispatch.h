// Choosing the kernel table: CPUID + XGETBV once at import, RELUCORE_ISA (read by the Python layer)
// or a test may switch it later with set_isa.
#pragma once
#include <string>
#include <vector>
#include "relucore/kernels.h"

namespace relucore {

const KernelTable& active_kernels();                 // the chosen table

// The chosen table's kernels for one dtype.
template <class T> const ElementwiseKernels<T>& elementwise_kernels();
template <> inline const ElementwiseKernels<float>& elementwise_kernels<float>() { return active_kernels().f32; }
template <> inline const ElementwiseKernels<double>& elementwise_kernels<double>() { return active_kernels().f64; }
template <class T> const ConvKernels<T>& conv_kernels();
template <> inline const ConvKernels<float>& conv_kernels<float>() { return active_kernels().conv_f32; }
template <> inline const ConvKernels<double>& conv_kernels<double>() { return active_kernels().conv_f64; }
template <class T> const GemmKernels<T>& gemm_kernels();
template <> inline const GemmKernels<float>& gemm_kernels<float>() { return active_kernels().gemm_f32; }
template <> inline const GemmKernels<double>& gemm_kernels<double>() { return active_kernels().gemm_f64; }
template <class T> const WinogradKernels<T>& winograd_kernels();
template <> inline const WinogradKernels<float>& winograd_kernels<float>() { return active_kernels().wino_f32; }
template <> inline const WinogradKernels<double>& winograd_kernels<double>() { return active_kernels().wino_f64; }
std::string active_isa();
bool set_isa(const std::string& name);               // false if not compiled or the CPU lacks it
std::vector<std::string> compiled_isas();            // in increasing capability
std::vector<std::string> usable_isas();              // compiled and supported by this CPU

}  // namespace relucore
