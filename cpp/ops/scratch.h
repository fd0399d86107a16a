// Reusable scratch memory for cpp/ops (column buffers, dweight partials), one set per calling
// thread, kept between calls: a fresh allocation per call costs page faults and zeroing, measured
// at ~10% of a ResNet layer's backward (docs/performance.md). Contents are uninitialized.
#pragma once
#include <stdint.h>
#include <stdlib.h>

namespace relucore {
namespace ops {

enum ScratchSlot { kColumns = 0, kPartials = 1, kWinogradWeights = 2, kSlots = 3 };

struct ScratchBuffers {
    void* p[kSlots] = {};
    int64_t bytes[kSlots] = {};
    void release() {
        for (int i = 0; i < kSlots; ++i) {
            free(p[i]);
            p[i] = nullptr;
            bytes[i] = 0;
        }
    }
    ~ScratchBuffers() { release(); }
};

inline ScratchBuffers& scratch_buffers() {
    thread_local ScratchBuffers b;
    return b;
}

// At least n elements of T in `slot`, 64-byte aligned; nullptr if the allocation fails. Valid until
// the next call for the same slot on this thread.
template <class T> T* scratch(ScratchSlot slot, int64_t n) {
    ScratchBuffers& b = scratch_buffers();
    const int64_t need = ((n > 0 ? n : 1) * (int64_t)sizeof(T) + 63) / 64 * 64;
    if (b.bytes[slot] < need) {
        free(b.p[slot]);
        b.p[slot] = aligned_alloc(64, (size_t)need);
        b.bytes[slot] = b.p[slot] ? need : 0;
    }
    return static_cast<T*>(b.p[slot]);
}

}  // namespace ops
}  // namespace relucore
