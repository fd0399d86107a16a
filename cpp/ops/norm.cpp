// Batch norm over whole arrays: per-channel constants in double, the passes in the kernel table.
// Three layouts of the work, each summing every channel in one fixed order whatever the thread count:
// - (N, C, S) with S >= kColumnsBelow: the N*C runs of S elements in memory order, threads taking
//   ranges of runs; sums per run (double), added per channel over n in order. Sweeping one channel's
//   runs (C*S apart) at a time instead, to reuse it from cache in the second pass, measured 1.4-2x
//   slower: every run restarts the hardware prefetcher and touches new pages. Blocks of channels
//   sized for L2 (rows of cb*S contiguous elements) measured 1.1-2x slower too.
// - the same with N >= 4 and the tensor within kChannelBytes (in L2 whole): one kernel call per
//   channel over its N runs (training forward and backward).
// - smaller S (1 for (N, C)): x is an (N, C*S) matrix whose columns the kernels take across the
//   vector lanes, row by row, with each channel's constants repeated over its S columns; the column
//   sums are then combined per channel. Runs of a few elements would cost a call and a scalar tail
//   each.
#include "relucore/norm.h"

#include <math.h>

#include <utility>
#include <vector>

#include "norm_common.h"
#include "parallel.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {
namespace {

using namespace norm_detail;

constexpr i64 kColumnsBelow = 64;  // spatial sizes below this take the column layout

// f(c0, c1) on blocks of whole vectors of the C*S columns.
template <class F> void for_column_blocks(const BatchNormShape& sh, int lanes, F&& f) {
    const i64 cols = sh.C * sh.S;
    parallel_range(cols, 1, lanes, threads_for(sh.N * cols, kGrain), [&](i64 c0, i64 c1, int) { f(c0, c1); });
}

// v[c] repeated over channel c's S columns (v itself, moved, when S == 1).
template <class T> std::vector<T> per_column(std::vector<T>&& v, i64 S) {
    if (S == 1) return std::move(v);
    std::vector<T> out(v.size() * (size_t)S);
    for (size_t c = 0; c < v.size(); ++c)
        for (i64 j = 0; j < S; ++j) out[c * (size_t)S + (size_t)j] = v[c];
    return out;
}

// Channel c's sums shifted by x[c*S] (row 0, its first column), from its S columns' sums, each
// shifted by its own row-0 value: per-column means and squared deviations combined in double.
template <class T>
void channel_sums(const T* x, i64 c, i64 S, double n, const double* s1, const double* s2, double& c1, double& c2) {
    if (S == 1) {
        c1 = s1[c];
        c2 = s2[c];
        return;
    }
    const i64 j0 = c * S;
    double mean = 0, m2 = 0;
    for (i64 j = 0; j < S; ++j) mean += (double)x[j0 + j] + s1[j0 + j] / n;
    mean /= (double)S;
    for (i64 j = 0; j < S; ++j) {
        const double mj = (double)x[j0 + j] + s1[j0 + j] / n, d = mj - mean;
        m2 += s2[j0 + j] - s1[j0 + j] * s1[j0 + j] / n + n * d * d;
    }
    const double total = n * (double)S;
    c1 = total * (mean - (double)x[j0]);
    c2 = m2 + c1 * c1 / total;
}

template <class T>
void forward_cols(const NormKernels<T>& k, const T* x, T* y, const BatchNormShape& sh, const Forward<T>& f,
                  NormAct act, T param, i64* counts) {
    const size_t C = (size_t)sh.C, cols = C * (size_t)sh.S;
    std::vector<double> s1(cols, 0.0), s2(cols, 0.0);
    std::vector<T> hi(C), scale(C), b(C);
    if (f.training && sh.N > 0)
        for_column_blocks(sh, k.lanes, [&](i64 c0, i64 c1) {
            k.col_moments(x, sh.N, (i64)cols, c0, c1, s1.data(), s2.data());
        });
    for (size_t c = 0; c < C; ++c) {
        double c1 = 0, c2 = 0;
        if (f.training && sh.N > 0) channel_sums(x, (i64)c, sh.S, (double)sh.N, s1.data(), s2.data(), c1, c2);
        f.constants((i64)c, sh.N > 0 ? x[c * (size_t)sh.S] : T(0), c1, c2, hi[c], scale[c], b[c]);
    }
    const std::vector<T> hc = per_column(std::move(hi), sh.S), sc = per_column(std::move(scale), sh.S),
                         bc = per_column(std::move(b), sh.S);
    const NormCols<T> q{hc.data(), sc.data(), bc.data(), nullptr, nullptr, nullptr, param};
    std::vector<i64> col_counts(counts && sh.S > 1 ? cols : 0);
    i64* pc = sh.S > 1 ? col_counts.data() : counts;
    for_column_blocks(sh, k.lanes, [&](i64 c0, i64 c1) {
        k.col_normalize[act](x, y, sh.N, (i64)cols, c0, c1, q, counts ? pc : nullptr);
    });
    if (counts && sh.S > 1)
        for (size_t c = 0; c < C; ++c) {
            counts[c] = 0;
            for (i64 j = 0; j < sh.S; ++j) counts[c] += col_counts[c * (size_t)sh.S + (size_t)j];
        }
}

template <class T>
void backward_cols(const NormKernels<T>& k, const T* dy, const T* s, NormFrom from, T* dx, const BatchNormShape& sh,
                   const T* weight, const T* bias, const T* save_mean, const T* save_invstd, NormAct act, T param,
                   bool training, T* dweight, T* dbias) {
    const size_t C = (size_t)sh.C, cols = C * (size_t)sh.S;
    std::vector<double> sg(cols, 0.0), sgu(cols, 0.0);
    std::vector<T> mean(save_mean, save_mean + C), scale(C), b(C), a(C), c0(C), c2(C);
    for (size_t c = 0; c < C; ++c) {
        scale[c] = (T)((weight ? (double)weight[c] : 1.0) * (double)save_invstd[c]);
        b[c] = bias ? bias[c] : T(0);
    }
    const std::vector<T> mc = per_column(std::move(mean), sh.S), sc = per_column(std::move(scale), sh.S),
                         bc = per_column(std::move(b), sh.S);
    NormCols<T> q{mc.data(), sc.data(), bc.data(), nullptr, nullptr, nullptr, param};
    for_column_blocks(sh, k.lanes, [&](i64 lo, i64 hi) {
        k.col_grad_sums[act][from](dy, s, sh.N, (i64)cols, lo, hi, q, sg.data(), sgu.data());
    });
    const double n = (double)(sh.N * sh.S > 0 ? sh.N * sh.S : 1);
    for (size_t c = 0; c < C; ++c) {
        double g = 0, gu = 0;  // u is relative to the channel's mean in every column: the sums add
        for (i64 j = 0; j < sh.S; ++j) {
            g += sg[c * (size_t)sh.S + (size_t)j];
            gu += sgu[c * (size_t)sh.S + (size_t)j];
        }
        grad_constants(weight ? (double)weight[c] : 1.0, (double)save_invstd[c], g, gu, n, from, dweight[c], a[c],
                       c0[c], c2[c]);
        dbias[c] = (T)g;
    }
    const std::vector<T> ac = per_column(std::move(a), sh.S), c0c = per_column(std::move(c0), sh.S),
                         c2c = per_column(std::move(c2), sh.S);
    q.a = ac.data();
    q.c0 = c0c.data();
    q.c2 = c2c.data();
    for_column_blocks(sh, k.lanes, [&](i64 lo, i64 hi) {
        k.col_grad_input[act][from](dy, s, dx, sh.N, (i64)cols, lo, hi, q, training);
    });
}

// Large S: the runs in memory order (a channel's runs lie C*S apart; sweeping them per channel ran
// at half the copy bandwidth). Training: per-run sums, the constants, then the normalize pass.
template <class T>
void forward_runs(const NormKernels<T>& k, const T* x, T* y, const BatchNormShape& sh, const Forward<T>& f,
                  NormAct act, T param, i64* counts) {
    const size_t C = (size_t)sh.C, runs = (size_t)(sh.N * sh.C);
    const NormRuns one{1, sh.S, sh.S};
    std::vector<T> hi, scale, b;
    runs_constants(k, x, sh, f, hi, scale, b);
    std::vector<i64> run_counts(counts ? runs : 0);
    for_runs_in_order(sh, [&](i64 r) {
        const size_t c = (size_t)(r % sh.C);
        const i64 pos = k.normalize[act](x + r * sh.S, y + r * sh.S, one, hi[c], scale[c], b[c], param,
                                         counts != nullptr);
        if (counts) run_counts[(size_t)r] = pos;
    });
    if (counts)
        for (size_t c = 0; c < C; ++c) {
            counts[c] = 0;
            for (i64 n = 0; n < sh.N; ++n) counts[c] += run_counts[(size_t)n * C + c];
        }
}

template <class T>
void backward_runs(const NormKernels<T>& k, const T* dy, const T* s, NormFrom from, T* dx, const BatchNormShape& sh,
                   const T* weight, const T* bias, const T* save_mean, const T* save_invstd, NormAct act, T param,
                   bool training, T* dweight, T* dbias) {
    const size_t runs = (size_t)(sh.N * sh.C);
    const NormRuns one{1, sh.S, sh.S};
    std::vector<NormCoef<T>> q = runs_coefs(sh, weight, bias, save_mean, save_invstd, param);
    std::vector<double> pg(runs), pgu(runs);
    for_runs_in_order(sh, [&](i64 r) {
        const i64 off = r * sh.S;
        k.grad_sums[act][from](dy + off, s + off, one, q[(size_t)(r % sh.C)], &pg[(size_t)r], &pgu[(size_t)r]);
    });
    runs_grad_constants(sh, pg, pgu, weight, save_invstd, from, q, dweight, dbias);
    for_runs_in_order(sh, [&](i64 r) {
        const i64 off = r * sh.S;
        k.grad_input[act][from](dy + off, s + off, dx + off, one, q[(size_t)(r % sh.C)], training);
    });
}

// Small tensors (in L2 whole) with N >= 4: channel c's N runs in one kernel call, the statistics
// then the normalize pass (or the sums then dx). The memory order's call and two horizontal sums
// per run of S cost more than the strided runs there: 256 runs for 8x32x8x8.
constexpr i64 kChannelBytes = 256 << 10;

template <class T> bool per_channel(const BatchNormShape& sh) {
    return sh.N >= 4 && sh.N * sh.C * sh.S * (i64)sizeof(T) <= kChannelBytes;
}

template <class T>
void forward_channels(const NormKernels<T>& k, const T* x, T* y, const BatchNormShape& sh, const Forward<T>& f,
                      NormAct act, T param, i64* counts) {
    const NormRuns runs{sh.N, sh.S, sh.C * sh.S};
    parallel_runs(sh.C, threads_for(sh.N * sh.C * sh.S, kGrain), [&](i64 c) {
        const T* xc = x + c * sh.S;
        double s1 = 0, s2 = 0;
        const T shift = xc[0];
        if (f.training) k.moments(xc, runs, shift, &s1, &s2);
        T hi, scale, b;
        f.constants(c, shift, s1, s2, hi, scale, b);
        const i64 pos = k.normalize[act](xc, y + c * sh.S, runs, hi, scale, b, param, counts != nullptr);
        if (counts) counts[c] = pos;
    });
}

template <class T>
void backward_channels(const NormKernels<T>& k, const T* dy, const T* s, NormFrom from, T* dx,
                       const BatchNormShape& sh, const T* weight, const T* bias, const T* save_mean,
                       const T* save_invstd, NormAct act, T param, bool training, T* dweight, T* dbias) {
    const NormRuns runs{sh.N, sh.S, sh.C * sh.S};
    const double n = (double)(sh.N * sh.S > 0 ? sh.N * sh.S : 1);
    parallel_runs(sh.C, threads_for(sh.N * sh.C * sh.S, kGrain), [&](i64 c) {
        const i64 off = c * sh.S;
        const double w = weight ? (double)weight[c] : 1.0;
        NormCoef<T> q{};
        q.mean = save_mean[c];
        q.scale = (T)(w * (double)save_invstd[c]);
        q.bias = bias ? bias[c] : T(0);
        q.param = param;
        double g = 0, gu = 0;
        k.grad_sums[act][from](dy + off, s + off, runs, q, &g, &gu);
        grad_constants(w, (double)save_invstd[c], g, gu, n, from, dweight[c], q.a, q.c0, q.c2);
        dbias[c] = (T)g;
        k.grad_input[act][from](dy + off, s + off, dx + off, runs, q, training);
    });
}

}  // namespace

