// Choosing the kernel table: CPUID + XGETBV once at import, RELUCORE_ISA (read by the Python layer)
// or a test may switch it later with set_isa.
#pragma once
#include <string>
#include <vector>
#include "relucore/kernels.h"

namespace relucore {

const KernelTable& active_kernels();                 // the chosen table
std::string active_isa();
bool set_isa(const std::string& name);               // false if not compiled or the CPU lacks it
std::vector<std::string> compiled_isas();            // in increasing capability
std::vector<std::string> usable_isas();              // compiled and supported by this CPU

}  // namespace relucore
