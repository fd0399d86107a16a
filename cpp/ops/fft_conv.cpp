// FFT convolution over batches. With x_pad the zero-padded input placed in an n x n plane (n >=
// H + 2 ph, W + 2 pw), every output position's window lies inside the plane, so the circular
// correlation of x_pad with the kernel equals the layer's output:
//   forward  Y = sum_c X_c conj(W_fc)    dx_pad = IFFT(sum_f DY_f W_fc) cropped to x
//   dweight  dW_fc = Re IFFT(sum_pairs Z_c conj(D_f)) cropped to the kernel
// with Z = FFT(x_i + i x_(i+1)) and D = FFT(dy_i + i dy_(i+1)): the spectra of two real planes in
// one complex transform, separated by the inverse (real and imaginary parts) or, for dweight, by
// taking the real part (the cross terms land in the imaginary part). Spectra are scaled by 1/n^2
// in the inverse.
#include "fft_conv.h"

#include <math.h>

#include <new>
#include <utility>

#include "conv_algo.h"
#include "items.h"
#include "parallel.h"
#include "scratch.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {
namespace {

constexpr i64 kMaxSize = 96;  // transform lengths considered (the plan's tables hold their twiddles)
// Kernel spectra (C * F planes) kept for one call at most this large; beyond, the GEMM path runs.
constexpr double kMaxSpectraBytes = 256.0 * (1 << 20);
constexpr double kMaxThreadBytes = 64.0 * (1 << 20);  // the forward's spectra per thread
// "auto": kernels of at least this many taps, and an estimated cost below this share of the GEMM's.
constexpr i64 kMinTaps = 25;
constexpr double kMaxCostRatio = 0.7;

// Radices 8, 4, 2, 3, 5 in that order (fewest stages); false if n has another prime factor.
template <class T> bool make_plan(i64 n, FftPlan<T>& p) {
    p.n = n;
    p.stages = 0;
    i64 rest = n, span = 1, off = 0;
    for (int r : {8, 4, 2, 3, 5})
        while (rest % r == 0) {
            if (p.stages == kFftMaxStages || off + span * r > kFftMaxTwiddles) return false;
            p.radix[p.stages] = r, p.span[p.stages] = span, p.tw[p.stages] = off;
            for (i64 j = 0; j < span; ++j)
                for (int t = 0; t < r; ++t) {
                    const double a = -2 * M_PI * (double)(j * t) / (double)(span * r);
                    p.twr[off + j * r + t] = (T)cos(a), p.twi[off + j * r + t] = (T)sin(a);
                }
            off += span * r, span *= r, rest /= r, ++p.stages;
        }
    return rest == 1;
}

bool smooth(i64 n) {
    for (i64 r : {2, 3, 5})
        while (n % r == 0) n /= r;
    return n == 1;
}

// Transform sizes and what a call keeps: n, the row stride ld (a multiple of the lanes, padded off
// multiples of 256 bytes, where a stage's rows would share cache sets), plane = one spectrum's
// elements (real parts, then imaginary), pairs of images.
template <class T> struct Layout {
    i64 n = 0, ld = 0, m = 0, plane = 0, pairs = 0;
    T scale = T(0);
    FftPlan<T> plan;
};

template <class T> bool layout(const Conv2dShape& s, Layout<T>& l) {
    const i64 e = s.H + 2 * s.g.ph > s.W + 2 * s.g.pw ? s.H + 2 * s.g.ph : s.W + 2 * s.g.pw;
    i64 n = e > 2 ? e : 2;  // a plan has at least one stage (the last writes the spectrum)
    while (n <= kMaxSize && !smooth(n)) ++n;
    if (n > kMaxSize || !make_plan(n, l.plan)) return false;
    const i64 lanes = fft_kernels<T>().lanes;
    l.n = n;
    l.ld = (n + lanes - 1) / lanes * lanes;
    if ((l.ld * (i64)sizeof(T)) % 256 == 0) l.ld += lanes;
    l.m = n * l.ld;
    l.plane = 2 * l.m;
    l.pairs = (s.N + 1) / 2;
    l.scale = (T)(1.0 / ((double)n * (double)n));
    return (double)(s.C * s.F) * (double)l.plane * sizeof(T) <= kMaxSpectraBytes;
}

// Whether FFTs take a pass of this layer: the setting, the geometry (stride 1, dilation 1, one
// group), and under "auto" float64 with a large kernel where the estimated cost beats the GEMM's.
// Every pass (forward, dx, dweight) makes the same transforms: C * F kernel planes, pairs * (C + F)
// data planes, pairs * C * F pointwise products. A plane's transform was measured at ~10.4
// multiply-adds' time per n^2 log2 n (40 x 40, float64); a pointwise product, memory-bound, at 8.
// float32 stays on the GEMM under "auto": the FFT's rounding is relative to a plane's largest
// values rather than to each output's own terms.
template <class T> bool applies(const Conv2dShape& s, Layout<T>& l) {
    const ConvGeom& g = s.g;
    const int a = current_settings().conv_algo;
    if (a == kAlgoGemm || a == kAlgoWinograd) return false;
    if (!(g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && s.groups == 1)) return false;
    if (s.N == 0 || s.C == 0 || s.F == 0 || g.OH <= 0 || g.OW <= 0) return false;
    if (a == kAlgoAuto && (sizeof(T) != 8 || g.kh * g.kw < kMinTaps)) return false;  // before the plan's sines
    if (!layout(s, l)) return false;
    if (a == kAlgoFft) return true;
    const double n = (double)l.n, planes = (double)(s.C * s.F) + (double)l.pairs * (double)(s.C + s.F);
    const double fft = 10.4 * planes * n * n * log2(n) + 8.0 * (double)l.pairs * (double)(s.C * s.F) * (double)l.m;
    const double gemm = (double)s.N * (double)(s.F * s.C * g.kh * g.kw) * (double)(g.OH * g.OW);
    return fft < kMaxCostRatio * gemm;
}

// Plane c of images 2p and 2p + 1 (null past the batch) in an (N, planes, size) array: the two
// real planes of one complex transform.
template <class P> std::pair<P*, P*> pair_planes(P* a, i64 N, i64 planes, i64 size, i64 p, i64 c) {
    P* first = a + (2 * p * planes + c) * size;
    return {first, 2 * p + 1 < N ? first + planes * size : nullptr};
}

// Threads as for the GEMM path: kGrainFlops of its multiply-adds per thread.
int threads(const Conv2dShape& s) {
    return threads_for(s.N * s.F * s.C * s.g.kh * s.g.kw * s.g.OH * s.g.OW, kGrainFlops);
}

// G x J spectra (g, j) row-interleaved: row i of spectrum (g, j) at base + i * rows() + g * gs +
// j * u, u = 2 * ld (real parts, then imaginary ld further), gs = J * u, so the pointwise products
// find every spectrum's row i in one contiguous block (a per-plane layout read them far apart:
// 0.4x the speed for dy's 13 MB).
template <class T> struct Bank {
    T* base;
    i64 G, ld, gs;
    Bank(T* b, i64 groups, i64 per_group, i64 ld_) : base(b), G(groups), ld(ld_), gs(per_group * 2 * ld_) {}
    T* at(i64 g, i64 j) const { return base + g * gs + j * 2 * ld; }
    i64 rows() const { return G * gs; }  // a spectrum's row stride
    T* row(i64 i) const { return base + i * rows(); }
    i64 size(i64 n) const { return n * rows(); }  // elements of the whole bank
};

// f(item, work) for items [0, n) on nt threads, with two planes of work per thread.
template <class T, class F> void each(i64 n, int nt, const Layout<T>& l, F&& f) {
    parallel_runs(n, nt, [&](i64 q) {
        T* work = scratch<T>(kColumns, 2 * l.plane);
        if (!work) throw std::bad_alloc();
        f(q, work);
    });
}

}  // namespace

