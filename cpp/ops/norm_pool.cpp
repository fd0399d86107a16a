// Batch norm + activation + max pooling in one sweep of planes: the full-size activation is never
// written and read back. For 2x2 stride-2 windows the plane kernels (kernels/norm_pool.cpp) normalize
// as they pool and unpool dy in registers; for other windows the normalized plane lives in a
// per-thread scratch plane (in L1/L2 for the usual image sizes) from which it is pooled, and the
// backward rebuilds each plane's pooling gradient there twice (for the sums, then for dx). Per plane
// the arithmetic is that of batch_norm_forward/backward and max_pool2d_pos in the runs layout, so the
// results are those of the three separate passes there, except that the 2x2 backward's sums add the
// windows' winners only (within rounding).
#include <algorithm>
#include <atomic>
#include <new>
#include <vector>

#include "norm_common.h"
#include "relucore/dispatch.h"
#include "relucore/dweight_planes.h"
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
                                 double momentum, double eps, NormAct act, T param, T* save_mean, T* save_invstd,
                                 const double* run_sums) {
    const SettingsScope settings;
    const NormKernels<T>& k = norm_kernels<T>();
    const auto pool = conv_kernels<T>().max_pool_pos;
    // the running buffers move only once the sweep has run (a scratch allocation may fail in it)
    const bool update = training && running_mean && running_var;
    std::vector<T> rm(update ? running_mean : nullptr, update ? running_mean + sh.C : nullptr);
    std::vector<T> rv(update ? running_var : nullptr, update ? running_var + sh.C : nullptr);
    const Forward<T> f{weight, bias, update ? rm.data() : running_mean, update ? rv.data() : running_var, training,
                       momentum, eps, save_mean, save_invstd, sh.N * sh.S};
    std::vector<T> hi, scale, b;
    runs_constants(k, x, sh, f, hi, scale, b, run_sums);
    const i64 out = g.OH * g.OW;
    const NormRuns one{1, sh.S, sh.S};
    const bool fused = is_pool_2x2s2(g);  // the plane kernels, no scratch plane
    for_runs_in_order(sh, [&](i64 r) {
        const size_t c = (size_t)(r % sh.C);
        if (fused)
            return k.pool2_normalize[act](x + r * sh.S, y + r * out, pos + r * out, g, hi[c], scale[c], b[c], param);
        T* plane = scratch_plane<T>(sh.S);
        k.normalize[act](x + r * sh.S, plane, one, hi[c], scale[c], b[c], param, 0);
        pool(plane, y + r * out, pos + r * out, g);
    });
    if (update) {
        std::copy(rm.begin(), rm.end(), running_mean);
        std::copy(rv.begin(), rv.end(), running_var);
    }
}

