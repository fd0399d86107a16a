// Typed access to the per-thread scratch kept between calls (relucore/kernels.h, scratch.cpp).
#pragma once
#include <stdint.h>

#include "relucore/kernels.h"

namespace relucore {
namespace ops {

// At least n elements of T in `slot`; nullptr if the allocation fails.
template <class T> T* scratch(ScratchSlot slot, int64_t n) {
    return static_cast<T*>(scratch_bytes(slot, (n > 0 ? n : 1) * (int64_t)sizeof(T)));
}

}  // namespace ops
}  // namespace relucore
