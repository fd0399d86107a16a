// Linear layers over a (M, in) batch (contiguous buffers); GEMM by the backend in use
// (relucore/gemm.h).
#pragma once
#include <stdint.h>

#include "relucore/kernels.h"

namespace relucore {
namespace ops {

// y (M, out) = x (M, in) * w^T (in, out) + bias.
template <class T> void linear(const T* x, const T* w, const T* bias, T* y, i64 M, i64 in, i64 out);
template <class T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, i64 M, i64 in, i64 out);

}  // namespace ops
}  // namespace relucore
