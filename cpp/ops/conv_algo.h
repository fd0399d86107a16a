// The convolution algorithm setting (set_conv_algo, relucore/conv.h) and the scan the transformed
// algorithms (Winograd, FFT) run before taking a layer: both mix every input of a tile or plane,
// so an inf or NaN, or values near overflow, would spread or overflow where the direct sum stays
// local and finite.
#pragma once
#include <atomic>
#include <limits>

#include "items.h"
#include "parallel.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {

enum ConvAlgo { kAlgoAuto = 0, kAlgoGemm = 1, kAlgoWinograd = 2, kAlgoFft = 3 };

// out[j] = max |a[j][i]| over i < n[j] (inf if any value is NaN or inf), for `count` <= 3 arrays in
// one parallel pass.
template <class T> void max_abs(int count, const T* const* a, const i64* n, double* out) {
    const auto k = conv_kernels<T>().max_abs;
    std::atomic<double> m[3] = {{0.0}, {0.0}, {0.0}};
    i64 total = 0;
    for (int j = 0; j < count; ++j) total += n[j];
    parallel_range(total, kGrainCopy * 8, 1024, 0, [&](i64 b, i64 e, int) {
        i64 base = 0;
        for (int j = 0; j < count; base += n[j++]) {
            const i64 lo = b > base ? b : base, hi = e < base + n[j] ? e : base + n[j];
            if (lo >= hi) continue;
            const double v = (double)k(a[j] + (lo - base), hi - lo);
            double cur = m[j].load();
            while (v > cur && !m[j].compare_exchange_weak(cur, v)) {
            }
        }
    });
    for (int j = 0; j < count; ++j) out[j] = m[j].load();
}

// True when ma and mb (bounds of two operands, or of their transforms) and terms * ma * mb stay
// below a quarter of the largest finite value: with `terms`, a bound on every intermediate of a
// transformed algorithm (transforms, products, sums), as the callers say. Otherwise the GEMM path
// runs.
// max_abs scans inputs once, in parallel (~1-3% of a layer); Winograd's channel-lane transforms
// take the same figures from what they read instead.
template <class T> bool tame(double ma, double mb, double terms) {
    const double limit = (double)std::numeric_limits<T>::max() / 4;
    return ma < limit && mb < limit && terms * ma * mb < limit;
}

}  // namespace ops
}  // namespace relucore
