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

// What the calling thread saw of one job that another thread joined.
struct JobTiming {
    int64_t end_ns;         // when the last worker left (CLOCK_MONOTONIC)
    int64_t wait_ns;        // from the caller's finding no piece left until then
    int64_t caller_cpu_ns;  // the caller's CPU time in its pieces
    int64_t caller_pieces;  // pieces the caller ran
};

// Tells from finished jobs whether threads of ours are being descheduled. Two late jobs among the
// last 8 open a window in which jobs run on half the threads: 2 ms at first, doubling (up to 50 ms) while
// fires keep coming within 100 ms of the last window's end, back to 2 ms otherwise.
struct Detector {
    uint32_t history = 0;   // the last 8 jobs' verdicts, 1 = late
    int64_t window_ns = 0;  // the last window's length (0: none yet)
    int64_t until_ns = 0;   // its end
    // Records a job; returns the length of the window it opens (0: none).
    int64_t record(const JobTiming& j);
    // The caller waited more than twice its own time per piece (plus 100 us) for the last worker.
    static bool is_late(const JobTiming& j);
};

}  // namespace ops
}  // namespace relucore
