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
std::string active_isa();
bool set_isa(const std::string& name);               // false if not compiled or the CPU lacks it
std::vector<std::string> compiled_isas();            // in increasing capability
std::vector<std::string> usable_isas();              // compiled and supported by this CPU

// CPU features, by dispatch's names (SSE4_2, AVX2, AVX512F, ...), for tests and diagnostics.
struct IsaFeatures {
    std::string isa;
    std::vector<std::string> required;   // what dispatch verifies before using the ISA
    std::vector<std::string> compiled;   // what the compiler enabled in the ISA's objects
};
std::vector<IsaFeatures> isa_features();             // per compiled ISA, in increasing capability
std::vector<std::string> cpu_features();             // those this CPU has and the OS enables
// The ISAs dispatch would find usable on a CPU with exactly these features (std::invalid_argument
// for a name dispatch does not know).
std::vector<std::string> usable_isas_with(const std::vector<std::string>& features);

}  // namespace relucore
