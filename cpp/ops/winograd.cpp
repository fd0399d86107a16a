// Winograd F(2x2, 3x3) convolution over batches: per group of images, each input plane is copied
// zero-padded, transformed (V, 16 matrices of Cin x tiles), multiplied by the transformed kernels
// (U, 16 matrices of Cout x Cin) in 16 GEMMs, and the products transformed back (with the bias).
// Images are grouped so that a GEMM has >= 96 tile columns (a 14 x 14 output has only 49 tiles).
#include "winograd.h"

#include <string.h>

#include <atomic>
#include <limits>
#include <new>

#include "gemm.h"
#include "items.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {
namespace {

enum Algo { kAuto = 0, kGemm = 1, kWinograd = 2 };
std::atomic<int> g_algo{kAuto};
constexpr i64 kMinChannels = 16;  // below this the transforms cost more than the saved GEMM work
constexpr i64 kMinTiles = 96;     // tile columns per GEMM (images are grouped to reach it)

bool shape_ok(const ConvGeom& g, i64 cin, i64 cout, bool depthwise) {
    const int a = g_algo.load(std::memory_order_relaxed);
    if (a == kGemm || depthwise) return false;
    if (!(g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1)) return false;
    return a == kWinograd || (cin >= kMinChannels && cout >= kMinChannels);
}

// Winograd's transforms take differences of inputs (d0 - d2, ...): an inf there gives inf - inf =
// NaN where the direct sum gives +-inf, and large values can overflow in the transformed products
// where the direct sum would not (or to +-inf of both signs, then NaN). So the fast path is taken
// only when every input and kernel value is finite and 81 * channels * max|in| * max|w| stays below
// a quarter of the largest finite value: a bound on every intermediate of the transforms, the
// products and their sums (the direct sum's terms are then far from overflow too). Otherwise the
// GEMM path runs. The scan reads the inputs once, in parallel (~1-3% of a layer).
template <class T> double max_abs(const T* a, i64 n) {
    const auto k = conv_kernels<T>().max_abs;
    std::atomic<double> m{0.0};
    parallel_range(n, kGrainCopy * 8, 1024, 0, [&](i64 b, i64 e, int) {
        const double v = (double)k(a + b, e - b);
        double cur = m.load();
        while (v > cur && !m.compare_exchange_weak(cur, v)) {
        }
    });
    return m.load();
}

template <class T> bool tame(const T* in, i64 n_in, const T* w, i64 n_w, i64 channels) {
    const double mi = max_abs(in, n_in), mw = max_abs(w, n_w);
    const double limit = (double)std::numeric_limits<T>::max() / 4;
    return mi < limit && mw < limit && 81.0 * (double)channels * mi * mw < limit;  // inf fails every test
}

// U[gr][xi][r][l] = G k G^T for the 3x3 kernel k (r, l) of group gr: out channel r, in channel l for
// the forward; for the input gradient (flipped = true) in channel r, out channel l, and k = w[l][r]
// rotated by 180 degrees. rows x cols kernels per group.
template <class T> const T* transformed_weights(const T* w, i64 groups, i64 Fg, i64 Cg, bool flipped) {
    const i64 rows = flipped ? Cg : Fg, cols = flipped ? Fg : Cg;
    T* U = scratch<T>(kWinogradWeights, groups * 16 * Fg * Cg);
    if (!U) throw std::bad_alloc();
    const auto k = winograd_kernels<T>().weights;
    parallel_range(groups * rows, 1, 1, cap(max_threads(), groups * Fg * Cg * 16, kGrainCopy), [&](i64 b, i64 e, int) {
        for (i64 q = b; q < e; ++q) {
            const i64 gr = q / rows, r = q % rows;
            T* u = U + gr * 16 * Fg * Cg + r * cols;
            if (flipped)  // kernel (r <- l) at w[gr*Fg + l][r], element (i, j) at (2 - i, 2 - j)
                k(w + ((gr * Fg) * Cg + r) * 9 + 8, Cg * 9, -3, -1, cols, u, Fg * Cg);
            else
                k(w + ((gr * Fg + r) * Cg) * 9, 9, 3, 1, cols, u, Fg * Cg);
        }
    });
    return U;
}

struct Plan {
    i64 N, Cin, H, W, Cout, groups, ph, pw, OH, OW;  // in (N, Cin, H, W) -> out (N, Cout, OH, OW)
};

// out = the stride-1 3x3 correlation of in with the kernels whose transforms are U
// (groups x 16 x Cout_g x Cin_g), + bias (or null).
template <class T> void run(const T* in, const T* U, const T* bias, T* out, const Plan& p) {
    const auto& wk = winograd_kernels<T>();
    const i64 Cg = p.Cin / p.groups, Fg = p.Cout / p.groups;
    const i64 TH = (p.OH + 1) / 2, TW = (p.OW + 1) / 2, TPI = TH * TW;
    const i64 NI = p.N < (kMinTiles + TPI - 1) / TPI ? p.N : (kMinTiles + TPI - 1) / TPI;  // images per GEMM
    const i64 TWr = (TW + 15) / 16 * 16, ldx = 2 * TWr + 34, rows = 2 * TH + 2;  // padded plane
    const i64 vsz = 16 * Cg * NI * TPI, msz = 16 * Fg * NI * TPI, xsz = rows * ldx;
    const int mt = max_threads();
    const i64 image_groups = (p.N + NI - 1) / NI, items = image_groups * p.groups;
    const i64 work = 16 * Fg * Cg * TPI * p.N * p.groups;
    std::atomic<bool> ok{true};
    for_items<T>(items, vsz + msz + mt * xsz, work, [&](i64 item, T* buf, int nt) {
        const i64 gi = item / p.groups, gr = item % p.groups;
        const i64 n0 = gi * NI, ni = p.N - n0 < NI ? p.N - n0 : NI, NT = ni * TPI;
        T* V = buf;
        T* M = buf + vsz;
        T* xps = buf + vsz + msz;
        parallel_range(ni * Cg, 1, 1, cap(nt, ni * Cg * TPI * 16, kGrainCopy), [&](i64 b, i64 e, int t) {
            T* xp = xps + t * xsz;
            for (i64 q = b; q < e; ++q) {
                const i64 k = q / Cg, c = q % Cg;
                const T* plane = in + ((n0 + k) * p.Cin + gr * Cg + c) * p.H * p.W;
                for (i64 r = 0; r < rows; ++r) {  // zero-padded copy: the transform reads no bounds
                    T* row = xp + r * ldx;
                    const i64 ih = r - p.ph;
                    memset(row, 0, (size_t)ldx * sizeof(T));
                    if (ih < 0 || ih >= p.H) continue;
                    const i64 c0 = p.pw, n = p.W < ldx - c0 ? p.W : ldx - c0;
                    if (n > 0) memcpy(row + c0, plane + ih * p.W, (size_t)n * sizeof(T));
                }
                wk.input(xp, ldx, TH, TW, V + c * NT + k * TPI, Cg * NT);
            }
        });
        const T* Ug = U + gr * 16 * Fg * Cg;
        std::atomic<bool> gemm_ok{true};
        parallel_items(16, cap(nt, 16 * Fg * Cg * NT, kGrainFlops), [&](i64 xi) {
            if (!gemm(Tr::N, Tr::N, Fg, NT, Cg, T(1), Ug + xi * Fg * Cg, Cg, V + xi * Cg * NT, NT, T(0),
                      M + xi * Fg * NT, NT))
                gemm_ok = false;
        });
        if (!gemm_ok) {
            ok = false;
            return;
        }
        parallel_items(ni * Fg, cap(nt, ni * Fg * TPI * 16, kGrainCopy), [&](i64 q) {
            const i64 k = q / Fg, f = q % Fg;
            wk.output(M + f * NT + k * TPI, Fg * NT, TH, TW, bias ? bias[gr * Fg + f] : T(0),
                      out + ((n0 + k) * p.Cout + gr * Fg + f) * p.OH * p.OW, p.OH, p.OW);
        });
    });
    if (!ok) throw std::bad_alloc();
}

}  // namespace

