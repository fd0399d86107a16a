// CPU feature detection (compiled without ISA flags, so it runs on any x86-64) and the active table.
#include "relucore/dispatch.h"

#include <atomic>
#include <stdexcept>
#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define RC_X86 1
#endif

#include "isa_features.h"  // generated: RC_FOR_EACH_ISA, RC_ISA_FEATURES_<isa>

namespace relucore {

// Each ISA's objects report the features their compiler enabled (cpp/dispatch/compiled_features.cpp).
#define RC_DECLARE_PROBE(isa) namespace isa { const char* compiled_features(); }
RC_FOR_EACH_ISA(RC_DECLARE_PROBE)
#undef RC_DECLARE_PROBE

namespace {

enum Reg : unsigned { EAX, EBX, ECX, EDX };
// XCR0 bits the OS must set for the feature's registers to survive a context switch.
constexpr uint64_t kYmm = 0x6;    // SSE + AVX state
constexpr uint64_t kZmm = 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM

// Every feature an ISA may list in CMakeLists.txt (RC_FEATURES_<isa>): name, CPUID leaf (subleaf 0),
// register, bit, and the XCR0 state it needs.
#define RC_X86_FEATURES(X)                                                                    \
    X(SSE3, 1, ECX, 0, 0) X(SSSE3, 1, ECX, 9, 0) X(SSE4_1, 1, ECX, 19, 0) X(SSE4_2, 1, ECX, 20, 0) \
    X(POPCNT, 1, ECX, 23, 0) X(XSAVE, 1, ECX, 26, 0) X(AVX, 1, ECX, 28, kYmm)                  \
    X(FMA, 1, ECX, 12, kYmm) X(F16C, 1, ECX, 29, kYmm) X(AVX2, 7, EBX, 5, kYmm)                \
    X(BMI1, 7, EBX, 3, 0) X(BMI2, 7, EBX, 8, 0) X(AVX512F, 7, EBX, 16, kZmm)                   \
    X(AVX512DQ, 7, EBX, 17, kZmm) X(AVX512BW, 7, EBX, 30, kZmm) X(AVX512VL, 7, EBX, 31, kZmm)

enum class Feature : unsigned {
#define RC_ENUM(name, leaf, reg, bit, xcr0) name,
    RC_X86_FEATURES(RC_ENUM)
#undef RC_ENUM
    count
};
static_assert((unsigned)Feature::count <= 64, "features are kept in a 64-bit mask");

struct CpuidBit { const char* name; unsigned leaf; Reg reg; unsigned bit; uint64_t xcr0; };
constexpr CpuidBit kCpuidBits[] = {
#define RC_ROW(name, leaf, reg, bit, xcr0) {#name, leaf, reg, bit, xcr0},
    RC_X86_FEATURES(RC_ROW)
#undef RC_ROW
};

constexpr uint64_t bit(Feature f) { return uint64_t{1} << (unsigned)f; }

#if RC_X86
uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

// The features of kCpuidBits this CPU has and the OS has enabled, as a mask of bit(Feature).
uint64_t detect() {
    uint64_t mask = 0;
#if RC_X86
    unsigned r1[4] = {}, r7[4] = {};
    if (!__get_cpuid(1, &r1[EAX], &r1[EBX], &r1[ECX], &r1[EDX])) return 0;
    if (__get_cpuid_max(0, nullptr) >= 7) __cpuid_count(7, 0, r7[EAX], r7[EBX], r7[ECX], r7[EDX]);
    const bool osxsave = r1[ECX] & (1u << 27);
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;  // xgetbv faults unless the OS enabled XSAVE
    for (unsigned i = 0; i < (unsigned)Feature::count; ++i) {
        const CpuidBit& b = kCpuidBits[i];
        const unsigned* r = b.leaf == 1 ? r1 : r7;
        if ((r[b.reg] >> b.bit & 1u) && (xcr0 & b.xcr0) == b.xcr0) mask |= uint64_t{1} << i;
    }
#endif
    return mask;
}

std::vector<std::string> names(uint64_t mask) {
    std::vector<std::string> v;
    for (unsigned i = 0; i < (unsigned)Feature::count; ++i)
        if (mask >> i & 1u) v.push_back(kCpuidBits[i].name);
    return v;
}

// Each compiled ISA with the features its objects were compiled for, from the same CMake list as
// their -m flags.
struct IsaSpec { const char* name; const KernelTable* (*table)(); uint64_t required; const char* (*compiled)(); };
#define RC_FEATURE(name) | bit(Feature::name)
#define RC_SPEC(isa) {#isa, &isa::kernel_table, 0 RC_ISA_FEATURES_##isa, &isa::compiled_features},
constexpr IsaSpec kIsas[] = {RC_FOR_EACH_ISA(RC_SPEC)};
#undef RC_SPEC
#undef RC_FEATURE

// An ISA is usable only when the CPU has every feature it was compiled for.
bool usable(const IsaSpec& s, uint64_t cpu) { return (s.required & ~cpu) == 0; }

struct Entry { const char* name; const KernelTable* (*table)(); bool usable; };

std::vector<Entry> entries() {
    const uint64_t cpu = detect();
    std::vector<Entry> e;
    for (const IsaSpec& s : kIsas) e.push_back({s.name, s.table, usable(s, cpu)});
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

std::vector<IsaFeatures> isa_features() {
    std::vector<IsaFeatures> v;
    for (const IsaSpec& s : kIsas) {
        IsaFeatures f{s.name, names(s.required), {}};
        std::string all = s.compiled(), word;
        for (char c : all + " ") {
            if (c != ' ') word += c;
            else if (!word.empty()) f.compiled.push_back(word), word.clear();
        }
        v.push_back(f);
    }
    return v;
}

std::vector<std::string> cpu_features() { return names(detect()); }

std::vector<std::string> usable_isas_with(const std::vector<std::string>& features) {
    uint64_t cpu = 0;
    for (const std::string& name : features) {
        unsigned i = 0;
        while (i < (unsigned)Feature::count && name != kCpuidBits[i].name) ++i;
        if (i == (unsigned)Feature::count) throw std::invalid_argument("unknown CPU feature '" + name + "'");
        cpu |= uint64_t{1} << i;
    }
    std::vector<std::string> v;
    for (const IsaSpec& s : kIsas)
        if (usable(s, cpu)) v.push_back(s.name);
    return v;
}

}  // namespace relucore
