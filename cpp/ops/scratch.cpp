// The per-thread scratch buffers (declared in relucore/kernels.h).
#include <stdlib.h>

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

}  // namespace

void* scratch_bytes(ScratchSlot slot, i64 bytes) {
    Buffers& b = buffers();
    const i64 need = ((bytes > 0 ? bytes : 1) + 63) / 64 * 64;
    if (b.bytes[slot] < need) {
        free(b.p[slot]);
        b.p[slot] = aligned_alloc(64, (size_t)need);
        b.bytes[slot] = b.p[slot] ? need : 0;
    }
    return b.p[slot];
}

void release_thread_scratch() { buffers().release(); }

}  // namespace relucore
