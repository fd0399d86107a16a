// Whole-array operations on contiguous buffers: threading and channel geometry live here, the
// arithmetic in the dispatched kernel table. No Python, no SIMD types.
#pragma once
#include <stdint.h>

#include "relucore/kernels.h"

namespace relucore {
using i64 = int64_t;

namespace ops {

using relucore::Act;  // relucore/activations.inc

// The active table's single-threaded kernels for an activation (for callers that chunk themselves).
template <class T> typename ElementwiseKernels<T>::Forward forward_kernel(Act act);
template <class T> typename ElementwiseKernels<T>::Backward backward_kernel(Act act);

// y = act(x) over n elements. mask (optional): ceil(n/8) bytes, every bit written.
// counts (optional): `channels` entries, the number of y > 0 in each channel, where element i lies
// in channel (i / inner) % channels.
template <class T>
void forward(Act act, const T* x, T* y, i64 n, T param, uint8_t* mask, i64* counts, i64 channels, i64 inner);

// dx from dy and s (x or the forward output y: the list's `from`).
template <class T>
void backward(Act act, const T* dy, const T* s, T* dx, i64 n, T param);

// dx from dy and the forward mask (ops with mask = 1 in relucore/activations.inc).
template <class T>
void backward_mask(Act act, const T* dy, const uint8_t* mask, T* dx, i64 n, T param);

// PReLU over an (outer, channels, inner) array with one weight per channel.
template <class T>
void prelu_forward(const T* x, const T* weight, T* y, i64 outer, i64 channels, i64 inner);

// dweight[c] is summed in a fixed order of fixed-size pieces: the same bits for any thread count.
template <class T>
void prelu_backward(const T* dy, const T* x, const T* weight, T* dx, T* dweight, i64 outer, i64 channels,
                    i64 inner);

// Outputs above `bytes` use cache-bypassing stores; -1 restores the default (last-level cache size).
void set_stream_threshold(i64 bytes);

// The process-wide thread count of every op (cpp/ops/threads.cpp); set_num_threads clamps n to
// [1, ops::thread_limit()].
int get_num_threads();
void set_num_threads(int n);

}  // namespace ops
}  // namespace relucore
