// Linear layers over a (M, in) batch (contiguous buffers); GEMM by the backend in use
// (relucore/gemm.h).
#pragma once
#include <stdint.h>

#include "relucore/kernels.h"

namespace relucore {
namespace ops {

// y (M, out) = x (M, in) * w^T (in, out) + bias. x is stored (M, in), or (in, M) if x_t; w is
// stored (out, in), or (in, out) if w_t (the weight of `x @ W`).
template <class T>
void linear(const T* x, bool x_t, const T* w, bool w_t, const T* bias, T* y, i64 M, i64 in, i64 out);
// dx (M, in), db (out) and dw in w's stored layout, from dy (M, out).
template <class T>
void linear_backward(const T* dy, const T* x, bool x_t, const T* w, bool w_t, T* dx, T* dw, T* db, i64 M, i64 in,
                     i64 out);

}  // namespace ops
}  // namespace relucore
