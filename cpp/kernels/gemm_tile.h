// The GEMM's register tile, shared by gemm.cpp (its blocked loops) and winograd.cpp (the
// forward's products fused with their output transform): MR rows of C by NV vectors, over panels
// packed as gemm.cpp's pack_a (kc x MR, depth-major) and pack_b (kc x NR) lay them out.
#pragma once
#include "isa.h"

namespace relucore {
namespace RC_NS {
namespace {

// Register tile: MR rows of C by NV vectors (MR*NV accumulators + NV B vectors + 1 broadcast must
// fit the register file: 8*3+3+1 of 32 zmm, 6*2+2+1 of 16 ymm).
#if defined(RC_ISA_AVX512)
constexpr int kMR = 8, kNV = 3;
#elif defined(RC_ISA_AVX2)
constexpr int kMR = 6, kNV = 2;
#else
constexpr int kMR = 4, kNV = 4;
#endif
template <class T> constexpr i64 nr() { return kNV * VecOf<T>::type::L; }

// C tile (rows x cols, at most MR x NV*L) = acc + beta * C, where acc = the packed panels' product
// over kc; then op.fwd of it if `last` (the conv forward's activation, after the last depth block).
// beta == 0 never reads C (it may hold NaN or garbage).
template <class T, int NV, class Op>
void tile(i64 kc, const T* __restrict a, const T* __restrict b, T* c, i64 ldc, i64 rows, i64 cols, T beta,
          const T* bias, Op op, bool last) {
    using V = typename VecOf<T>::type;
    constexpr i64 NR = nr<T>();
    V acc[kMR][NV];
    for (int i = 0; i < kMR; ++i)
        for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();
    for (i64 p = 0; p < kc; ++p, a += kMR, b += NR) {
        V bv[NV];
        for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * V::L);
        for (int i = 0; i < kMR; ++i) {
            const V av = V::set1(a[i]);
            for (int j = 0; j < NV; ++j) acc[i][j] = mul_add(av, bv[j], acc[i][j]);
        }
    }
    if (bias)  // the epilogue of the first depth block: acc + bias[row] (conv forward, beta = 0)
        for (int i = 0; i < kMR; ++i) {
            const V vbias = V::set1(i < rows ? bias[i] : T(0));
            for (int j = 0; j < NV; ++j) acc[i][j] = acc[i][j] + vbias;
        }
    const V vb = V::set1(beta);
    const auto out = [&](V v) { return last ? op.fwd(v) : v; };  // Identity: no code
    if (rows == kMR && cols == NV * V::L) {
        for (int i = 0; i < kMR; ++i)
            for (int j = 0; j < NV; ++j) {
                T* p = c + i * ldc + j * V::L;
                out(beta == T(0) ? acc[i][j] : mul_add(vb, V::load(p), acc[i][j])).store(p);
            }
        return;
    }
    for (int i = 0; i < kMR; ++i) {
        if (i >= rows) break;
        for (int j = 0; j < NV; ++j) {
            T* p = c + i * ldc + j * V::L;
            const i64 n = cols - j * V::L;
            if (n >= V::L) out(beta == T(0) ? acc[i][j] : mul_add(vb, V::load(p), acc[i][j])).store(p);
            else if (n > 0) out(beta == T(0) ? acc[i][j] : mul_add(vb, V::load_tail(p, n), acc[i][j])).store_tail(p, n);
        }
    }
}

// The narrowest tile that covers `cols` (edge panels of a narrow C do not pay for NV vectors).
template <class T, int NV, class Op>
void tile_for(i64 kc, const T* a, const T* b, T* c, i64 ldc, i64 rows, i64 cols, T beta, const T* bias, Op op,
              bool last) {
    using V = typename VecOf<T>::type;
    if constexpr (NV > 1) {
        if (cols <= (NV - 1) * V::L) return tile_for<T, NV - 1>(kc, a, b, c, ldc, rows, cols, beta, bias, op, last);
    }
    tile<T, NV>(kc, a, b, c, ldc, rows, cols, beta, bias, op, last);
}

}  // namespace
}  // namespace RC_NS
}  // namespace relucore
