// Linear layers: one GEMM each for y, dx and dweight, split over our threads (the BLAS stays
// single-threaded); the bias gradient in double, in row order. A transposed operand is read in
// place through the GEMM's transpose flags.
#include <string.h>

#include <new>
#include <vector>

#include "gemm.h"
#include "relucore/dispatch.h"
#include "relucore/linear.h"

namespace relucore {
namespace ops {
namespace {

// op(stored) as a GEMM operand: `t` says the stored rows are the used columns.
inline Tr op(bool t) { return t ? Tr::T : Tr::N; }
inline Tr flip(bool t) { return t ? Tr::N : Tr::T; }

// dw = dy^T x (out, in), stored as (in, out) for a transposed w. That layout is dw^T = x^T dy, a
// product only `out` columns wide: fewer than a register tile's (e.g. 10) waste most of each tile,
// so such a dw is computed (out, in) in scratch and transposed (measured: 256 x 512 -> 10).
template <class T>
bool dweight(int nt, const T* dy, const T* x, bool x_t, bool w_t, T* dw, i64 M, i64 in, i64 out) {
    const i64 ldx = x_t ? M : in;
    if (w_t && (out >= in || out >= gemm_align()))
        return par_gemm_any(nt, flip(x_t), Tr::N, in, out, M, T(1), x, ldx, dy, out, T(0), dw, out);
    T* d = w_t ? scratch<T>(kColumns, out * in) : dw;
    if (!d || !par_gemm_any(nt, Tr::T, op(x_t), out, in, M, T(1), dy, out, x, ldx, T(0), d, in)) return false;
    if (w_t)
        for (i64 i = 0; i < in; ++i)
            for (i64 o = 0; o < out; ++o) dw[i * out + o] = d[o * in + i];
    return true;
}

}  // namespace

template <class T>
void linear(const T* x, bool x_t, const T* w, bool w_t, const T* bias, T* y, i64 M, i64 in, i64 out) {
    const SettingsScope settings;  // one kernel table and GEMM for the whole call
    if (M == 0 || out == 0) return;
    if (bias)
        for (i64 m = 0; m < M; ++m) memcpy(y + m * out, bias, (size_t)out * sizeof(T));
    if (in == 0) {
        if (!bias) zero(y, M * out);
        return;
    }
    blas_threads(1);
    // y = x w^T: w^T is the stored (in, out) array itself when w_t.
    if (!par_gemm_any(max_threads(), op(x_t), flip(w_t), M, out, in, T(1), x, x_t ? M : in, w, w_t ? out : in,
                      bias ? T(1) : T(0), y, out))
        throw std::bad_alloc();
}

template <class T>
void linear_backward(const T* dy, const T* x, bool x_t, const T* w, bool w_t, T* dx, T* dw, T* db, i64 M, i64 in,
                     i64 out) {
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
    const i64 ldw = w_t ? out : in;
    if (dx) {  // dx = dy w
        if (empty) zero(dx, M * in);
        else if (!par_gemm_any(nt, Tr::N, op(w_t), M, in, out, T(1), dy, out, w, ldw, T(0), dx, in))
            throw std::bad_alloc();
    }
    if (dw) {
        if (empty) zero(dw, out * in);
        else if (!dweight(nt, dy, x, x_t, w_t, dw, M, in, out)) throw std::bad_alloc();
    }
}

#define RC_INSTANTIATE(T)                                                                                     \
    template void linear<T>(const T*, bool, const T*, bool, const T*, T*, i64, i64, i64);                     \
    template void linear_backward<T>(const T*, const T*, bool, const T*, bool, T*, T*, T*, i64, i64, i64);
RC_INSTANTIATE(float)
RC_INSTANTIATE(double)
#undef RC_INSTANTIATE

}  // namespace ops
}  // namespace relucore
