// The batch norm passes' shared pieces (cpp/ops/norm.cpp, norm_pool.cpp): the per-channel constants
// of the forward and backward, and the runs layout's threading and fixed-order sums.
#pragma once
#include <math.h>

#include <vector>

#include "parallel.h"
#include "relucore/norm.h"

namespace relucore {
namespace ops {
namespace norm_detail {

constexpr i64 kGrain = 1 << 15;  // elements per thread below which one thread is faster

template <class T> struct Forward {
    const T *weight, *bias;
    T *running_mean, *running_var;
    bool training;
    double momentum, eps;
    T *save_mean, *save_invstd;
    i64 n;  // values per channel

    // Channel c's statistics (from its sums shifted by `shift` in training, else the running
    // buffers), the running-buffer update and saved values; returns the constants of
    // y = act((x - hi) * scale + b).
    void constants(i64 c, T shift, double s1, double s2, T& hi, T& scale, T& b) const {
        double mean = 0, var = 0;
        if (!training) {
            mean = (double)running_mean[c];
            var = (double)running_var[c];
        } else if (n > 0) {
            // shifted by one of the channel's own values: no cancellation when |mean| >> spread
            const double d = s1 / (double)n;
            var = s2 / (double)n - d * d;
            var = var > 0 ? var : 0;
            mean = (double)shift + d;
            if (running_mean && running_var) {
                running_mean[c] = (T)((1 - momentum) * (double)running_mean[c] + momentum * mean);
                running_var[c] = (T)((1 - momentum) * (double)running_var[c] +
                                     momentum * var * ((double)n / (double)(n > 1 ? n - 1 : 1)));
            }
        }
        const double invstd = 1.0 / sqrt(var + eps);
        const double sc = (weight ? (double)weight[c] : 1.0) * invstd;
        // mean = hi + lo: x - hi is exact near the mean, and lo moves into the bias
        hi = (T)mean;
        scale = (T)sc;
        b = (T)((bias ? (double)bias[c] : 0.0) - (mean - (double)hi) * sc);
        save_mean[c] = (T)mean;
        save_invstd[c] = (T)invstd;
    }
};

// dweight and the dx constants of one channel from its sums sg = sum g, sgu = sum g * u.
template <class T>
void grad_constants(double w, double invstd, double sg, double sgu, double n, NormFrom from, T& dweight, T& a,
                    T& c0, T& c2) {
    // from x, u = x - mean = xhat / invstd; from y, u = z - bias = xhat * w
    const double dw = from == kFromX ? sgu * invstd : sgu / w;
    const double ad = w * invstd;
    dweight = (T)dw;
    a = (T)ad;
    c0 = (T)(-ad * sg / n);
    c2 = (T)(-ad * dw / n * (from == kFromX ? invstd : 1.0 / w));
}

// The threads for_runs_in_order runs on.
inline int runs_threads(const BatchNormShape& sh) { return threads_for(sh.N * sh.C * sh.S, kGrain); }

// f(r, t) for every run r = n*C + c of S elements, in memory order, threads taking ranges of runs;
// t < runs_threads(sh) names the thread.
template <class F> void for_runs_in_order(const BatchNormShape& sh, F&& f) {
    const i64 runs = sh.N * sh.C, grain = kGrain / sh.S > 0 ? kGrain / sh.S : 1;
    parallel_range(runs, grain, 1, runs_threads(sh), [&](i64 r0, i64 r1, int t) {
        for (i64 r = r0; r < r1; ++r) f(r, t);
    });
}

// Per-run partial sums (double) added per channel over n in order: the same bits for any split.
inline void add_runs(const BatchNormShape& sh, const std::vector<double>& part, i64 c, double& total) {
    total = 0;
    for (i64 n = 0; n < sh.N; ++n) total += part[(size_t)(n * sh.C + c)];
}

}  // namespace norm_detail
}  // namespace ops
}  // namespace relucore
