// The batch norm passes' shared pieces (cpp/ops/norm.cpp, norm_pool.cpp): the per-channel constants
// of the forward and backward, and the runs layout's threading and fixed-order sums.
#pragma once
#include <math.h>

#include <algorithm>
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
            // below 0: rounding; NaN with a finite mean: the squares' sum overflowed (inf - inf), the
            // variance is inf; NaN otherwise (an inf or NaN in x) stays, as in the direct formula
            if (var < 0) var = 0;
            else if (var != var && std::isfinite(d)) var = __builtin_inf();
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

// f(r) for every run r = n*C + c of S elements, in memory order, threads taking ranges of runs.
template <class F> void for_runs_in_order(const BatchNormShape& sh, F&& f) {
    const i64 runs = sh.N * sh.C, grain = kGrain / sh.S > 0 ? kGrain / sh.S : 1;
    parallel_range(runs, grain, 1, threads_for(runs * sh.S, kGrain), [&](i64 r0, i64 r1, int) {
        for (i64 r = r0; r < r1; ++r) f(r);
    });
}

// Per-run partial sums (double) added per channel over n in order: the same bits for any split.
inline void add_runs(const BatchNormShape& sh, const std::vector<double>& part, i64 c, double& total) {
    total = 0;
    for (i64 n = 0; n < sh.N; ++n) total += part[(size_t)(n * sh.C + c)];
}

// Run r's sums about its channel's first value (image 0's: no cancellation) into p1[r], p2[r]: the
// training statistics' per-run parts in the runs layout, whoever computes them (conv2d's few-tap
// forward does, right after writing each image).
template <class T>
void run_moments(const NormKernels<T>& k, const T* x, const BatchNormShape& sh, i64 r, double* p1, double* p2) {
    const NormRuns one{1, sh.S, sh.S};
    k.moments(x + r * sh.S, one, x[(r % sh.C) * sh.S], p1 + r, p2 + r);
}

// The runs layout's statistics (per run, in training; from `sums`, 2 x N*C as run_moments writes
// them, if given) and each channel's constants of y = act((x - hi) * scale + b)
// (Forward::constants, which also updates the running buffers).
template <class T>
void runs_constants(const NormKernels<T>& k, const T* x, const BatchNormShape& sh, const Forward<T>& f,
                    std::vector<T>& hi, std::vector<T>& scale, std::vector<T>& b, const double* sums = nullptr) {
    const size_t C = (size_t)sh.C, runs = (size_t)(sh.N * sh.C);
    std::vector<double> p1(f.training ? runs : 0), p2(f.training ? runs : 0);
    if (f.training && sums) {
        std::copy(sums, sums + runs, p1.begin());
        std::copy(sums + runs, sums + 2 * runs, p2.begin());
    } else if (f.training) {
        for_runs_in_order(sh, [&](i64 r) { run_moments(k, x, sh, r, p1.data(), p2.data()); });
    }
    hi.resize(C), scale.resize(C), b.resize(C);
    for (size_t c = 0; c < C; ++c) {
        double s1 = 0, s2 = 0;
        if (f.training) {
            add_runs(sh, p1, (i64)c, s1);
            add_runs(sh, p2, (i64)c, s2);
        }
        f.constants((i64)c, sh.N > 0 ? x[c * (size_t)sh.S] : T(0), s1, s2, hi[c], scale[c], b[c]);
    }
}

// Each channel's terms of the backward's sums (the dx constants come from runs_grad_constants).
template <class T>
std::vector<NormCoef<T>> runs_coefs(const BatchNormShape& sh, const T* weight, const T* bias, const T* save_mean,
                                    const T* save_invstd, T param) {
    std::vector<NormCoef<T>> q((size_t)sh.C);
    for (size_t c = 0; c < q.size(); ++c) {
        q[c].mean = save_mean[c];
        q[c].scale = (T)((weight ? (double)weight[c] : 1.0) * (double)save_invstd[c]);
        q[c].bias = bias ? bias[c] : T(0);
        q[c].param = param;
    }
    return q;
}

// dweight, dbias and each channel's dx constants (q's a, c0, c2) from the per-run sums.
template <class T>
void runs_grad_constants(const BatchNormShape& sh, const std::vector<double>& pg, const std::vector<double>& pgu,
                         const T* weight, const T* save_invstd, NormFrom from, std::vector<NormCoef<T>>& q,
                         T* dweight, T* dbias) {
    const double n = (double)(sh.N * sh.S > 0 ? sh.N * sh.S : 1);
    for (size_t c = 0; c < q.size(); ++c) {
        double g, gu;
        add_runs(sh, pg, (i64)c, g);
        add_runs(sh, pgu, (i64)c, gu);
        grad_constants(weight ? (double)weight[c] : 1.0, (double)save_invstd[c], g, gu, n, from, dweight[c], q[c].a,
                       q[c].c0, q[c].c2);
        dbias[c] = (T)g;
    }
}

}  // namespace norm_detail
}  // namespace ops
}  // namespace relucore