template <class T> bool fft_may_take(const Conv2dShape& s) {
    Layout<T> l;
    return applies(s, l);
}

template <class T>
bool fft_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param) {
    Layout<T> l;
    if (!applies(s, l)) return false;
    const i64 K = s.g.kh * s.g.kw, HW = s.H * s.W, OHW = s.g.OH * s.g.OW;
    const T* arrays[2] = {x, w};
    const i64 sizes[2] = {s.N * s.C * HW, s.F * s.C * K};
    double mx[2];
    max_abs(2, arrays, sizes, mx);
    // Each operand's transform (|Z| <= 2 n^2 max|x|, |W| <= K max|w|) and the inverse of the sum
    // over C of their products (<= n^2 times it) stay finite.
    const double n2 = (double)l.n * (double)l.n;
    if (!tame<T>(2.0 * n2 * mx[0], (double)K * mx[1], n2 * (double)s.C)) return false;
    const int nt = threads(s);
    const auto& k = fft_kernels<T>();
    const i64 C = s.C, F = s.F, pl = l.plane;
    // Items: blocks of pairs, each thread's spectra at most kMaxThreadBytes (else smaller blocks,
    // or the GEMM path when one pair's input spectra pass it).
    constexpr i64 kFilters = 4;
    i64 block = l.pairs >= 8 * nt ? 4 : l.pairs >= 4 * nt ? 2 : 1;
    const auto bytes = [&](i64 b) { return (double)((b * C + b * kFilters + 2) * pl) * sizeof(T); };
    while (block > 1 && bytes(block) > kMaxThreadBytes) block /= 2;
    if (bytes(block) > kMaxThreadBytes) return false;
    // The kernels' spectra W(f, c), contiguous planes (q = f * C + c).
    T* ws = scratch<T>(kWinogradWeights, F * C * pl);
    if (!ws) throw std::bad_alloc();
    each(F * C, nt, l, [&](i64 q, T* work) {
        k.forward(w + q * K, nullptr, s.g.kh, s.g.kw, 0, 0, l.plan, l.ld, ws + q * pl, l.ld, l.m, work);
    });
    // A block's spectra Z(p, c) stay in the thread's cache while the products Y(p, f) = sum_c
    // Z(p, c) conj(W(f, c)) of kFilters filters at a time are formed and transformed back (a whole
    // batch of Y, 13 MB on the CS231n layer, measured slower).
    const auto inverse = k.inverse[act];
    parallel_runs((l.pairs + block - 1) / block, nt, [&](i64 b) {
        const i64 p0 = b * block, pb = p0 + block < l.pairs ? block : l.pairs - p0;
        T* z = scratch<T>(kColumns, (pb * C + pb * kFilters + 2) * pl);
        if (!z) throw std::bad_alloc();
        T* ys = z + pb * C * pl;  // the products' spectra
        T* work = ys + pb * kFilters * pl;
        for (i64 q = 0; q < pb * C; ++q) {
            const i64 p = p0 + q / C, c = q % C;
            const auto [a, b] = pair_planes(x, s.N, C, HW, p, c);
            k.forward(a, b, s.H, s.W, s.g.ph, s.g.pw, l.plan, l.ld, z + q * pl, l.ld, l.m, work);
        }
        for (i64 f0 = 0; f0 < F; f0 += kFilters) {
            const i64 fb = f0 + kFilters < F ? kFilters : F - f0;
            k.cgemm(pb, fb, C, z, C * pl, pl, ws + f0 * C * pl, pl, C * pl, ys, fb * pl, pl, l.m, 0, l.m, 0, 1);
            for (i64 q = 0; q < pb * fb; ++q) {
                const i64 p = p0 + q / fb, f = f0 + q % fb;
                const T bf = bias ? bias[f] : T(0);
                const auto [ya, yb] = pair_planes(y, s.N, F, OHW, p, f);
                inverse(ys + q * pl, l.ld, l.m, l.plan, l.ld, work, 0, 0, s.g.OH, s.g.OW, l.scale, ya, bf, yb, bf,
                        param);
            }
        }
    });
    return true;
}