bool set_conv_algo(const std::string& name) {
    const int a = name == "auto" ? kAuto : name == "gemm" ? kGemm : name == "winograd" ? kWinograd : -1;
    if (a < 0) return false;
    g_algo.store(a);
    return true;
}

std::string conv_algo() {
    const int a = g_algo.load();
    return a == kGemm ? "gemm" : a == kWinograd ? "winograd" : "auto";
}

template <class T> bool winograd_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
    const i64 Cg = s.g.C, Fg = s.F / s.groups;
    if (!shape_ok(s.g, Cg, Fg, s.groups == s.C && s.groups > 1) || s.N == 0) return false;
    if (!tame(x, s.N * s.C * s.H * s.W, w, s.F * Cg * 9, Cg)) return false;
    const T* U = transformed_weights(w, s.groups, Fg, Cg, false);
    run(x, U, bias, y, Plan{s.N, s.C, s.H, s.W, s.F, s.groups, s.g.ph, s.g.pw, s.g.OH, s.g.OW});
    return true;
}

template <class T> bool winograd_backward_input_applies(const T* dy, const T* w, const Conv2dShape& s) {
    return shape_ok(s.g, s.F / s.groups, s.g.C, s.groups == s.C && s.groups > 1) && s.g.ph <= 2 && s.g.pw <= 2 &&
           s.N > 0 && tame(dy, s.N * s.F * s.g.OH * s.g.OW, w, s.F * s.g.C * 9, s.F / s.groups);
}

template <class T> void winograd_backward_input(const T* dy, const T* w, T* dx, const Conv2dShape& s) {
    const i64 Cg = s.g.C, Fg = s.F / s.groups;
    const T* U = transformed_weights(w, s.groups, Fg, Cg, true);
    run(dy, U, static_cast<const T*>(nullptr), dx,
        Plan{s.N, s.F, s.g.OH, s.g.OW, s.C, s.groups, 2 - s.g.ph, 2 - s.g.pw, s.H, s.W});
}

template bool winograd_forward<float>(const float*, const float*, const float*, float*, const Conv2dShape&);
template bool winograd_forward<double>(const double*, const double*, const double*, double*, const Conv2dShape&);
template bool winograd_backward_input_applies<float>(const float*, const float*, const Conv2dShape&);
template bool winograd_backward_input_applies<double>(const double*, const double*, const Conv2dShape&);
template void winograd_backward_input<float>(const float*, const float*, float*, const Conv2dShape&);
template void winograd_backward_input<double>(const double*, const double*, double*, const Conv2dShape&);

}  // namespace ops
}  // namespace relucore