template <class T>
void batch_norm_forward(const T* x, T* y, const BatchNormShape& sh, const T* weight, const T* bias,
                        T* running_mean, T* running_var, bool training, double momentum, double eps, NormAct act,
                        T param, T* save_mean, T* save_invstd, i64* counts) {
    const NormKernels<T>& k = norm_kernels<T>();
    const Forward<T> f{weight, bias, running_mean, running_var, training, momentum, eps, save_mean, save_invstd,
                       sh.N * sh.S};
    if (sh.S < kColumnsBelow) return forward_cols(k, x, y, sh, f, act, param, counts);
    if (training && per_channel<T>(sh)) return forward_channels(k, x, y, sh, f, act, param, counts);
    return forward_runs(k, x, y, sh, f, act, param, counts);
}

template <class T>
void batch_norm_backward(const T* dy, const T* s, NormFrom from, T* dx, const BatchNormShape& sh, const T* weight,
                         const T* bias, const T* save_mean, const T* save_invstd, NormAct act, T param,
                         bool training, T* dweight, T* dbias) {
    const NormKernels<T>& k = norm_kernels<T>();
    if (sh.S < kColumnsBelow)
        return backward_cols(k, dy, s, from, dx, sh, weight, bias, save_mean, save_invstd, act, param, training,
                             dweight, dbias);
    if (per_channel<T>(sh))
        return backward_channels(k, dy, s, from, dx, sh, weight, bias, save_mean, save_invstd, act, param, training,
                               dweight, dbias);
    return backward_runs(k, dy, s, from, dx, sh, weight, bias, save_mean, save_invstd, act, param, training, dweight,
                         dbias);
}

#define RC_NORM(T)                                                                                            \
    template void batch_norm_forward<T>(const T*, T*, const BatchNormShape&, const T*, const T*, T*, T*, bool,  \
                                        double, double, NormAct, T, T*, T*, i64*);                            \
    template void batch_norm_backward<T>(const T*, const T*, NormFrom, T*, const BatchNormShape&, const T*,     \
                                         const T*, const T*, const T*, NormAct, T, bool, T*, T*);
RC_NORM(float)
RC_NORM(double)
#undef RC_NORM

}  // namespace ops
}  // namespace relucore
