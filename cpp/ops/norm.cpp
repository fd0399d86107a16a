// Batch norm over whole arrays: per-channel constants in double, the passes in the kernel table.
// (N, C, S) arrays with S > 1: each channel is done start to finish by one thread (statistics, then
// the normalize pass while the channel is still in cache; the backward's sums, then the dx pass).
// (N, C) arrays: the kernels run across channels, threads take blocks of whole vectors of channels.
// Either way each channel is summed in one fixed order, whatever the thread count.
#include "relucore/norm.h"

#include <math.h>

#include <vector>

#include "parallel.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {
namespace {

constexpr i64 kGrain = 1 << 15;  // elements per thread below which one thread is faster

template <class F> void for_channels(const BatchNormShape& sh, F&& f) {
    parallel_items(sh.C, threads_for(sh.N * sh.C * sh.S, kGrain), f);
}

// f(c0, c1) on blocks of whole vectors of channels (an (N, C) array).
template <class F> void for_channel_blocks(const BatchNormShape& sh, int lanes, F&& f) {
    parallel_range(sh.C, 1, lanes, threads_for(sh.N * sh.C, kGrain), [&](i64 c0, i64 c1, int) { f(c0, c1); });
}

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

template <class T>
void forward_cols(const NormKernels<T>& k, const T* x, T* y, const BatchNormShape& sh, const Forward<T>& f,
                  NormAct act, T param, i64* counts) {
    const size_t C = (size_t)sh.C;
    std::vector<double> s1(C, 0.0), s2(C, 0.0);
    std::vector<T> hi(C), scale(C), b(C);
    if (f.training && sh.N > 0)
        for_channel_blocks(sh, k.lanes, [&](i64 c0, i64 c1) { k.col_moments(x, sh.N, sh.C, c0, c1, s1.data(), s2.data()); });
    for (size_t c = 0; c < C; ++c) f.constants((i64)c, sh.N > 0 ? x[c] : T(0), s1[c], s2[c], hi[c], scale[c], b[c]);
    const NormCols<T> q{hi.data(), scale.data(), b.data(), nullptr, nullptr, nullptr, param};
    for_channel_blocks(sh, k.lanes, [&](i64 c0, i64 c1) { k.col_normalize[act](x, y, sh.N, sh.C, c0, c1, q, counts); });
}

template <class T>
void backward_cols(const NormKernels<T>& k, const T* dy, const T* x, T* dx, const BatchNormShape& sh,
                   const T* weight, const T* bias, const T* save_mean, const T* save_invstd, NormAct act, T param,
                   bool training, T* dweight, T* dbias) {
    const size_t C = (size_t)sh.C;
    std::vector<double> sg(C, 0.0), sgu(C, 0.0);
    std::vector<T> scale(C), b(C), a(C), c0(C), c2(C);
    for (size_t c = 0; c < C; ++c) {
        scale[c] = (T)((weight ? (double)weight[c] : 1.0) * (double)save_invstd[c]);
        b[c] = bias ? bias[c] : T(0);
    }
    NormCols<T> q{save_mean, scale.data(), b.data(), a.data(), c0.data(), c2.data(), param};
    for_channel_blocks(sh, k.lanes, [&](i64 lo, i64 hi) { k.col_grad_sums[act](dy, x, sh.N, sh.C, lo, hi, q, sg.data(), sgu.data()); });
    const double n = (double)(sh.N > 0 ? sh.N : 1);
    for (size_t c = 0; c < C; ++c) {
        grad_constants(weight ? (double)weight[c] : 1.0, (double)save_invstd[c], sg[c], sgu[c], n, kFromX, dweight[c],
                       a[c], c0[c], c2[c]);
        dbias[c] = (T)sg[c];
    }
    for_channel_blocks(sh, k.lanes, [&](i64 lo, i64 hi) { k.col_grad_input[act](dy, x, dx, sh.N, sh.C, lo, hi, q, training); });
}

}  // namespace

template <class T>
void batch_norm_forward(const T* x, T* y, const BatchNormShape& sh, const T* weight, const T* bias,
                        T* running_mean, T* running_var, bool training, double momentum, double eps, NormAct act,
                        T param, T* save_mean, T* save_invstd, i64* counts) {
    const NormKernels<T>& k = norm_kernels<T>();
    const Forward<T> f{weight, bias, running_mean, running_var, training, momentum, eps, save_mean, save_invstd,
                       sh.N * sh.S};
    if (sh.S == 1) return forward_cols(k, x, y, sh, f, act, param, counts);
    const NormRuns r{sh.N, sh.S, sh.C * sh.S};
    for_channels(sh, [&](i64 c) {
        const T* xc = x + c * sh.S;
        const T shift = f.n > 0 ? xc[0] : T(0);
        double s1 = 0, s2 = 0;
        if (training && f.n > 0) k.moments(xc, r, shift, &s1, &s2);
        T hi, scale, b;
        f.constants(c, shift, s1, s2, hi, scale, b);
        const i64 pos = k.normalize[act](xc, y + c * sh.S, r, hi, scale, b, param, counts != nullptr);
        if (counts) counts[c] = pos;
    });
}

template <class T>
void batch_norm_backward(const T* dy, const T* s, NormFrom from, T* dx, const BatchNormShape& sh, const T* weight,
                         const T* bias, const T* save_mean, const T* save_invstd, NormAct act, T param,
                         bool training, T* dweight, T* dbias) {
    const NormKernels<T>& k = norm_kernels<T>();
    if (sh.S == 1 && from == kFromX)
        return backward_cols(k, dy, s, dx, sh, weight, bias, save_mean, save_invstd, act, param, training, dweight,
                             dbias);
    const NormRuns r{sh.N, sh.S, sh.C * sh.S};
    const double n = (double)(sh.N * sh.S > 0 ? sh.N * sh.S : 1);
    for_channels(sh, [&](i64 c) {
        const i64 off = c * sh.S;
        const double w = weight ? (double)weight[c] : 1.0;
        NormCoef<T> q;
        q.mean = save_mean[c];
        q.scale = (T)(w * (double)save_invstd[c]);
        q.bias = bias ? bias[c] : T(0);
        q.param = param;
        double sg, sgu;
        k.grad_sums[act][from](dy + off, s + off, r, q, &sg, &sgu);
        grad_constants(w, (double)save_invstd[c], sg, sgu, n, from, dweight[c], q.a, q.c0, q.c2);
        k.grad_input[act][from](dy + off, s + off, dx + off, r, q, training);
        dbias[c] = (T)sg;
    });
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
