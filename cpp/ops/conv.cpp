// conv2d forward/backward and im2col/col2im over whole NCHW batches.
//
// Threads: with at least as many (image, group) items as threads, each thread takes whole items
// with a single-threaded GEMM; otherwise items run one after another with each GEMM, im2col and
// col2im split across the threads. With our own GEMM (gemm_uses_own) the forward and dweight GEMMs
// build the column matrix block by block (memory: the GEMM's packed blocks per thread); with the
// BLAS, im2col fills one image's columns per thread first. Scratch is kept between calls
// (relucore/kernels.h). A fused activation is applied as each output element is stored (our
// GEMM's register tiles, Winograd's output transform) or, behind a GEMM with no epilogue to hook
// and in the depthwise kernel, to each output block right after it is written, while in cache.
// Before the GEMM path a layer may be taken by the depthwise kernel, FFTs (fft_conv.h), the
// few-tap direct kernel (small_conv.h) or Winograd (winograd.h), in that order.
#include <atomic>
#include <new>
#include <type_traits>
#include <vector>

#include "fft_conv.h"
#include "gemm.h"
#include "items.h"
#include "small_conv.h"
#include "winograd.h"
#include "relucore/conv.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {
namespace {

bool is_pointwise(const ConvGeom& g) {
    return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

// im2col of one image's channel slice, by rows; threaded when called outside a parallel region.
template <class T> void image_im2col(const T* x, T* cols, const ConvGeom& g, int nt) {
    const auto k = conv_kernels<T>().im2col;
    const i64 rows = g.C * g.kh * g.kw;
    nt = cap(nt, rows * g.OH * g.OW, kGrainCopy);
    if (nt <= 1) return k(x, cols, g, 0, rows);
    parallel_range(rows, 1, 1, nt, [&](i64 b, i64 e, int) { k(x, cols, g, b, e); });
}

// col2im of one image (cols const: the public col2im) or of our own buffer (may zero entries).
template <class T, class C> void image_col2im(C* cols, T* x, const ConvGeom& g, int nt) {
    const auto k = [&](i64 c0, i64 c1) {
        if constexpr (std::is_const<C>::value) conv_kernels<T>().col2im(cols, x, g, c0, c1);
        else conv_kernels<T>().col2im_owned(cols, x, g, c0, c1);
    };
    zero(x, g.C * g.H * g.W);
    nt = cap(nt, g.C * g.kh * g.kw * g.OH * g.OW, kGrainCopy);
    if (nt <= 1) return k(0, g.C);
    parallel_range(g.C, 1, 1, nt, [&](i64 b, i64 e, int) { k(b, e); });
}

}  // namespace

// Empty work returns before any loop: a loop over N (or planes) with nothing behind it could run
// for an absurd count (N = 2**40 images of 0 channels).
template <class T> void im2col(const T* x, T* cols, i64 N, const ConvGeom& g) {
    const SettingsScope settings;  // one kernel table, GEMM and algorithm for the whole call
    const i64 in = g.C * g.H * g.W, out = g.C * g.kh * g.kw * g.OH * g.OW;
    if (N == 0 || out == 0) return;
    if (in == 0) return zero(cols, N * out);
    for_items<T>(N, 0, N * out, [&](i64 n, T*, int nt) { image_im2col(x + n * in, cols + n * out, g, nt); });
}

template <class T> void col2im(const T* cols, T* x, i64 N, const ConvGeom& g) {
    const SettingsScope settings;
    const i64 in = g.C * g.H * g.W, out = g.C * g.kh * g.kw * g.OH * g.OW;
    if (N == 0 || in == 0) return;
    if (out == 0) return zero(x, N * in);
    for_items<T>(N, 0, N * out, [&](i64 n, T*, int nt) { image_col2im(cols + n * out, x + n * in, g, nt); });
}

// Direct convolution, one (output plane, input plane) pair at a time: for depthwise layers, where
// the GEMM path would make C calls with one-row weight matrices. Not for other layers with few
// column rows (1-channel images): measured slower there than the GEMM (docs/performance.md).
bool use_direct(const Conv2dShape& s) { return s.groups == s.C && s.groups > 1; }

template <class T>
void direct_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param) {
    const auto k = conv_kernels<T>().plane_conv;
    const ConvGeom& g = s.g;
    const i64 Cg = g.C, Fg = s.F / s.groups, K = g.kh * g.kw, in = s.H * s.W, out = g.OH * g.OW;
    parallel_runs(s.N * s.F, threads_for(s.N * s.F * out * Cg * K, kGrainCopy), [&](i64 p) {
        const i64 n = p / s.F, f = p % s.F, c0 = (f / Fg) * Cg;
        T* yp = y + p * out;
        for (i64 i = 0; i < out; ++i) yp[i] = bias ? bias[f] : T(0);
        for (i64 cl = 0; cl < Cg; ++cl)
            k(x + (n * s.C + c0 + cl) * in, w + (f * Cg + cl) * K, yp, g, cl == Cg - 1 ? act : kNormNone, param);
    });
}

