// relucore's thread pool. Workers are started on first need and sleep on a futex between jobs
// after a short spin. A job is a count of pieces claimed from an atomic counter, so whoever is
// running takes the next piece and the caller waits only for pieces already taken; a worker that
// wakes after the last piece was claimed finds nothing to join. After fork the child forgets the
// parent's pool (its threads do not exist there; its flags may be mid-job) and starts a new one
// on its first parallel call.
#include "threads.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include <atomic>
#include <exception>
#include <new>

#include "relucore/dispatch.h"
#include "relucore/ops.h"

namespace relucore {
namespace ops {
namespace {

using PieceFn = void (*)(void*, int64_t, int);

// Spins before sleeping. Waking a sleeping thread can take ~100 us (a halted vCPU), longer than many
// whole calls: shorter spins let caller and worker fall into alternating sleeps, each call then
// paying a wake-up and the worker arriving after the caller took every piece (docs/performance.md).
constexpr int64_t kWorkerSpinNs = 300000;   // an idle worker's: back-to-back calls find it awake
constexpr int64_t kCallerSpinNs = 1000000;  // a caller's, for pieces still running elsewhere
// Spins past this many turns (~50 us) yield the core at each turn: threads that compete for it
// (PyTorch's libgomp spinning after its calls) get it while ours has nothing to do.
constexpr int kYieldAfter = 2000;
constexpr int kMaxLimit = 4096;           // thread_limit() never exceeds it (16 bits in the gate word)
// A worker descheduled while it holds a piece makes the caller wait for it at the end of the job:
// the machine is busier than our thread count assumes, so jobs starting in the next while run on
// half the threads (a lost scheduler slice costs more than the thread saves). The work is still cut
// into the same pieces: results do not change. The test is the caller's wait after the last piece
// was claimed against its own time per piece: a worker running normally finishes within one piece
// time of the caller, whatever delays (page faults, interrupts) slow both alike.
constexpr int64_t kLateNs = 100000;         // a wait beyond 2 pieces' time + this is late
constexpr int kStrikes = 2;  // late jobs among the last 8 before that: one alone is noise
constexpr uint32_t kHistoryMask = 0xff;
constexpr int64_t kFewerMinNs = 2000000;    // the first window of fewer threads
constexpr int64_t kFewerMaxNs = 50000000;   // windows double while late jobs keep coming, up to this
constexpr int64_t kEvidenceNs = 100000000;  // a fire this soon after the last window ends doubles it

int64_t clock_ns(clockid_t clock) {
    timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t now_ns() { return clock_ns(CLOCK_MONOTONIC); }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// True once done() holds, false after about ns nanoseconds of spinning without it.
template <class Done> bool spin_until(Done done, int64_t ns) {
    const int64_t start = now_ns();
    for (int i = 1;; ++i) {
        if (done()) return true;
        if (i > kYieldAfter) sched_yield();
        else cpu_relax();
        if ((i & 63) == 0 && now_ns() - start > ns) return false;
    }
}

// Sleeps while w == value (returns early on any change or signal); wakes up to n sleepers of w.
void futex_wait(std::atomic<uint32_t>& w, uint32_t value) {
#ifdef __linux__
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAIT_PRIVATE, value, nullptr, nullptr, 0);
#else
    if (w.load() == value) sched_yield();
#endif
}

void futex_wake(std::atomic<uint32_t>& w, int n) {
#ifdef __linux__
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
#else
    (void)w;
    (void)n;
#endif
}

// Sleeps (after a spin) until w == want; `sleeping` tells the threads that change w to wake us.
void wait_for(std::atomic<uint32_t>& w, uint32_t want, std::atomic<uint32_t>& sleeping) {
    if (spin_until([&] { return w.load(std::memory_order_acquire) == want; }, kCallerSpinNs)) return;
    sleeping.store(1);
    for (uint32_t cur; (cur = w.load()) != want;) futex_wait(w, cur);
    sleeping.store(0);
}

struct Job {
    PieceFn fn = nullptr;
    void* ctx = nullptr;
    void (*each)() noexcept = nullptr;  // on_every_worker: run once by every thread that joins
    int64_t pieces = 0;
    Settings settings{};
    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};
    std::atomic<int> working{0};  // threads that ran at least one piece
    std::exception_ptr error;
};

// The gate word: generation (bits 32-63) | threads that may join (16-31) | threads joined (0-15).
// Workers join with a compare-and-swap on it, so none can join a job once the caller closed it.
constexpr uint64_t gate_word(uint32_t gen, int limit, int joined) {
    return (uint64_t)gen << 32 | (uint64_t)limit << 16 | (uint64_t)joined;
}

struct Pool {
    std::atomic<uint64_t> gate{0};
    std::atomic<uint32_t> epoch{0};   // the generation of the latest job; idle workers sleep on it
    std::atomic<uint32_t> left{0};    // workers that joined the current job and are done with it
    std::atomic<uint32_t> caller_sleeping{0};
    std::atomic<int> sleepers{0};     // workers asleep on epoch
    std::atomic<bool> busy{false};    // a caller owns the pool (the others run alone)
    std::atomic<int> workers{0};      // changed only by the owner
    Job job;
};

std::atomic<Pool*> g_pool{nullptr};
std::atomic<int> g_threads{0};  // 0: not yet read from the environment
std::atomic<int64_t> g_fewer_until{0};  // now_ns() before which jobs run on fewer threads
std::atomic<int64_t> g_parallel_jobs{0};
std::atomic<int64_t> g_stragglers{0};
std::atomic<int64_t> g_fallbacks{0};
std::atomic<int64_t> g_fewer_jobs{0};
std::atomic<int> g_most_threads{0};
std::atomic<int64_t> g_late_worker_ns{0};  // test hook: workers sleep this long before each piece
Detector g_detector;  // the pool owner's (finish runs with the pool held)
thread_local bool t_in_job = false;

void after_fork_in_child() {
    // The parent's pool (and its workers' state) is left behind untouched: its threads are gone
    // and its flags may say "busy" forever. The child's first parallel call starts a new one.
    g_pool.store(nullptr, std::memory_order_relaxed);
}

}  // namespace

int64_t Detector::record(const JobTiming& j) {
    if (!is_late(j)) {
        history = (history << 1) & kHistoryMask;
        return 0;
    }
    history = (history << 1 | 1) & kHistoryMask;
    if (__builtin_popcount(history) < kStrikes) return 0;
    history = 0;
    const bool again = window_ns > 0 && j.end_ns - until_ns < kEvidenceNs;
    window_ns = !again ? kFewerMinNs : 2 * window_ns < kFewerMaxNs ? 2 * window_ns : kFewerMaxNs;
    until_ns = j.end_ns + window_ns;
    return window_ns;
}

bool Detector::is_late(const JobTiming& j) {
    if (j.caller_pieces <= 0) return false;  // the caller lost its core for the whole job: not ours to fix
    return j.wait_ns > 2 * (j.caller_cpu_ns / j.caller_pieces) + kLateNs;
}

namespace {

const int g_atfork = pthread_atfork(nullptr, nullptr, &after_fork_in_child);

// Null if it cannot be allocated: the call then runs on the calling thread alone, so a parallel loop
// never throws on its own account (the NumPy ufunc loops must not throw into NumPy's C frames).
Pool* pool() {
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (p) return p;
    Pool* fresh = new (std::nothrow) Pool;
    if (!fresh) return nullptr;
    if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return fresh;
    delete fresh;  // another thread installed one first
    return p;
}

// Runs pieces until none is left; returns how many it ran.
int64_t run_claims(Job& j, int t) {
    for (int64_t ran = 0;; ++ran) {
        const int64_t i = j.next.fetch_add(1, std::memory_order_relaxed);
        if (i >= j.pieces) return ran;
        if (ran == 0) j.working.fetch_add(1, std::memory_order_relaxed);
        if (j.failed.load(std::memory_order_relaxed)) continue;  // drain: the call is failing anyway
        if (t != 0) {
            if (const int64_t ns = g_late_worker_ns.load(std::memory_order_relaxed)) {
                const timespec ts{(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
                nanosleep(&ts, nullptr);
            }
        }
        try {
            j.fn(j.ctx, i, t);
        } catch (...) {
            bool first = false;
            if (j.failed.compare_exchange_strong(first, true)) j.error = std::current_exception();
        }
    }
}

// Joins the job in the gate if it is open and not the one joined last; runs its share.
void join(Pool* p, uint32_t& last_gen) {
    uint64_t w = p->gate.load(std::memory_order_acquire);
    for (;;) {
        const uint32_t gen = (uint32_t)(w >> 32);
        if (gen == last_gen || (w & 0xffff) >= ((w >> 16) & 0xffff)) return;
        if (p->gate.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
    }
    last_gen = (uint32_t)(w >> 32);
    Job& j = p->job;
    {
        const SettingsScope settings(j.settings);
        t_in_job = true;
        if (j.each) j.each();
        else run_claims(j, (int)(w & 0xffff));
        t_in_job = false;
    }
    p->left.fetch_add(1);  // the job's memory may be reused from here on
    if (p->caller_sleeping.load()) futex_wake(p->left, 1);
}

void* worker_main(void* arg) {
    Pool* p = static_cast<Pool*>(arg);
    uint32_t last_gen = 0;
    for (;;) {
        const uint32_t e = p->epoch.load(std::memory_order_acquire);
        join(p, last_gen);
        if (spin_until([&] { return p->epoch.load(std::memory_order_relaxed) != e; }, kWorkerSpinNs)) continue;
        p->sleepers.fetch_add(1);
        while (p->epoch.load() == e) futex_wait(p->epoch, e);
        p->sleepers.fetch_sub(1);
    }
    return nullptr;
}

// Starts workers until there are `want` (or thread creation fails); the pool's owner only.
void grow(Pool* p, int want) {
    int have = p->workers.load(std::memory_order_relaxed);
    if (have >= want) return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // workers inherit it: signals go to the other threads
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (; have < want; ++have) {
        pthread_t id;
        if (pthread_create(&id, &attr, &worker_main, p) != 0) break;
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    p->workers.store(have, std::memory_order_relaxed);
}

// Opens a job for `limit` threads (the caller is thread 0) and wakes sleeping workers.
void publish(Pool* p, int limit, int wake) {
    Job& j = p->job;
    j.settings = current_settings();
    j.next.store(0, std::memory_order_relaxed);
    j.failed.store(false, std::memory_order_relaxed);
    j.working.store(0, std::memory_order_relaxed);
    j.error = nullptr;
    p->left.store(0, std::memory_order_relaxed);
    uint32_t gen = p->epoch.load(std::memory_order_relaxed) + 1;
    if (gen == 0) gen = 1;  // 0 is a new worker's "no job seen yet"
    p->gate.store(gate_word(gen, limit, 1), std::memory_order_release);
    p->epoch.store(gen);
    if (p->sleepers.load() > 0) futex_wake(p->epoch, wake);
}

// Closes the job to late joiners, waits until every worker that joined is done with it, judges
// from `timing` (its end and wait filled in here) whether a worker was late, releases the pool and
// rethrows the first exception a piece threw. caller_done_ns: when the caller found no piece left
// (INT64_MAX: a job that waits on purpose, not judged).
void finish(Pool* p, JobTiming timing, int64_t caller_done_ns) {
    uint64_t w = p->gate.load(std::memory_order_relaxed);
    while (!p->gate.compare_exchange_weak(w, w & ~(uint64_t)0xffff0000, std::memory_order_acq_rel)) {
    }
    const int joined = (int)(w & 0xffff);
    wait_for(p->left, (uint32_t)(joined - 1), p->caller_sleeping);
    const int64_t end = now_ns();
    const int working = p->job.working.load(std::memory_order_relaxed);
    if (joined > 1 && caller_done_ns < INT64_MAX) {
        timing.end_ns = end;
        timing.wait_ns = end - caller_done_ns;
        if (Detector::is_late(timing)) g_stragglers.fetch_add(1, std::memory_order_relaxed);
        if (const int64_t window = g_detector.record(timing)) {
            g_fewer_until.store(end + window, std::memory_order_relaxed);
            g_fallbacks.fetch_add(1, std::memory_order_relaxed);
        }
    }
    if (working > 1) {
        g_parallel_jobs.fetch_add(1, std::memory_order_relaxed);
        int most = g_most_threads.load(std::memory_order_relaxed);
        while (working > most && !g_most_threads.compare_exchange_weak(most, working)) {
        }
    }
    std::exception_ptr error = p->job.error;
    p->job.error = nullptr;
    p->busy.store(false, std::memory_order_release);
    if (error) std::rethrow_exception(error);
}

bool acquire(Pool* p) {
    bool expected = false;
    return p->busy.compare_exchange_strong(expected, true, std::memory_order_acquire);
}

int online_cpus() {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

}  // namespace

int thread_limit() {
    const int four = 4 * online_cpus();
    const int limit = four > 256 ? four : 256;
    return limit < kMaxLimit ? limit : kMaxLimit;
}

int default_threads() {
    int n = 0;
    if (const char* env = getenv("OMP_NUM_THREADS")) {
        char* end = nullptr;
        const long v = strtol(env, &end, 10);  // "4" or the first level of "4,2"
        if (end != env && v > 0) n = v < thread_limit() ? (int)v : thread_limit();
    }
#ifdef __linux__
    cpu_set_t set;
    if (n == 0 && sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
    if (n == 0) n = online_cpus();
    return n < thread_limit() ? n : thread_limit();
}

}  // namespace ops

int threads_now() { return ops::get_num_threads(); }

namespace ops {

int max_threads() { return current_settings().threads; }

int get_num_threads() {
    int n = g_threads.load(std::memory_order_relaxed);
    if (n > 0) return n;
    int unset = 0;
    g_threads.compare_exchange_strong(unset, default_threads());
    return g_threads.load(std::memory_order_relaxed);
}

void set_num_threads(int n) {
    const int limit = thread_limit();
    g_threads.store(n < 1 ? 1 : n > limit ? limit : n, std::memory_order_relaxed);
}

void run_pieces(int64_t pieces, int nt, PieceFn fn, void* ctx) {
    if (nt > pieces) nt = (int)pieces;
    if (nt > 1 && now_ns() < g_fewer_until.load(std::memory_order_relaxed)) {
        nt /= 2;
        g_fewer_jobs.fetch_add(1, std::memory_order_relaxed);
    }
    Pool* p = nt > 1 && !t_in_job ? pool() : nullptr;
    if (p && acquire(p)) {
        struct Release {  // the pool goes back if anything before publish throws (finish releases it after)
            Pool* p;
            bool armed;
            ~Release() {
                if (armed) p->busy.store(false, std::memory_order_release);
            }
        } release{p, true};
        const SettingsScope settings;  // the caller's snapshot, handed to the workers by publish
        grow(p, nt - 1);
        const int workers = p->workers.load(std::memory_order_relaxed);
        if (nt > workers + 1) nt = workers + 1;
        if (nt > 1) {
            Job& j = p->job;
            j.fn = fn;
            j.ctx = ctx;
            j.each = nullptr;
            j.pieces = pieces;
            const int64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            release.armed = false;
            publish(p, nt, nt - 1);
            t_in_job = true;
            JobTiming timing{};
            timing.caller_pieces = run_claims(j, 0);
            t_in_job = false;
            const int64_t done = now_ns();
            timing.caller_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu;
            finish(p, timing, done);
            return;
        }
    }
    for (int64_t i = 0; i < pieces; ++i) fn(ctx, i, 0);  // alone: nested, concurrent or one thread
}

void on_every_worker(void (*fn)() noexcept) {
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (!p || t_in_job) return;
    while (!acquire(p)) sched_yield();  // another thread's call: rare, and it ends
    const int n = p->workers.load(std::memory_order_relaxed);
    if (n == 0) {
        p->busy.store(false, std::memory_order_release);
        return;
    }
    Job& j = p->job;
    j.each = fn;
    j.pieces = 0;
    publish(p, n + 1, n);
    // Every worker must take part: wait (yielding) until all have joined, then close as usual.
    while ((int)(p->gate.load(std::memory_order_acquire) & 0xffff) < n + 1) sched_yield();
    finish(p, JobTiming{}, INT64_MAX);  // waits on purpose: not a straggler
}

PoolStats pool_stats() {
    Pool* p = g_pool.load(std::memory_order_acquire);
    return PoolStats{g_parallel_jobs.load(), g_most_threads.load(), p ? p->workers.load() : 0, g_stragglers.load(),
                     g_fallbacks.load(), g_fewer_jobs.load()};
}

void reset_pool_stats() {
    // also forgets the detector's history and any open window, so one test's late jobs do not
    // change the next one's threads (call it with no job running)
    g_fewer_until.store(0);
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (p && acquire(p)) {
        g_detector = Detector{};
        p->busy.store(false, std::memory_order_release);
    }
    g_parallel_jobs.store(0);
    g_most_threads.store(0);
    g_stragglers.store(0);
    g_fallbacks.store(0);
    g_fewer_jobs.store(0);
}

void replay_detector(const int64_t* jobs, int64_t n, int64_t* windows) {
    Detector d;
    for (int64_t i = 0; i < n; ++i, jobs += 4) windows[i] = d.record(JobTiming{jobs[0], jobs[1], jobs[2], jobs[3]});
}

void set_late_worker(int64_t ns) { g_late_worker_ns.store(ns > 0 ? ns : 0, std::memory_order_relaxed); }

}  // namespace ops
}  // namespace relucore

// Plain C entry points for threadpoolctl's relucore controller (python/relucore/runtime.py), found
// in the extension module with ctypes.
extern "C" __attribute__((visibility("default"))) int relucore_get_num_threads() {
    return relucore::ops::get_num_threads();
}

// Sets the process-wide thread count (clamped to [1, the limit]); returns the count now in effect.
extern "C" __attribute__((visibility("default"))) int relucore_set_num_threads(int n) {
    relucore::ops::set_num_threads(n);
    return relucore::ops::get_num_threads();
}
