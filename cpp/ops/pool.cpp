// Max and average pooling over whole NCHW batches: one plane per work item.
#include <atomic>

#include "items.h"
#include "relucore/dispatch.h"
#include "relucore/pool.h"

namespace relucore {
namespace ops {
namespace {

// f(plane) for every plane, in runs of planes per thread: single planes handed out one at a time
// shared the cache lines of small planes' outputs (a 7x7 plane's byte positions are 49 bytes)
// between the threads (64x32 planes of 14x14: 2 threads 2x slower than 1).
template <class F> void for_planes(i64 planes, i64 plane_size, F&& f) {
    const i64 grain = plane_size > 0 && plane_size < kGrainCopy ? kGrainCopy / plane_size : 1;
    parallel_runs(planes, threads_for(planes * plane_size, kGrainCopy), f, grain);
}

}  // namespace

template <class T> void max_pool2d(const T* x, T* y, int64_t* idx, i64 planes, const ConvGeom& g) {
    const auto k = conv_kernels<T>().max_pool;
    const i64 in = g.H * g.W, out = g.OH * g.OW;
    for_planes(planes, in, [&](i64 p) { k(x + p * in, y + p * out, idx + p * out, g); });
}

template <class T> void max_pool2d_pos(const T* x, T* y, uint8_t* pos, i64 planes, const ConvGeom& g) {
    const auto k = conv_kernels<T>().max_pool_pos;
    const i64 in = g.H * g.W, out = g.OH * g.OW;
    for_planes(planes, in, [&](i64 p) { k(x + p * in, y + p * out, pos + p * out, g); });
}

template <class T> bool max_pool2d_pos_backward(const T* dy, const uint8_t* pos, T* dx, i64 planes, const ConvGeom& g) {
    const auto k = conv_kernels<T>().max_pool_pos_backward;
    const i64 in = g.H * g.W, out = g.OH * g.OW;
    if (planes == 0 || in == 0) return true;
    std::atomic<bool> ok{true};
    for_planes(planes, in, [&](i64 p) {
        if (!k(dy + p * out, pos + p * out, dx + p * in, g)) ok.store(false, std::memory_order_relaxed);
    });
    return ok.load();
}

template <class T>
bool max_pool2d_backward(const T* dy, const int64_t* idx, T* dx, i64 planes, i64 out_plane, i64 in_plane) {
    if (planes == 0 || in_plane == 0) return true;
    std::atomic<bool> ok{true};
    for_planes(planes, in_plane, [&](i64 p) {
        T* d = dx + p * in_plane;
        zero(d, in_plane);
        for (i64 i = 0; i < out_plane; ++i) {
            const int64_t at = idx[p * out_plane + i];
            if (at < 0 || at >= in_plane) ok.store(false, std::memory_order_relaxed);  // never written
            else d[at] += dy[p * out_plane + i];
        }
    });
    return ok.load();
}

template <class T> void avg_pool2d(const T* x, T* y, i64 planes, const ConvGeom& g, bool count_include_pad) {
    const auto k = conv_kernels<T>().avg_pool;
    const i64 in = g.H * g.W, out = g.OH * g.OW;
    for_planes(planes, in, [&](i64 p) { k(x + p * in, y + p * out, g, count_include_pad); });
}

template <class T> void avg_pool2d_backward(const T* dy, T* dx, i64 planes, const ConvGeom& g, bool count_include_pad) {
    const auto k = conv_kernels<T>().avg_pool_backward;
    const i64 in = g.H * g.W, out = g.OH * g.OW;
    if (planes == 0 || in == 0) return;
    for_planes(planes, in, [&](i64 p) {
        zero(dx + p * in, in);
        k(dy + p * out, dx + p * in, g, count_include_pad);
    });
}

#define RC_INSTANTIATE(T)                                                                                     \
    template void max_pool2d<T>(const T*, T*, int64_t*, i64, const ConvGeom&);                                \
    template bool max_pool2d_backward<T>(const T*, const int64_t*, T*, i64, i64, i64);                        \
    template void max_pool2d_pos<T>(const T*, T*, uint8_t*, i64, const ConvGeom&);                            \
    template bool max_pool2d_pos_backward<T>(const T*, const uint8_t*, T*, i64, const ConvGeom&);             \
    template void avg_pool2d<T>(const T*, T*, i64, const ConvGeom&, bool);                                    \
    template void avg_pool2d_backward<T>(const T*, T*, i64, const ConvGeom&, bool);
RC_INSTANTIATE(float)
RC_INSTANTIATE(double)
#undef RC_INSTANTIATE

}  // namespace ops
}  // namespace relucore