template <class T>
void direct_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, const Conv2dShape& s) {
    const auto& t = conv_kernels<T>();
    const ConvGeom& g = s.g;
    const i64 Cg = g.C, Fg = s.F / s.groups, K = g.kh * g.kw, in = s.H * s.W, out = g.OH * g.OW;
    const int nt = threads_for(s.N * s.F * out * Cg * K, kGrainCopy);
    if (dx)
        parallel_runs(s.N * s.C, nt, [&](i64 p) {
            const i64 n = p / s.C, c = p % s.C, f0 = (c / Cg) * Fg, cl = c % Cg;
            zero(dx + p * in, in);
            for (i64 f = f0; f < f0 + Fg; ++f)
                t.plane_conv_backward_input(dy + (n * s.F + f) * out, w + (f * Cg + cl) * K, dx + p * in, g);
        });
    if (dw)  // per output channel, images in order: deterministic
        parallel_runs(s.F, nt, [&](i64 f) {
            const i64 c0 = (f / Fg) * Cg;
            zero(dw + f * Cg * K, Cg * K);
            for (i64 n = 0; n < s.N; ++n)
                for (i64 cl = 0; cl < Cg; ++cl)
                    t.plane_conv_backward_weight(dy + (n * s.F + f) * out, x + (n * s.C + c0 + cl) * in, dw + (f * Cg + cl) * K,
                                         g);
        });
}

namespace {

template <class T>
void conv2d_into(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param, double* sums,
                 bool& summed) {
    if (s.N == 0 || s.F == 0 || s.g.OH * s.g.OW == 0) return;
    if (use_direct(s)) return direct_forward(x, w, bias, y, s, act, param);
    if (fft_forward(x, w, bias, y, s, act, param)) return;
    if (small_conv_forward(x, w, bias, y, s, act, param, sums, &summed)) return;
    if (winograd_forward(x, w, bias, y, s, act, param)) return;
    const ConvGeom& g = s.g;
    const i64 Fg = s.F / s.groups, CK = g.C * g.kh * g.kw, OHW = g.OH * g.OW;
    const bool direct = is_pointwise(g);
    const bool fused = !direct && gemm_uses_own();  // our GEMM builds the columns block by block
    const i64 macs = s.N * s.F * CK * OHW;
    std::atomic<bool> ok{true};  // false: a GEMM's scratch allocation failed (raised after the threads)
    for_items<T>(s.N * s.groups, direct || fused ? 0 : CK * OHW, macs, [&](i64 item, T* cols, int nt) {  // nt: inner threads
        const i64 n = item / s.groups, gr = item % s.groups;
        const T* xg = x + (n * s.C + gr * g.C) * s.H * s.W;
        const T* wg = w + gr * Fg * CK;
        T* yg = y + (n * s.F + gr * Fg) * OHW;
        const T* bg = bias ? bias + gr * Fg : nullptr;
        if (fused) {  // bias added in the GEMM's first store, the activation in its last
            const auto k = gemm_kernels<T>().conv_forward;
            if (!par_blocks(nt, Fg, OHW, CK, [&](i64 i0, i64 i1, i64 j0, i64 j1) {
                    return k(i1 - i0, wg + i0 * CK, CK, bg ? bg + i0 : nullptr, xg, g, j0, j1, yg + i0 * OHW, OHW,
                             act, param);
                }))
                ok = false;
            return;
        }
        if (bias)  // the BLAS adds onto the bias rows (beta = 1)
            for (i64 f = 0; f < Fg; ++f)
                for (i64 p = 0; p < OHW; ++p) yg[f * OHW + p] = bg[f];
        const auto activate = gemm_kernels<T>().activate;
        if (CK == 0) {
            if (!bias) zero(yg, Fg * OHW);
            if (act != kNormNone) activate(yg, OHW, Fg, OHW, act, param);
            return;
        }
        const T beta = bias ? T(1) : T(0);
        const T* b = direct ? xg : cols;
        if (!direct) image_im2col(xg, cols, g, nt);
        // Each block activated right after its GEMM call, the calls those of the plain convolution
        // (OpenBLAS rounds a call's edge columns differently: split them and y would change).
        if (!par_blocks(nt, Fg, OHW, CK, [&](i64 i0, i64 i1, i64 j0, i64 j1) {
                T* yb = yg + i0 * OHW + j0;
                if (!gemm(Tr::N, Tr::N, i1 - i0, j1 - j0, CK, T(1), wg + i0 * CK, CK, b + j0, OHW, beta, yb, OHW))
                    return false;
                if (act != kNormNone) activate(yb, OHW, i1 - i0, j1 - j0, act, param);
                return true;
            }))
            ok = false;
    });
    if (!ok) throw std::bad_alloc();
}

}  // namespace

