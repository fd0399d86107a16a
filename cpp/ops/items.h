// Work split shared by the layer ops (conv.cpp, pool.cpp, linear.cpp, winograd.cpp): grain sizes,
// and whole work items (images, image groups) per thread with a scratch buffer each.
#pragma once
#include <string.h>

#include <new>

#include "blas.h"
#include "parallel.h"
#include "relucore/kernels.h"
#include "scratch.h"

namespace relucore {
namespace ops {

constexpr i64 kGrainCopy = 1 << 15;   // elements per thread for im2col/col2im/pooling/transforms
constexpr i64 kGrainFlops = 1 << 21;  // multiply-adds per thread for a GEMM or a whole layer
constexpr i64 kDwChunks = 2;  // fixed chunks of images (Winograd: of tile blocks) for dweight: the same
                              // sums for any thread count; 2, not 4: each holds a partial dweight
                              // (2.4 MB on a 256-channel layer; 16/9 of that in Winograd's form)

template <class T> void zero(T* p, i64 n) { memset(p, 0, (size_t)n * sizeof(T)); }

// At most nt threads, and no more than `work` is worth at `grain` per thread.
inline int cap(int nt, i64 work, i64 grain) {
    const int t = threads_for(work, grain);
    return t < nt ? t : nt;
}

// Runs f(item, buffer, inner_threads) for items [0, items): whole items per thread when there are
// enough, else one after another with the inner work (GEMM, im2col, transforms) split across
// threads. `work` (multiply-adds or elements of the whole call) keeps small calls on the calling
// thread. Each running item gets `buffer` elements of kept scratch (relucore/kernels.h).
template <class T, class F> void for_items(i64 items, i64 buffer, i64 work, F&& f) {
    const int nt = threads_for(work, kGrainFlops);
    blas_threads(1);
    const bool per_thread = items >= nt && nt > 1;
    T* buf = buffer > 0 ? scratch<T>(kColumns, (per_thread ? nt : 1) * buffer) : nullptr;
    if (buffer > 0 && !buf) throw std::bad_alloc();
    if (per_thread) {
        parallel_range(items, 1, 1, nt, [&](i64 b, i64 e, int t) {
            for (i64 i = b; i < e; ++i) f(i, buf + t * buffer, 1);
        });
    } else {
        for (i64 i = 0; i < items; ++i) f(i, buf, nt);
    }
}

}  // namespace ops
}  // namespace relucore
