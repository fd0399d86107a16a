// CPU feature detection (compiled without ISA flags, so it runs on any x86-64) and the active table.
#include "relucore/dispatch.h"

#include <atomic>
#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define RC_X86 1
#endif

namespace relucore {
namespace {

#if RC_X86
uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

struct Features { bool avx2 = false, avx512 = false; };

Features detect() {
    Features f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
    if (!osxsave || !avx) return f;
    const uint64_t xcr0 = xgetbv0();
    const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE + AVX state saved by the OS
    const bool zmm_state = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM
    if (__get_cpuid_max(0, nullptr) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = b & (1u << 5), bmi2 = b & (1u << 8);
    const bool f512 = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    f.avx2 = ymm_state && avx2 && fma && bmi2;
    f.avx512 = f.avx2 && zmm_state && f512 && dq && bw && vl;
    return f;
}
#endif

struct Entry { const char* name; const KernelTable* (*table)(); bool usable; };

std::vector<Entry> entries() {
    std::vector<Entry> e;
    e.push_back({"scalar", &scalar::kernel_table, true});
#if RC_HAVE_AVX2 || RC_HAVE_AVX512
    const Features f = detect();
#endif
#if RC_HAVE_AVX2
    e.push_back({"avx2", &avx2::kernel_table, f.avx2});
#endif
#if RC_HAVE_AVX512
    e.push_back({"avx512", &avx512::kernel_table, f.avx512});
#endif
    return e;
}

const std::vector<Entry>& all() {
    static const std::vector<Entry> e = entries();
    return e;
}

const KernelTable* best() {
    const KernelTable* t = nullptr;
    for (const Entry& e : all())
        if (e.usable) t = e.table();
    return t;
}

std::atomic<const KernelTable*> g_active{nullptr};
std::atomic<int> g_gemm{0}, g_conv_algo{0};
thread_local const Settings* t_settings = nullptr;

const KernelTable* global_table() {
    const KernelTable* t = g_active.load(std::memory_order_acquire);
    if (!t) {
        t = best();
        g_active.store(t, std::memory_order_release);
    }
    return t;
}

}  // namespace

Settings current_settings() {
    if (t_settings) return *t_settings;
    return Settings{global_table(), g_gemm.load(std::memory_order_acquire), g_conv_algo.load(std::memory_order_acquire),
                    threads_now()};
}

SettingsScope::SettingsScope() : own_(current_settings()), outer_(t_settings) {
    if (!outer_) t_settings = &own_;
}

SettingsScope::SettingsScope(const Settings& s) : own_(s), outer_(t_settings) { t_settings = &own_; }

SettingsScope::~SettingsScope() { t_settings = outer_; }

void set_gemm_switch(int value) { g_gemm.store(value, std::memory_order_release); }
void set_conv_algo_switch(int value) { g_conv_algo.store(value, std::memory_order_release); }

const KernelTable& active_kernels() { return t_settings ? *t_settings->kernels : *global_table(); }

std::string active_isa() { return active_kernels().isa; }

bool set_isa(const std::string& name) {
    for (const Entry& e : all())
        if (e.usable && name == e.name) {
            g_active.store(e.table(), std::memory_order_release);
            return true;
        }
    return false;
}

std::vector<std::string> compiled_isas() {
    std::vector<std::string> v;
    for (const Entry& e : all()) v.push_back(e.name);
    return v;
}

std::vector<std::string> usable_isas() {
    std::vector<std::string> v;
    for (const Entry& e : all())
        if (e.usable) v.push_back(e.name);
    return v;
}

}  // namespace relucore