template <class T>
void conv2d(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param) {
    const SettingsScope settings;
    bool summed = false;
    conv2d_into(x, w, bias, y, s, act, param, static_cast<double*>(nullptr), summed);
}

template <class T>
bool conv2d_moments(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, double* sums) {
    const SettingsScope settings;
    bool summed = false;
    conv2d_into(x, w, bias, y, s, kNormNone, T(0), sums, summed);
    return summed;
}

template <class T>
void conv2d_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, const Conv2dShape& s) {
    const SettingsScope settings;
    const ConvGeom& g = s.g;
    const i64 Fg = s.F / s.groups, CK = g.C * g.kh * g.kw, OHW = g.OH * g.OW;
    const bool direct = is_pointwise(g);
    if (s.N == 0 || s.F == 0 || OHW == 0) {  // no gradient flows
        if (dx) zero(dx, s.N * s.C * s.H * s.W);
        if (dw) zero(dw, s.F * CK);
        if (db) zero(db, s.F);
        return;
    }
    if (db) {  // per plane, then per channel over the images in order: deterministic
        const int nt = threads_for(s.N * s.F * OHW, kGrainCopy);
        const auto sum = conv_kernels<T>().sum;
        std::vector<double> sums((size_t)(s.N * s.F));
        parallel_runs(s.N * s.F, nt, [&](i64 p) { sums[(size_t)p] = sum(dy + p * OHW, OHW); });
        bias_from_plane_sums(sums.data(), s.N, s.F, db);
    }
    if (!dx && !dw) return;
    if (use_direct(s)) return direct_backward(dy, x, w, dx, dw, s);
    fft_backward(dy, x, w, dx, dw, s);  // clears the gradients it computed
    if (!dx && !dw) return;
    // Winograd's gradients first, one after the other (they share scratch slots); each checks its
    // data as it reads them, and what it leaves (false) the GEMM path below computes
    const WinogradBackward wino = winograd_backward_plan(dx != nullptr, dw != nullptr, s);
    if (wino.dw && winograd_backward_weight(dy, x, dw, s)) dw = nullptr;
    if (wino.dx && winograd_backward_input(dy, w, dx, s)) dx = nullptr;
    if (!dx && !dw) return;
    // Work items are fixed chunks of images; each owns a dweight partial (the first image of a chunk
    // overwrites it), summed in chunk order. One chunk writes dweight itself.
    const i64 chunks = s.N < kDwChunks ? s.N : kDwChunks;
    const i64 wsize = s.F * CK;
    if (dw && (chunks == 0 || CK == 0 || OHW == 0)) {
        zero(dw, wsize);
        dw = nullptr;
    }
    T* partial = !dw || chunks == 1 ? dw : scratch<T>(kPartials, chunks * wsize);
    if (dw && !partial) throw std::bad_alloc();
    const bool fused = !direct && gemm_uses_own();  // dweight's GEMM builds the columns of x itself
    const bool x_cols = dw && !fused && !direct;  // dweight's GEMM reads x's columns from the buffer
    const i64 buffer = direct ? 0 : ((x_cols ? 1 : 0) + (dx ? 1 : 0)) * CK * OHW;  // columns of x, of dx
    // W^T of each group in our GEMM's packed-A layout (panels of mr rows, depth-major), once per call
    // rather than once per image; used by whole-image GEMMs (a split GEMM packs its own rows).
    const auto& gk = gemm_kernels<T>();
    const i64 wt_size = dx && !direct && gemm_uses_own() ? gk.packed_a_size(CK, Fg) : 0;
    T* wt = wt_size ? scratch<T>(kWinogradWeights, s.groups * wt_size) : nullptr;
    if (wt_size && !wt) throw std::bad_alloc();
    if (wt)  // W^T (CK x Fg) is the group's weights (Fg x CK) read transposed
        for (i64 gr = 0; gr < s.groups; ++gr) gk.pack_a_whole(1, CK, Fg, w + gr * Fg * CK, CK, wt + gr * wt_size);
    std::atomic<bool> ok{true};
    if (dw || dx) for_items<T>(chunks, buffer, 2 * s.N * s.F * CK * OHW, [&](i64 chunk, T* buf, int nt) {
        const i64 n0 = chunk * s.N / chunks, n1 = (chunk + 1) * s.N / chunks;
        T* cols = buf;
        T* dcols = x_cols ? buf + CK * OHW : buf;
        if (dw && fused)  // one call per group for all of the chunk's images
            for (i64 gr = 0; gr < s.groups; ++gr) {
                const T* xg = x + (n0 * s.C + gr * g.C) * s.H * s.W;
                const T* dyg = dy + (n0 * s.F + gr * Fg) * OHW;
                T* dwg = partial + chunk * wsize + gr * Fg * CK;
                const auto k = gemm_kernels<T>().conv_dweight;
                if (!par_blocks(nt, Fg, CK, (n1 - n0) * OHW, [&](i64 i0, i64 i1, i64 j0, i64 j1) {
                        return k(i1 - i0, n1 - n0, dyg + i0 * OHW, OHW, s.F * OHW, xg, s.C * s.H * s.W, g, j0, j1,
                                 T(0), dwg + i0 * CK, CK);
                    }))
                    ok = false;
            }
        for (i64 n = n0; n < n1; ++n)
            for (i64 gr = 0; gr < s.groups; ++gr) {
                const T* xg = x + (n * s.C + gr * g.C) * s.H * s.W;
                const T* dyg = dy + (n * s.F + gr * Fg) * OHW;
                const T* wg = w + gr * Fg * CK;
                T* dwg = dw ? partial + chunk * wsize + gr * Fg * CK : nullptr;
                const T beta = n == n0 ? T(0) : T(1);
                if (dw && !fused) {
                    if (!direct) image_im2col(xg, cols, g, nt);
                    if (!par_gemm(nt, Tr::N, Tr::T, Fg, CK, OHW, T(1), dyg, OHW, direct ? xg : cols, OHW, beta, dwg, CK))
                        ok = false;
                }
                if (dx) {
                    T* dxg = dx + (n * s.C + gr * g.C) * s.H * s.W;
                    if (Fg == 0 || OHW == 0 || CK == 0) {
                        zero(dxg, g.C * s.H * s.W);
                    } else if (direct) {
                        if (!par_gemm(nt, Tr::T, Tr::N, CK, OHW, Fg, T(1), wg, CK, dyg, OHW, T(0), dxg, OHW)) ok = false;
                    } else {
                        if (wt && nt <= 1) {
                            if (!gk.gemm_packed_a(CK, OHW, Fg, wt + gr * wt_size, dyg, OHW, dcols, OHW)) ok = false;
                        } else if (!par_gemm(nt, Tr::T, Tr::N, CK, OHW, Fg, T(1), wg, CK, dyg, OHW, T(0), dcols, OHW)) ok = false;
                        image_col2im(dcols, dxg, g, nt);
                    }
                }
            }
    });
    if (!ok) throw std::bad_alloc();
    if (dw && chunks > 1) {
        for (i64 i = 0; i < wsize; ++i) dw[i] = partial[i];
        for (i64 c = 1; c < chunks; ++c)
            for (i64 i = 0; i < wsize; ++i) dw[i] += partial[c * wsize + i];
    }
}

template <class T> bool dweight_is_dot_form(const Conv2dShape& s) {
    const ConvGeom& g = s.g;
    return s.groups == 1 && !use_direct(s) && !is_pointwise(g) && gemm_uses_own() &&
           g.C * g.kh * g.kw <= kDotFormTaps && !fft_may_take<T>(s) && !winograd_dweight_may_take(s);
}

#define RC_INSTANTIATE(T)                                                                                     \
    template bool dweight_is_dot_form<T>(const Conv2dShape&);                                                \
    template void im2col<T>(const T*, T*, i64, const ConvGeom&);                                              \
    template void col2im<T>(const T*, T*, i64, const ConvGeom&);                                              \
    template void conv2d<T>(const T*, const T*, const T*, T*, const Conv2dShape&, int, T);                    \
    template bool conv2d_moments<T>(const T*, const T*, const T*, T*, const Conv2dShape&, double*);          \
    template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*, const Conv2dShape&);
RC_INSTANTIATE(float)
RC_INSTANTIATE(double)
#undef RC_INSTANTIATE

}  // namespace ops
}  // namespace relucore
