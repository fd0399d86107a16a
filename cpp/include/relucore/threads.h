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
    int64_t stragglers;  // jobs in which the caller waited far longer for a worker than a piece takes
    int64_t fallbacks;   // windows of fewer threads that late jobs opened
    int64_t fewer_jobs;  // jobs that ran on fewer threads in such a window
};
PoolStats pool_stats();
// Zeroes the counters, the straggler detector's history and any window of fewer threads.
void reset_pool_stats();

// Test hooks. Pool workers sleep `ns` before each piece they run (0: off), as if descheduled.
void set_late_worker(int64_t ns);
// Feeds n job records (end, wait, caller CPU, caller pieces; ns) to a fresh straggler detector and
// stores in windows[i] the length of the window of fewer threads record i opened (0: none).
void replay_detector(const int64_t* jobs, int64_t n, int64_t* windows);

}  // namespace ops
}  // namespace relucore
