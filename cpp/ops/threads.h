// relucore's thread pool beyond the parallel loops (parallel.h): the process-wide thread count,
// per-worker chores and counters for the tests.
#pragma once
#include <stdint.h>

#include "parallel.h"

namespace relucore {
namespace ops {

// The largest thread count set_num_threads accepts: max(256, 4 x the CPUs this process may use).
int thread_limit();

// The default thread count: OMP_NUM_THREADS if it holds a positive integer, else the CPUs this
// process may use (sched_getaffinity), capped at thread_limit().
int default_threads();

// Runs fn once on every pool worker started so far (not on the calling thread) and returns when all
// have; waits for a call in progress on another thread to finish first.
void on_every_worker(void (*fn)());

// Counters of the pool since the last reset: jobs in which more than one thread ran pieces, and
// the most threads (caller included) that ran pieces of one job.
struct PoolStats {
    int64_t parallel_jobs;
    int most_threads;
    int workers;  // pool threads started in this process
    int64_t stragglers;  // jobs that took far longer than the caller's CPU time in them
};
PoolStats pool_stats();
void reset_pool_stats();

}  // namespace ops
}  // namespace relucore
