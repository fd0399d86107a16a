// Choosing the kernel table: CPUID + XGETBV once at import, RELUCORE_ISA (read by the Python layer)
// or a test may switch it later with set_isa.
#pragma once
#include <string>
#include <vector>
#include "relucore/kernels.h"

namespace relucore {

const KernelTable& active_kernels();                 // the chosen table

// The chosen table's kernels for one dtype.
template <class T> const Kernels<T>& kernels() { return active_kernels().template of<T>(); }
template <class T> const ElementwiseKernels<T>& elementwise_kernels() { return kernels<T>().act; }
template <class T> const ConvKernels<T>& conv_kernels() { return kernels<T>().conv; }
template <class T> const GemmKernels<T>& gemm_kernels() { return kernels<T>().gemm; }
template <class T> const WinogradKernels<T>& winograd_kernels() { return kernels<T>().wino; }
template <class T> const NormKernels<T>& norm_kernels() { return kernels<T>().norm; }
std::string active_isa();
bool set_isa(const std::string& name);               // false if not compiled or the CPU lacks it
std::vector<std::string> compiled_isas();            // in increasing capability
std::vector<std::string> usable_isas();              // compiled and supported by this CPU

}  // namespace relucore
