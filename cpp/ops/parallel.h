// Parallel loops for cpp/ops on relucore's own thread pool (threads.cpp): pieces claimed from an
// atomic counter by the calling thread and up to nt - 1 pool workers, so a descheduled thread
// delays only the piece it holds; a grain size keeps small arrays on the calling thread.
#pragma once
#include <stdint.h>

#include <type_traits>

namespace relucore {
namespace ops {

// The threads the current call may use: its settings snapshot's count (relucore/dispatch.h).
int max_threads();

// Threads worth using for `work` units when each thread should get at least `grain` of them.
inline int threads_for(int64_t work, int64_t grain) {
    int64_t t = work / (grain > 0 ? grain : 1);
    const int m = max_threads();
    return t < 1 ? 1 : (t > m ? m : (int)t);
}

// Runs fn(ctx, i, t) for every piece i in [0, pieces) on at most nt threads, the caller among them;
// t in [0, nt) names the executing thread (distinct threads of one call get distinct t). Nested or
// concurrent calls run on the calling thread alone (t = 0). Every thread of the call sees the
// caller's settings snapshot (relucore/dispatch.h). An exception thrown by fn is rethrown here
// after every thread has finished.
void run_pieces(int64_t pieces, int nt, void (*fn)(void* ctx, int64_t piece, int t), void* ctx);

// Pieces per thread of a parallel_range: more lets the others take over a descheduled thread's
// share, fewer costs less per piece (each GEMM block packs its operand again).
constexpr int64_t kPiecesPerThread = 2;

// f(begin, end, thread) on pieces of [0, n), each boundary a multiple of `align` and each piece at
// least `grain` long (unless n is shorter); a thread may run several pieces, one after another.
template <class F>
void parallel_range(int64_t n, int64_t grain, int64_t align, int nt_hint, F&& f) {
    const int nt = nt_hint > 0 ? nt_hint : threads_for(n, grain);
    if (n <= 0) return;
    const int64_t a = align > 0 ? align : 1;
    int64_t per = (n + nt * kPiecesPerThread - 1) / (nt * kPiecesPerThread);
    if (per < grain) per = grain;
    per = (per + a - 1) / a * a;
    if (nt <= 1 || per >= n) {
        f((int64_t)0, n, 0);
        return;
    }
    struct Ctx { F& f; int64_t n, per; } c{f, n, per};
    run_pieces((n + per - 1) / per, nt, [](void* p, int64_t i, int t) {
        Ctx& c = *static_cast<Ctx*>(p);
        const int64_t b = i * c.per, e = b + c.per < c.n ? b + c.per : c.n;
        c.f(b, e, t);
    }, &c);
}

// f(item) for item in [0, items), each item claimed by whichever thread is free.
template <class F>
void parallel_items(int64_t items, int nt, F&& f) {
    if (nt <= 1 || items <= 1) {
        for (int64_t i = 0; i < items; ++i) f(i);
        return;
    }
    using G = std::remove_reference_t<F>;
    run_pieces(items, nt, [](void* p, int64_t i, int) { (*static_cast<G*>(p))(i); }, &f);
}

// f(item) for item in [0, items), each thread taking runs of consecutive items (kPiecesPerThread
// runs a thread, each at least `grain` items): items handed out one at a time, as parallel_items
// does, interleave the threads, which made two threads slower than one on planes and images
// (docs/performance.md).
template <class F>
void parallel_runs(int64_t items, int nt, F&& f, int64_t grain = 1) {
    parallel_range(items, grain, 1, nt, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) f(i);
    });
}

}  // namespace ops
}  // namespace relucore
