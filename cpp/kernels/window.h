// Window geometry shared by the im2col, pooling and depthwise kernels.
#pragma once
#include "isa.h"

namespace relucore {
namespace RC_NS {

// The output columns [lo, hi) whose input column ow*s - p + off lies inside [0, W).
inline void valid_range(i64 OW, i64 s, i64 p, i64 off, i64 W, i64& lo, i64& hi) {
    const i64 start = off - p;  // input column of ow = 0
    lo = start >= 0 ? 0 : (-start + s - 1) / s;
    const i64 last = W - 1 - start;  // ow*s <= last
    hi = last < 0 ? 0 : last / s + 1;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
}

}  // namespace RC_NS
}  // namespace relucore
