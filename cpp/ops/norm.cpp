// Batch norm over whole arrays: per-channel constants in double, the passes in the kernel table.
// Each channel is done start to finish by one thread (statistics, then the normalize pass while the
// channel is still in cache; the backward's sums, then the dx pass), so the reduction order is fixed.
#include "relucore/norm.h"

#include <math.h>

#include "parallel.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {
namespace {

constexpr i64 kGrain = 1 << 15;  // elements per thread below which one thread is faster

template <class F> void for_channels(const BatchNormShape& sh, F&& f) {
    parallel_items(sh.C, threads_for(sh.N * sh.C * sh.S, kGrain), f);
}

}  // namespace

template <class T>
void batch_norm_forward(const T* x, T* y, const BatchNormShape& sh, const T* weight, const T* bias,
                        T* running_mean, T* running_var, bool training, double momentum, double eps, NormAct act,
                        T param, T* save_mean, T* save_invstd, i64* counts) {
    const NormKernels<T>& k = norm_kernels<T>();
    const NormRuns r{sh.N, sh.S, sh.C * sh.S};
    const i64 n = sh.N * sh.S;
    for_channels(sh, [&](i64 c) {
        const T* xc = x + c * sh.S;
        double mean = 0, var = 0;
        if (!training) {
            mean = (double)running_mean[c];
            var = (double)running_var[c];
        } else if (n > 0) {
            // shifted by one of the channel's own values: no cancellation when |mean| >> spread
            const T shift = xc[0];
            double s1, s2;
            k.moments(xc, r, shift, &s1, &s2);
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
        const double scale = (weight ? (double)weight[c] : 1.0) * invstd;
        // mean = hi + lo: x - hi is exact near the mean, and lo moves into the bias
        const T hi = (T)mean;
        const double lo = mean - (double)hi;
        const T b = (T)((bias ? (double)bias[c] : 0.0) - lo * scale);
        const i64 pos = k.normalize[act](xc, y + c * sh.S, r, hi, (T)scale, b, param, counts != nullptr);
        if (counts) counts[c] = pos;
        save_mean[c] = (T)mean;
        save_invstd[c] = (T)invstd;
    });
}

template <class T>
void batch_norm_backward(const T* dy, const T* s, NormFrom from, T* dx, const BatchNormShape& sh, const T* weight,
                         const T* bias, const T* save_mean, const T* save_invstd, NormAct act, T param,
                         bool training, T* dweight, T* dbias) {
    const NormKernels<T>& k = norm_kernels<T>();
    const NormRuns r{sh.N, sh.S, sh.C * sh.S};
    const double n = (double)(sh.N * sh.S > 0 ? sh.N * sh.S : 1);
    for_channels(sh, [&](i64 c) {
        const i64 off = c * sh.S;
        const double w = weight ? (double)weight[c] : 1.0, invstd = (double)save_invstd[c];
        NormCoef<T> q;
        q.mean = save_mean[c];
        q.scale = (T)(w * invstd);
        q.bias = bias ? bias[c] : T(0);
        q.param = param;
        double sg, sgu;
        k.grad_sums[act][from](dy + off, s + off, r, q, &sg, &sgu);
        // from x, u = x - mean = xhat / invstd; from y, u = z - bias = xhat * w
        const double dw = from == kFromX ? sgu * invstd : sgu / w;
        const double a = w * invstd;
        q.a = (T)a;
        q.c0 = (T)(-a * sg / n);
        q.c2 = (T)(-a * dw / n * (from == kFromX ? invstd : 1.0 / w));
        k.grad_input[act][from](dy + off, s + off, dx + off, r, q, training);
        dweight[c] = (T)dw;
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
