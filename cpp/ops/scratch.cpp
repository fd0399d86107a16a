// The per-thread scratch buffers (declared in relucore/kernels.h).
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "relucore/kernels.h"

namespace relucore {
namespace {

struct Buffers {
    void* p[kSlots] = {};
    i64 bytes[kSlots] = {};
    void release() {
        for (int i = 0; i < kSlots; ++i) {
            free(p[i]);
            p[i] = nullptr;
            bytes[i] = 0;
        }
    }
    ~Buffers() { release(); }
};

Buffers& buffers() {
    thread_local Buffers b;
    return b;
}

// Buffers of at least this size are 2 MB aligned and asked to be backed by huge pages (where the
// kernel leaves that to madvise): the FFT convolution's spectra of dy (13 MB on the CS231n layer)
// are written a row of every spectrum apart, which with 4 KB pages missed the TLB on most stores.
constexpr i64 kHuge = 4 << 20;

void* allocate(i64 need) {
    if (need < kHuge) return aligned_alloc(64, (size_t)need);
    const i64 page = 2 << 20;
    const i64 size = (need + page - 1) / page * page;
    void* p = aligned_alloc((size_t)page, (size_t)size);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) madvise(p, (size_t)size, MADV_HUGEPAGE);  // advice only: failure leaves 4 KB pages
#endif
    return p;
}

}  // namespace

void* scratch_bytes(ScratchSlot slot, i64 bytes) {
    Buffers& b = buffers();
    const i64 need = ((bytes > 0 ? bytes : 1) + 63) / 64 * 64;
    if (b.bytes[slot] < need) {
        free(b.p[slot]);
        b.p[slot] = allocate(need);
        b.bytes[slot] = b.p[slot] ? need : 0;
    }
    return b.p[slot];
}

void release_thread_scratch() { buffers().release(); }

}  // namespace relucore