template <class T>
bool batch_norm_max_pool_backward(const T* dy, const uint8_t* pos, const T* x, T* dx, const BatchNormShape& sh,
                                  const ConvGeom& g, const T* weight, const T* bias, const T* save_mean,
                                  const T* save_invstd, NormAct act, T param, bool training, T* dweight, T* dbias,
                                  T* input_sums, DweightPlanes<T>* conv) {
    const SettingsScope settings;
    const NormKernels<T>& k = norm_kernels<T>();
    const auto unpool = conv_kernels<T>().max_pool_pos_backward;
    const i64 out = g.OH * g.OW;
    const NormRuns one{1, sh.S, sh.S};
    std::vector<NormCoef<T>> q = runs_coefs(sh, weight, bias, save_mean, save_invstd, param);
    std::atomic<bool> ok{true};
    // the pooling gradient of plane r in this thread's scratch
    auto unpooled = [&](i64 r) {
        T* plane = scratch_plane<T>(sh.S);
        if (!unpool(dy + r * out, pos + r * out, plane, g)) ok.store(false, std::memory_order_relaxed);
        return plane;
    };
    // plane r's dx (the pooling's and then batch norm's backward) into d
    const bool fused = is_pool_2x2s2(g);  // the plane kernels, no scratch plane
    auto grad_input = [&](i64 r, T* d) {
        const NormCoef<T>& c = q[(size_t)(r % sh.C)];
        if (fused) k.pool2_grad_input[act](dy + r * out, pos + r * out, x + r * sh.S, d, g, c, training);
        else k.grad_input[act][kFromX](unpooled(r), x + r * sh.S, d, one, c, training);
    };
    std::vector<double> pg((size_t)(sh.N * sh.C)), pgu(pg.size());
    for_runs_in_order(sh, [&](i64 r) {
        const NormCoef<T>& c = q[(size_t)(r % sh.C)];
        if (!fused) {
            k.grad_sums[act][kFromX](unpooled(r), x + r * sh.S, one, c, &pg[(size_t)r], &pgu[(size_t)r]);
        } else if (!k.pool2_grad_sums[act](dy + r * out, pos + r * out, x + r * sh.S, g, c, &pg[(size_t)r],
                                           &pgu[(size_t)r])) {
            ok.store(false, std::memory_order_relaxed);
        }
    });
    if (!ok.load()) return false;
    runs_grad_constants(sh, pg, pgu, weight, save_invstd, kFromX, q, dweight, dbias);
    if (!conv) {
        const auto sum = conv_kernels<T>().sum;
        std::vector<double> sums(input_sums ? (size_t)(sh.N * sh.C) : 0);
        for_runs_in_order(sh, [&](i64 r) {
            const i64 off = r * sh.S;
            grad_input(r, dx + off);
            if (input_sums) sums[(size_t)r] = sum(dx + off, sh.S);  // while the plane is in L1
        });
        if (input_sums) bias_from_plane_sums(sums.data(), sh.N, sh.C, input_sums);
        return ok.load();
    }
    // dx image by image into scratch (the planes of a block of channels), handed to the convolution's
    // dweight: items are its chunks of images, split by channels when there are more threads.
    const int nt = threads_for(sh.N * sh.C * sh.S, kGrain);
    const i64 chunks = conv->chunks(), want = chunks > 0 ? (nt + chunks - 1) / chunks : 1;
    const i64 cb = ((sh.C + want - 1) / want + kDotTileM - 1) / kDotTileM * kDotTileM, blocks = (sh.C + cb - 1) / cb;
    parallel_runs(chunks * blocks, nt, [&](i64 item) {
        const i64 chunk = item / blocks, c0 = item % blocks * cb, c1 = c0 + cb < sh.C ? c0 + cb : sh.C;
        T* d = scratch<T>(kPartials, (c1 - c0) * sh.S);
        if (!d) throw std::bad_alloc();
        for (i64 n = conv->first_image(chunk); n < conv->first_image(chunk + 1); ++n) {
            for (i64 c = c0; c < c1; ++c) grad_input(n * sh.C + c, d + (c - c0) * sh.S);
            conv->add(chunk, n, c0, c1, d);
        }
    });
    if (!ok.load()) return false;
    conv->finish();
    return true;
}

#define RC_NORM_POOL(T)                                                                                       \
    template void batch_norm_max_pool_forward<T>(const T*, T*, uint8_t*, const BatchNormShape&, const ConvGeom&, \
                                                 const T*, const T*, T*, T*, bool, double, double, NormAct, T,  \
                                                 T*, T*, const double*);                                       \
    template bool batch_norm_max_pool_backward<T>(const T*, const uint8_t*, const T*, T*, const BatchNormShape&, \
                                                  const ConvGeom&, const T*, const T*, const T*, const T*,      \
                                                  NormAct, T, bool, T*, T*, T*, DweightPlanes<T>*);
RC_NORM_POOL(float)
RC_NORM_POOL(double)
#undef RC_NORM_POOL

}  // namespace ops
}  // namespace relucore
