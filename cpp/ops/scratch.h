// Reusable scratch memory for cpp/ops (column buffers, dweight partials), one set per calling
// thread, kept between calls: a fresh allocation per call costs page faults and zeroing, measured
// at ~10% of a ResNet layer's backward (docs/performance.md). Contents are uninitialized.
#pragma once
#include <stdint.h>
#include <stdlib.h>

namespace relucore {
namespace ops {

enum ScratchSlot { kColumns = 0, kPartials = 1, kSlots = 2 };

// At least n elements of T in `slot`, 64-byte aligned; nullptr if the allocation fails. Valid until
// the next call for the same slot on this thread.
template <class T> T* scratch(ScratchSlot slot, int64_t n) {
    struct Buf {
        void* p = nullptr;
        int64_t bytes = 0;
        ~Buf() { free(p); }
    };
    thread_local Buf bufs[kSlots];
    Buf& b = bufs[slot];
    const int64_t need = ((n > 0 ? n : 1) * (int64_t)sizeof(T) + 63) / 64 * 64;
    if (b.bytes < need) {
        free(b.p);
        b.p = aligned_alloc(64, (size_t)need);
        b.bytes = b.p ? need : 0;
    }
    return static_cast<T*>(b.p);
}

}  // namespace ops
}  // namespace relucore