template <class T> void fft_backward(const T* dy, const T* x, const T* w, T*& dx, T*& dw, const Conv2dShape& s) {
    Layout<T> l;
    if ((!dx && !dw) || !applies(s, l)) return;
    const i64 K = s.g.kh * s.g.kw, OHW = s.g.OH * s.g.OW, HW = s.H * s.W;
    const T* arrays[3] = {dy, w, x};
    const i64 sizes[3] = {s.N * s.F * OHW, s.F * s.C * K, s.N * s.C * HW};
    double mx[3] = {0, 0, 0};  // max |dy|, |w|, |x|
    max_abs(dw ? 3 : 2, arrays, sizes, mx);
    // Each operand's transform (|D| <= 2 OHW max|dy|, |W| <= K max|w|, |Z| <= 2 HW max|x|) and
    // the inverse of the sums of products (over F for dx, the pairs for dweight; <= n^2 times
    // them) stay finite.
    const double n2 = (double)l.n * (double)l.n, md = 2.0 * (double)OHW * mx[0];
    const bool take_dx = dx && s.H > 0 && s.W > 0 && tame<T>(md, (double)K * mx[1], n2 * (double)s.F);
    const bool take_dw = dw && tame<T>(md, 2.0 * (double)HW * mx[2], n2 * (double)l.pairs);
    if (!take_dx && !take_dw) return;
    const int nt = threads(s);
    const auto& k = fft_kernels<T>();
    const i64 P = l.pairs, C = s.C, F = s.F, pl = l.plane;
    // dy's spectra D(p, f), once for both gradients; for dweight x's spectra Z(p, c) and the sums
    // S(f, c), for dx the kernels' spectra W(f, c) and the sums DX(p, c).
    Bank<T> d(nullptr, P, F, l.ld), z(nullptr, P, C, l.ld), sw(nullptr, F, C, l.ld), ws(nullptr, F, C, l.ld),
        sx(nullptr, P, C, l.ld);
    const i64 total =
        d.size(l.n) + (take_dw ? z.size(l.n) + sw.size(l.n) : 0) + (take_dx ? ws.size(l.n) + sx.size(l.n) : 0);
    if ((double)total * sizeof(T) > kMaxSpectraBytes) return;  // kept scratch stays bounded: the GEMM path
    T* next = scratch<T>(kPartials, total);
    if (!next) throw std::bad_alloc();
    for (Bank<T>* b : {&d, &z, &sw, &ws, &sx}) {
        if ((b == &z || b == &sw) && !take_dw) continue;
        if ((b == &ws || b == &sx) && !take_dx) continue;
        b->base = next;
        next += b->size(l.n);
    }
    each(P * F + (take_dw ? P * C : 0) + (take_dx ? F * C : 0), nt, l, [&](i64 q, T* work) {
        if (q < P * F) {
            const i64 p = q / F, f = q % F;
            const auto [a, b] = pair_planes(dy, s.N, F, OHW, p, f);
            k.forward(a, b, s.g.OH, s.g.OW, 0, 0, l.plan, l.ld, d.at(p, f), d.rows(), l.ld, work);
        } else if (take_dw && q < P * F + P * C) {
            q -= P * F;
            const i64 p = q / C, c = q % C;
            const auto [a, b] = pair_planes(x, s.N, C, HW, p, c);
            k.forward(a, b, s.H, s.W, s.g.ph, s.g.pw, l.plan, l.ld, z.at(p, c), z.rows(), l.ld, work);
        } else {
            q -= P * F + (take_dw ? P * C : 0);
            k.forward(w + q * K, nullptr, s.g.kh, s.g.kw, 0, 0, l.plan, l.ld, ws.at(q / C, q % C), ws.rows(), l.ld,
                      work);
        }
    });
    // The pointwise products row by row (FftKernels::cgemm), each row of D brought in once for both
    // gradients: DX(p, c) = sum_f D(p, f) W(f, c), then S(f, c) = sum_p conj(D(p, f)) Z(p, c) from
    // cache (dx first: it walks D's row in order, dweight jumps by a pair's filters; the other order
    // took 24.5% of the backward's time against 20.6%).
    const auto cgemm = k.cgemm;
    const i64 u = 2 * l.ld;
    parallel_runs(l.n, nt, [&](i64 r) {
        if (take_dx)
            cgemm(P, C, F, d.row(r), d.gs, u, ws.row(r), ws.gs, u, sx.row(r), sx.gs, u, l.ld, 0, l.ld, 0, 0);
        if (take_dw)
            cgemm(F, C, P, d.row(r), u, d.gs, z.row(r), z.gs, u, sw.row(r), sw.gs, u, l.ld, 0, l.ld, 1, 0);
    });
    // dw = Re IFFT(S) on the kernel's taps; dx = IFFT(DX) on x's positions
    each((take_dw ? F * C : 0) + (take_dx ? P * C : 0), nt, l, [&](i64 q, T* work) {
        if (take_dw && q < F * C) {
            k.inverse[kNormNone](sw.at(q / C, q % C), sw.rows(), l.ld, l.plan, l.ld, work, 0, 0, s.g.kh, s.g.kw,
                                 l.scale, dw + q * K, T(0), nullptr, T(0), T(0));
            return;
        }
        if (take_dw) q -= F * C;
        const i64 p = q / C, c = q % C;
        const auto [xa, xb] = pair_planes(dx, s.N, C, HW, p, c);
        k.inverse[kNormNone](sx.at(p, c), sx.rows(), l.ld, l.plan, l.ld, work, s.g.ph, s.g.pw, s.H, s.W, l.scale, xa,
                             T(0), xb, T(0), T(0));
    });
    if (take_dw) dw = nullptr;
    if (take_dx) dx = nullptr;
}

#define RC_INSTANTIATE(T)                                                                                  \
    template bool fft_may_take<T>(const Conv2dShape&);                                                     \
    template bool fft_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&, int, T);            \
    template void fft_backward<T>(const T*, const T*, const T*, T*&, T*&, const Conv2dShape&);
RC_INSTANTIATE(float)
RC_INSTANTIATE(double)
#undef RC_INSTANTIATE

}  // namespace ops
}  // namespace relucore
