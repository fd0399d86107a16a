// Batch norm + activation + max pooling in one sweep of planes: the normalized plane lives only in a
// per-thread scratch plane (in L1/L2 for the usual image sizes) from which it is pooled, so the
// full-size activation is never written and read back; backward rebuilds each plane's pooling
// gradient in scratch twice (for the sums, then for dx) instead of writing it out and reading it
// twice. Per plane the kernels are the ones batch_norm_forward/backward and max_pool2d_pos use in the
// runs layout, so the results are those of the three separate passes there.
#include <atomic>
#include <new>
#include <vector>

#include "norm_common.h"
#include "relucore/dispatch.h"
#include "relucore/norm.h"
#include "scratch.h"

namespace relucore {
namespace ops {

using namespace norm_detail;

namespace {

// This thread's own plane (cache-line aligned, kept between calls): planes of two threads in one
// buffer shared a cache line at their boundary, and that line's trips made the fused passes slower
// than the separate ones.
template <class T> T* scratch_plane(i64 S) {
    T* p = scratch<T>(kColumns, S);
    if (!p) throw std::bad_alloc();
    return p;
}

}  // namespace

template <class T>
void batch_norm_max_pool_forward(const T* x, T* y, uint8_t* pos, const BatchNormShape& sh, const ConvGeom& g,
                                 const T* weight, const T* bias, T* running_mean, T* running_var, bool training,
                                 double momentum, double eps, NormAct act, T param, T* save_mean, T* save_invstd) {
    const NormKernels<T>& k = norm_kernels<T>();
    const auto pool = conv_kernels<T>().max_pool_pos;
    const Forward<T> f{weight, bias, running_mean, running_var, training, momentum, eps, save_mean, save_invstd,
                       sh.N * sh.S};
    const size_t C = (size_t)sh.C, runs = (size_t)(sh.N * sh.C);
    const i64 out = g.OH * g.OW;
    const NormRuns one{1, sh.S, sh.S};
    std::vector<double> p1(training ? runs : 0), p2(training ? runs : 0);
    if (training)
        for_runs_in_order(sh, [&](i64 r, int) {
            const T shift = x[(r % sh.C) * sh.S];  // the channel's first value: no cancellation
            k.moments(x + r * sh.S, one, shift, &p1[(size_t)r], &p2[(size_t)r]);
        });
    std::vector<T> hi(C), scale(C), b(C);
    for (size_t c = 0; c < C; ++c) {
        double s1 = 0, s2 = 0;
        if (training) {
            add_runs(sh, p1, (i64)c, s1);
            add_runs(sh, p2, (i64)c, s2);
        }
        f.constants((i64)c, sh.N > 0 ? x[c * (size_t)sh.S] : T(0), s1, s2, hi[c], scale[c], b[c]);
    }
    for_runs_in_order(sh, [&](i64 r, int) {
        const size_t c = (size_t)(r % sh.C);
        T* plane = scratch_plane<T>(sh.S);
        k.normalize[act](x + r * sh.S, plane, one, hi[c], scale[c], b[c], param, 0);
        pool(plane, y + r * out, pos + r * out, g);
    });
}

template <class T>
bool batch_norm_max_pool_backward(const T* dy, const uint8_t* pos, const T* x, T* dx, const BatchNormShape& sh,
                                  const ConvGeom& g, const T* weight, const T* bias, const T* save_mean,
                                  const T* save_invstd, NormAct act, T param, bool training, T* dweight, T* dbias) {
    const NormKernels<T>& k = norm_kernels<T>();
    const auto unpool = conv_kernels<T>().max_pool_pos_backward;
    const size_t C = (size_t)sh.C, runs = (size_t)(sh.N * sh.C);
    const i64 out = g.OH * g.OW;
    const NormRuns one{1, sh.S, sh.S};
    std::vector<NormCoef<T>> q(C);
    for (size_t c = 0; c < C; ++c) {
        q[c].mean = save_mean[c];
        q[c].scale = (T)((weight ? (double)weight[c] : 1.0) * (double)save_invstd[c]);
        q[c].bias = bias ? bias[c] : T(0);
        q[c].param = param;
    }
    std::atomic<bool> ok{true};
    // the pooling gradient of plane r in this thread's scratch
    auto unpooled = [&](i64 r) {
        T* plane = scratch_plane<T>(sh.S);
        if (!unpool(dy + r * out, pos + r * out, plane, g)) ok.store(false, std::memory_order_relaxed);
        return plane;
    };
    std::vector<double> pg(runs), pgu(runs);
    for_runs_in_order(sh, [&](i64 r, int) {
        k.grad_sums[act][kFromX](unpooled(r), x + r * sh.S, one, q[(size_t)(r % sh.C)], &pg[(size_t)r],
                                 &pgu[(size_t)r]);
    });
    if (!ok.load()) return false;
    const double n = (double)(sh.N * sh.S > 0 ? sh.N * sh.S : 1);
    for (size_t c = 0; c < C; ++c) {
        double sg, sgu;
        add_runs(sh, pg, (i64)c, sg);
        add_runs(sh, pgu, (i64)c, sgu);
        grad_constants(weight ? (double)weight[c] : 1.0, (double)save_invstd[c], sg, sgu, n, kFromX, dweight[c],
                       q[c].a, q[c].c0, q[c].c2);
        dbias[c] = (T)sg;
    }
    for_runs_in_order(sh, [&](i64 r, int) {
        const i64 off = r * sh.S;
        k.grad_input[act][kFromX](unpooled(r), x + off, dx + off, one, q[(size_t)(r % sh.C)], training);
    });
    return ok.load();
}

#define RC_NORM_POOL(T)                                                                                       \
    template void batch_norm_max_pool_forward<T>(const T*, T*, uint8_t*, const BatchNormShape&, const ConvGeom&, \
                                                 const T*, const T*, T*, T*, bool, double, double, NormAct, T,  \
                                                 T*, T*);                                                      \
    template bool batch_norm_max_pool_backward<T>(const T*, const uint8_t*, const T*, T*, const BatchNormShape&, \
                                                  const ConvGeom&, const T*, const T*, const T*, const T*,      \
                                                  NormAct, T, bool, T*, T*);
RC_NORM_POOL(float)
RC_NORM_POOL(double)
#undef RC_NORM_POOL

}  // namespace ops
}  // namespace relucore
