// relucore's thread pool beyond the parallel loops (parallel.h): the default count and per-worker
// chores; the part the bindings use is public (relucore/threads.h).
#pragma once
#include <stdint.h>

#include "parallel.h"
#include "relucore/threads.h"

namespace relucore {
namespace ops {

// The default thread count: OMP_NUM_THREADS if it holds a positive integer, else the CPUs this
// process may use (sched_getaffinity), capped at thread_limit().
int default_threads();

// Runs fn once on every pool worker started so far (not on the calling thread) and returns when all
// have; waits for a call in progress on another thread to finish first.
void on_every_worker(void (*fn)() noexcept);

}  // namespace ops
}  // namespace relucore
