// relucore's thread pool as the bindings see it: the limit on the thread count and the pool's
// counters (the count itself: relucore/ops.h).
#pragma once
#include <stdint.h>

namespace relucore {
namespace ops {

// The largest thread count set_num_threads accepts: max(256, 4 x the CPUs this process may use).
int thread_limit();

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
