// Elementwise ops over whole arrays: split into per-thread pieces, call the active kernel table.
#include <stdio.h>

#include <atomic>
#include <type_traits>
#include <vector>

#include "parallel.h"
#include "relucore/dispatch.h"
#include "relucore/ops.h"

namespace relucore {
namespace ops {
namespace {

// Elements per thread below which another thread costs more than it saves (see docs/performance.md).
constexpr i64 kGrainCheap = 1 << 15;  // memory-bound ops
constexpr i64 kGrainExp = 1 << 12;    // ops that evaluate exp
constexpr i64 kAlign = 64;            // piece boundaries: whole mask bytes, whole cache lines
constexpr i64 kPiece = 1 << 14;       // fixed reduction piece for prelu's dweight

// Outputs larger than the last-level cache are written with cache-bypassing stores: they would
// evict everything on the way and cost a read-for-ownership per line (see docs/performance.md).
i64 llc_bytes() {
    static const i64 bytes = [] {
        i64 kb = 0;
        if (FILE* f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
            if (fscanf(f, "%lld", (long long*)&kb) != 1) kb = 0;
            fclose(f);
        }
        return kb > 0 ? kb * 1024 : (i64)32 << 20;
    }();
    return bytes;
}

std::atomic<i64> g_stream_bytes{-1};  // -1: the last-level cache size (a benchmark hook may set it mid-call)

template <class T> int stream_flag(i64 n) {
    const i64 set = g_stream_bytes.load(std::memory_order_relaxed);
    const i64 limit = set >= 0 ? set : llc_bytes();
    return n * (i64)sizeof(T) > limit ? kStream : 0;
}

enum Cost { cheap, exp };
constexpr Cost kCost[kActs] = {
#define RC_ACTIVATION(name, Op, from, cost, ...) cost,
#include "relucore/activations.inc"
#undef RC_ACTIVATION
};

i64 grain_of(Act a) { return kCost[(int)a] == cheap ? kGrainCheap : kGrainExp; }

// Calls f(channel, begin, end) for the runs of [b, e) that lie in one channel each.
template <class F>
void for_channel_runs(i64 b, i64 e, i64 channels, i64 inner, F&& f) {
    while (b < e) {
        const i64 row = b / inner;
        const i64 end = (row + 1) * inner < e ? (row + 1) * inner : e;
        f(row % channels, b, end);
        b = end;
    }
}

}  // namespace

template <class T>
typename ElementwiseKernels<T>::Forward forward_kernel(Act a) {
    return elementwise_kernels<T>().forward[(int)a];
}

template <class T>
typename ElementwiseKernels<T>::Backward backward_kernel(Act a) {
    return elementwise_kernels<T>().backward[(int)a];
}

void set_stream_threshold(i64 bytes) { g_stream_bytes.store(bytes, std::memory_order_relaxed); }

constexpr i64 kShortRun = 32;  // channel runs shorter than this are counted after the kernel

// Adds to counts[c] the positive y[i], b <= i < e, of channel c = (i / inner) % channels. Whole
// rows of channels * inner elements go channel by channel, so the compiler vectorizes the
// inner == 1 rows ((N, C) input) across channels; a branch per element cost 10x the kernel.
template <class T>
void count_short_runs(const T* y, i64 b, i64 e, i64 channels, i64 inner, i64* counts) {
    const i64 row = channels * inner;
    i64 i = b, c = (b / inner) % channels, j = b % inner;
    for (; i < e && (c != 0 || j != 0); ++i) {  // up to the next row start
        counts[c] += y[i] > T(0);
        if (++j == inner) {
            j = 0;
            if (++c == channels) c = 0;
        }
    }
    if (inner == 1 && e - i >= row) {
        // counters as wide as T: the compare's lane mask adds without widening, so it vectorizes
        // (flushed before 32-bit ones could overflow)
        using Lane = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
        std::vector<Lane> lanes((size_t)channels, 0);
        i64 since_flush = 0;
        for (; e - i >= row; i += row) {
            const T* r = y + i;
            for (i64 k = 0; k < channels; ++k) lanes[(size_t)k] -= -(Lane)(r[k] > T(0));
            if (++since_flush == INT32_MAX) {
                for (i64 k = 0; k < channels; ++k) counts[k] += lanes[(size_t)k], lanes[(size_t)k] = 0;
                since_flush = 0;
            }
        }
        for (i64 k = 0; k < channels; ++k) counts[k] += lanes[(size_t)k];
    }
    for (; e - i >= row; i += row) {
        const T* r = y + i;
        for (i64 k = 0; k < channels; ++k) {
            i64 s = 0;
            for (i64 m = 0; m < inner; ++m) s += r[k * inner + m] > T(0);
            counts[k] += s;
        }
    }
    for (c = 0, j = 0; i < e; ++i) {  // a partial last row
        counts[c] += y[i] > T(0);
        if (++j == inner) {
            j = 0;
            ++c;
        }
    }
}

template <class T>
void forward(Act act, const T* x, T* y, i64 n, T param, uint8_t* mask, i64* counts, i64 channels, i64 inner) {
    const auto k = forward_kernel<T>(act);
    const int stream = stream_flag<T>(n);
    if (!counts) {
        parallel_range(n, grain_of(act), kAlign, 0, [&](i64 b, i64 e, int) {
            k(x + b, y + b, e - b, param, mask, b, stream);
        });
        return;
    }
    const int nt = threads_for(n, grain_of(act));
    std::vector<i64> local((size_t)nt * (size_t)channels, 0);  // per-thread counts, summed below
    parallel_range(n, grain_of(act), kAlign, nt, [&](i64 b, i64 e, int t) {
        i64* mine = local.data() + (size_t)t * (size_t)channels;
        if (inner >= kShortRun) {
            for_channel_runs(b, e, channels, inner, [&](i64 c, i64 rb, i64 re) {
                mine[c] += k(x + rb, y + rb, re - rb, param, mask, rb, kCount | stream);
            });
            return;
        }
        // short runs ((N, C) input: one element each): a kernel call per run would cost ~30x more
        // than the run, so the piece runs as one call and its outputs are counted after
        k(x + b, y + b, e - b, param, mask, b, stream);
        count_short_runs(y, b, e, channels, inner, mine);
    });
    for (i64 c = 0; c < channels; ++c) {
        i64 s = 0;
        for (int t = 0; t < nt; ++t) s += local[(size_t)t * (size_t)channels + (size_t)c];
        counts[c] = s;
    }
}

template <class T>
void backward(Act act, const T* dy, const T* s, T* dx, i64 n, T param) {
    const auto k = backward_kernel<T>(act);
    const int stream = stream_flag<T>(n);
    parallel_range(n, grain_of(act), kAlign, 0,
                   [&](i64 b, i64 e, int) { k(dy + b, s + b, dx + b, e - b, param, stream); });
}

template <class T>
void backward_mask(Act act, const T* dy, const uint8_t* mask, T* dx, i64 n, T param) {
    const auto k = elementwise_kernels<T>().backward_mask[(int)act];
    parallel_range(n, kGrainCheap, kAlign, 0, [&](i64 b, i64 e, int) { k(dy + b, mask, b, dx + b, e - b, param); });
}

template <class T>
void prelu_forward(const T* x, const T* weight, T* y, i64 outer, i64 channels, i64 inner) {
    const auto k = elementwise_kernels<T>().forward[(int)Act::leaky_relu];
    const i64 n = outer * channels * inner;
    const int stream = stream_flag<T>(n);
    parallel_range(n, kGrainCheap, kAlign, 0, [&](i64 b, i64 e, int) {
        for_channel_runs(b, e, channels, inner, [&](i64 c, i64 rb, i64 re) {
            k(x + rb, y + rb, re - rb, weight[c], nullptr, 0, stream);
        });
    });
}

template <class T>
void prelu_backward(const T* dy, const T* x, const T* weight, T* dx, T* dweight, i64 outer, i64 channels,
                    i64 inner) {
    const auto k = elementwise_kernels<T>().prelu_backward;
    // Items are (channel, block): a block is either a slice of one long row (inner >= kPiece) or a
    // group of whole rows. Items of one channel are contiguous in `partial` and summed in order.
    const bool split_rows = inner >= kPiece;
    const i64 blocks_per_row = split_rows ? (inner + kPiece - 1) / kPiece : 1;
    const i64 rows_per_block = split_rows ? 1 : (kPiece / (inner > 0 ? inner : 1) > 0 ? kPiece / (inner > 0 ? inner : 1) : 1);
    const i64 row_blocks = (outer + rows_per_block - 1) / rows_per_block;
    const i64 per_channel = split_rows ? outer * blocks_per_row : row_blocks;
    const i64 items = channels * per_channel;
    std::vector<double> partial((size_t)items, 0.0);
    const int nt = threads_for(outer * channels * inner, kGrainCheap);
    parallel_items(items, nt, [&](i64 item) {
        const i64 c = item / per_channel, j = item % per_channel;
        double s = 0;
        if (split_rows) {
            const i64 row = j / blocks_per_row, blk = j % blocks_per_row;
            const i64 b = (row * channels + c) * inner + blk * kPiece;
            const i64 len = inner - blk * kPiece < kPiece ? inner - blk * kPiece : kPiece;
            s = k(dy + b, x + b, dx + b, len, weight[c]);
        } else {
            const i64 r_end = (j + 1) * rows_per_block < outer ? (j + 1) * rows_per_block : outer;
            for (i64 r = j * rows_per_block; r < r_end; ++r) {
                const i64 b = (r * channels + c) * inner;
                s += k(dy + b, x + b, dx + b, inner, weight[c]);
            }
        }
        partial[(size_t)item] = s;
    });
    for (i64 c = 0; c < channels; ++c) {
        double s = 0;
        for (i64 j = 0; j < per_channel; ++j) s += partial[(size_t)(c * per_channel + j)];
        dweight[c] = (T)s;
    }
}

#define RC_INSTANTIATE(T)                                                                                  \
    template typename ElementwiseKernels<T>::Forward forward_kernel<T>(Act);                               \
    template typename ElementwiseKernels<T>::Backward backward_kernel<T>(Act);                             \
    template void forward<T>(Act, const T*, T*, i64, T, uint8_t*, i64*, i64, i64);                         \
    template void backward<T>(Act, const T*, const T*, T*, i64, T);                                        \
    template void backward_mask<T>(Act, const T*, const uint8_t*, T*, i64, T);                             \
    template void prelu_forward<T>(const T*, const T*, T*, i64, i64, i64);                                 \
    template void prelu_backward<T>(const T*, const T*, const T*, T*, T*, i64, i64, i64);
RC_INSTANTIATE(float)
RC_INSTANTIATE(double)
#undef RC_INSTANTIATE

}  // namespace ops
}  // namespace relucore
