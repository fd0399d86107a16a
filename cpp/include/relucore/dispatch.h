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
    int conv_algo;               // set_conv_algo (cpp/ops/winograd.cpp's values)
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
