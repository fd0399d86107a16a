// OpenMP helpers for cpp/ops: contiguous static partitions with a grain size, so small arrays run
// on the calling thread and never pay for a parallel region.
#pragma once
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace relucore {
namespace ops {

inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Threads worth using for `work` units when each thread should get at least `grain` of them.
inline int threads_for(int64_t work, int64_t grain) {
    int64_t t = work / (grain > 0 ? grain : 1);
    const int m = max_threads();
    return t < 1 ? 1 : (t > m ? m : (int)t);
}

// f(begin, end, thread) on nt pieces of [0, n), each boundary a multiple of `align`.
template <class F>
void parallel_range(int64_t n, int64_t grain, int64_t align, int nt_hint, F&& f) {
    const int nt = nt_hint > 0 ? nt_hint : threads_for(n, grain);
    if (nt <= 1) {
        if (n > 0) f((int64_t)0, n, 0);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t per = ((n + T - 1) / T + align - 1) / align * align;
        const int64_t b = (int64_t)t * per < n ? (int64_t)t * per : n;
        const int64_t e = b + per < n ? b + per : n;
        if (b < e) f(b, e, t);
    }
#else
    f((int64_t)0, n, 0);
#endif
}

// f(item) for item in [0, items), statically scheduled.
template <class F>
void parallel_items(int64_t items, int nt, F&& f) {
    if (nt <= 1) {
        for (int64_t i = 0; i < items; ++i) f(i);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < items; ++i) f(i);
#else
    for (int64_t i = 0; i < items; ++i) f(i);
#endif
}

}  // namespace ops
}  // namespace relucore
