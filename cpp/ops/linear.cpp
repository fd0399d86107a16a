// Linear layers: one GEMM each for y, dx and dweight, split over our threads (the BLAS stays
// single-threaded); the bias gradient in double, in row order.
#include <string.h>

#include <new>
#include <vector>

#include "gemm.h"
#include "relucore/dispatch.h"
#include "relucore/linear.h"

namespace relucore {
namespace ops {

template <class T> void linear(const T* x, const T* w, const T* bias, T* y, i64 M, i64 in, i64 out) {
    const SettingsScope settings;  // one kernel table and GEMM for the whole call
    if (M == 0 || out == 0) return;
    if (bias)
        for (i64 m = 0; m < M; ++m) memcpy(y + m * out, bias, (size_t)out * sizeof(T));
    if (in == 0) {
        if (!bias) zero(y, M * out);
        return;
    }
    blas_threads(1);
    if (!par_gemm(max_threads(), Tr::N, Tr::T, M, out, in, T(1), x, in, w, in, bias ? T(1) : T(0), y, out))
        throw std::bad_alloc();
}

template <class T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, i64 M, i64 in, i64 out) {
    const SettingsScope settings;
    if (M == 0 || out == 0) {  // no gradient flows
        if (dx) zero(dx, M * in);
        if (dw) zero(dw, out * in);
        if (db) zero(db, out);
        return;
    }
    blas_threads(1);
    const int nt = max_threads();
    if (db) {
        std::vector<double> acc((size_t)out, 0.0);
        for (i64 m = 0; m < M; ++m)
            for (i64 o = 0; o < out; ++o) acc[(size_t)o] += (double)dy[m * out + o];
        for (i64 o = 0; o < out; ++o) db[o] = (T)acc[(size_t)o];
    }
    const bool empty = M == 0 || in == 0 || out == 0;
    if (dx) {
        if (empty) zero(dx, M * in);
        else if (!par_gemm(nt, Tr::N, Tr::N, M, in, out, T(1), dy, out, w, in, T(0), dx, in)) throw std::bad_alloc();
    }
    if (dw) {
        if (empty) zero(dw, out * in);
        else if (!par_gemm(nt, Tr::T, Tr::N, out, in, M, T(1), dy, out, x, in, T(0), dw, in)) throw std::bad_alloc();
    }
}

#define RC_INSTANTIATE(T)                                                                                     \
    template void linear<T>(const T*, const T*, const T*, T*, i64, i64, i64);                                 \
    template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, i64, i64, i64);
RC_INSTANTIATE(float)
RC_INSTANTIATE(double)
#undef RC_INSTANTIATE

}  // namespace ops
}  // namespace relucore
