// Softmax and the softmax cross-entropy over whole arrays: threads over rows (classes contiguous)
// or over blocks of positions (class stride > 1), the kernels in the table. The per-position losses
// are kept in double and summed in position order after the parallel part.
#include "relucore/loss.h"

#include <math.h>

#include <vector>

#include "parallel.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {
namespace {

constexpr i64 kGrain = 1 << 14;      // elements per thread below which one thread is faster
constexpr i64 kPositions = 1 << 8;   // positions per block of a strided (inner > 1) array

// f(rows [r0, r1)) for inner == 1, else f(o, i0, i1) for blocks of positions of outer slice o.
template <class Rows, class Cols> void for_blocks(const LossShape& sh, Rows&& rows, Cols&& cols) {
    const i64 work = sh.outer * sh.classes * sh.inner;
    const int nt = threads_for(work, kGrain);
    if (sh.inner == 1) {
        const i64 grain = kGrain / (sh.classes > 0 ? sh.classes : 1);
        parallel_range(sh.outer, grain > 0 ? grain : 1, 1, nt, [&](i64 r0, i64 r1, int) { rows(r0, r1); });
        return;
    }
    const i64 nb = (sh.inner + kPositions - 1) / kPositions;
    parallel_range(sh.outer * nb, 1, 1, nt, [&](i64 b0, i64 b1, int) {
        for (i64 b = b0; b < b1; ++b) {
            const i64 o = b / nb, i0 = (b % nb) * kPositions;
            cols(o, i0, i0 + kPositions < sh.inner ? i0 + kPositions : sh.inner);
        }
    });
}

}  // namespace

template <class T>
void softmax(const T* x, T* y, const LossShape& sh, bool log) {
    const SettingsScope settings;  // one kernel table and thread count for the whole call
    const LossKernels<T>& k = kernels<T>().loss;
    const i64 slice = sh.classes * sh.inner;
    for_blocks(sh, [&](i64 r0, i64 r1) { k.softmax_rows(x + r0 * sh.classes, y + r0 * sh.classes, r1 - r0, sh.classes, log); },
               [&](i64 o, i64 i0, i64 i1) { k.softmax_cols(x + o * slice, y + o * slice, sh.classes, sh.inner, i0, i1, log); });
}

template <class T>
void softmax_backward(const T* dy, const T* y, T* dx, const LossShape& sh, bool log) {
    const SettingsScope settings;
    const LossKernels<T>& k = kernels<T>().loss;
    const i64 L = sh.classes, slice = L * sh.inner;
    for_blocks(sh, [&](i64 r0, i64 r1) { k.softmax_backward_rows(dy + r0 * L, y + r0 * L, dx + r0 * L, r1 - r0, L, log); },
               [&](i64 o, i64 i0, i64 i1) {
                   k.softmax_backward_cols(dy + o * slice, y + o * slice, dx + o * slice, L, sh.inner, i0, i1, log);
               });
}

template <class T>
i64 cross_entropy(const T* x, const i64* index, const T* prob, T* g, const LossShape& sh, Reduction reduction,
                  double smoothing, i64 ignore, T* losses, double* total) {
    const SettingsScope settings;
    const i64 positions = sh.outer * sh.inner, L = sh.classes;
    i64 count = positions;
    if (index) {
        count = 0;
        for (i64 p = 0; p < positions; ++p) {
            const i64 t = index[p];
            if (t == ignore) continue;
            if (t < 0 || t >= L) return p;
            ++count;
        }
    }
    CeParams<T> q;
    q.keep = (T)(1.0 - smoothing);
    q.spread = (T)(smoothing / (double)L);
    q.scale = (T)(reduction != kMean ? 1.0 : count > 0 ? 1.0 / (double)count : 0.0);
    q.ignore = ignore;
    std::vector<double> loss((size_t)positions);
    double* lp = loss.data();
    const LossKernels<T>& k = kernels<T>().loss;
    const i64 slice = L * sh.inner;
    if (index)
        for_blocks(sh, [&](i64 r0, i64 r1) { k.ce_index_rows(x + r0 * L, index + r0, g + r0 * L, lp + r0, r1 - r0, L, q); },
                   [&](i64 o, i64 i0, i64 i1) {
                       const i64 at = o * sh.inner;
                       k.ce_index_cols(x + o * slice, index + at, g + o * slice, lp + at, L, sh.inner, i0, i1, q);
                   });
    else
        for_blocks(sh, [&](i64 r0, i64 r1) { k.ce_prob_rows(x + r0 * L, prob + r0 * L, g + r0 * L, lp + r0, r1 - r0, L, q); },
                   [&](i64 o, i64 i0, i64 i1) {
                       const i64 at = o * sh.inner;
                       k.ce_prob_cols(x + o * slice, prob + o * slice, g + o * slice, lp + at, L, sh.inner, i0, i1, q);
                   });
    if (reduction == kNone) {
        for (i64 p = 0; p < positions; ++p) losses[p] = (T)lp[p];
        return -1;
    }
    double s = 0;
    for (i64 p = 0; p < positions; ++p) s += lp[p];
    *total = reduction == kSum ? s : count > 0 ? s / (double)count : NAN;
    return -1;
}

#define RC_LOSS(T)                                                                                           \
    template void softmax<T>(const T*, T*, const LossShape&, bool);                                        \
    template void softmax_backward<T>(const T*, const T*, T*, const LossShape&, bool);                     \
    template i64 cross_entropy<T>(const T*, const i64*, const T*, T*, const LossShape&, Reduction, double, \
                                  i64, T*, double*);
RC_LOSS(float)
RC_LOSS(double)
#undef RC_LOSS

}  // namespace ops
}  // namespace relucore
