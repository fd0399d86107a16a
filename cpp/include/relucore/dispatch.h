// Choosing the kernel table: CPUID + XGETBV once at import, RELUCORE_ISA (read by the Python layer)
// or a test may switch it later with set_isa.
#pragma once
#include <string>
#include <vector>
#include "relucore/kernels.h"

namespace relucore {

// Every runtime switch a call depends on. A call reads them once (SettingsScope) and uses that
// snapshot to its end, on every thread it runs on: a switch flipped meanwhile by another thread
// applies from the next call, never halfway through one (packed layouts differ between tables).
struct Settings {
    const KernelTable* kernels;  // set_isa
    int gemm;                    // set_gemm_backend (cpp/ops/gemm.cpp's values)
    int conv_algo;               // set_conv_algo (cpp/ops/conv_algo.h's values)
    int threads;                 // set_num_threads (work splits and per-thread buffers follow it)
};

// The process-wide thread count (defined in cpp/ops/threads.cpp).
int threads_now();

// The calling thread's snapshot while a SettingsScope is active on it, else the switches now.
Settings current_settings();

// Installs a snapshot on the calling thread for its lifetime: a fresh one unless one is already
// active (nested calls keep the outer call's), or the given one (pool workers take the caller's).
class SettingsScope {
  public:
    SettingsScope();
    explicit SettingsScope(const Settings& s);
    ~SettingsScope();
    SettingsScope(const SettingsScope&) = delete;
    SettingsScope& operator=(const SettingsScope&) = delete;

  private:
    Settings own_;
    const Settings* outer_;
};

// The process-wide switches behind set_gemm_backend and set_conv_algo (values owned by those).
void set_gemm_switch(int value);
void set_conv_algo_switch(int value);

const KernelTable& active_kernels();                 // the chosen table (the call's snapshot)

// The chosen table's kernels for one dtype.
template <class T> const Kernels<T>& kernels() { return active_kernels().template of<T>(); }
template <class T> const ElementwiseKernels<T>& elementwise_kernels() { return kernels<T>().act; }
template <class T> const ConvKernels<T>& conv_kernels() { return kernels<T>().conv; }
template <class T> const GemmKernels<T>& gemm_kernels() { return kernels<T>().gemm; }
template <class T> const WinogradKernels<T>& winograd_kernels() { return kernels<T>().wino; }
template <class T> const FftKernels<T>& fft_kernels() { return kernels<T>().fft; }
template <class T> const NormKernels<T>& norm_kernels() { return kernels<T>().norm; }
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
