// Winograd F(2x2, 3x3) convolution over batches: per block of the batch's tiles, the input planes
// are transformed (V, 16 matrices), multiplied by the transformed kernels (U, 16 matrices) and the
// products transformed back (with the bias). Most layers run with channels in the lanes (run_cl):
// V holds each tile as a row of channels, and each group of tiles runs its products and output
// transform in L1. The others run with tiles in the lanes (run): planes copied zero-padded, V as
// Cin x tiles matrices, 16 GEMMs (with our GEMM, U and V in its packed layouts and each register
// tile's products transformed back while in L1). The kernel gradient multiplies V by the
// transformed dy tiles, both with channels in the lanes. Channel-lane layers in float64 take 4x4 or
// 7x7 output tiles (36 or 81 transforms, F(4x4, 3x3) or F(7x7, 3x3)) where tile_size says so; the
// rest 2x2 (16).
#include "winograd.h"

#include <string.h>

#include <atomic>
#include <new>

#include "gemm.h"
#include "conv_algo.h"
#include "items.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {
namespace {

constexpr i64 kMinTiles = 96;  // 2x2 tiles (GEMM columns) of a work item; 4x4 tiles: a quarter, 7x7 a third

// What "auto" asks of a layer before taking Winograd; below each, the GEMM path measured faster
// (docs/performance.md): channels per group in and out (the Winograd GEMMs' depth), and for the
// gradients tiles in the whole batch (fewer than a register tile's width make narrow GEMMs and tiny
// dweight sums) and direct multiply-adds (smaller layers pay more for the transforms' fixed costs
// than they save). The forward only asks for 2^17 multiply-adds: on 22 layers of 0.15-7.2 M
// (batches of 1-8, 7x7 to 56x56 planes, 16-128 channels) it ran 0.43-0.92x the GEMM path's time in
// float64 and 0.49-0.89x in float32 (but float32 1x16x56x56 -> 16: 1.16x, as 16 channels on large
// planes are slower in the lanes at any batch), and at 0.06-0.11 M 0.83-1.14x.
constexpr i64 kMinChannels = 16;
constexpr i64 kMinBatchTiles = 48;
constexpr double kMinMacs = 1 << 23;
constexpr double kMinForwardMacs = 1 << 17;

// The channel-lane kernels of F(M x M, 3 x 3).
int cl_index(i64 M) { return M == 7 ? 2 : M == 4 ? 1 : 0; }

// 2x2 output tiles of one image of the layer.
i64 tiles_per_image(const ConvGeom& g) { return ((g.OH + 1) / 2) * ((g.OW + 1) / 2); }

// channel_rule: channels_ok (below) of the layer's or dx's channels, asked only under "auto";
// forward: the forward's size rule, else the gradients'.
bool shape_ok(const ConvGeom& g, i64 n, i64 cin, i64 cout, i64 groups, bool depthwise, bool channel_rule,
              bool forward = false) {
    const int a = current_settings().conv_algo;
    if (a == kAlgoGemm || a == kAlgoFft || depthwise) return false;
    if (!(g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1)) return false;
    if (a == kAlgoWinograd) return true;
    const double tiles = (double)n * (double)tiles_per_image(g);
    const double macs = 9.0 * (double)n * (double)g.OH * (double)g.OW * (double)cin * (double)cout * (double)groups;
    if (forward) return channel_rule && macs >= kMinForwardMacs;
    return channel_rule && tiles >= kMinBatchTiles && macs >= kMinMacs;
}

// The channel rule of the forward, dx and dweight alike, from grids of layers measured both ways
// (docs/performance.md): 16 channels both ways, in either dtype. float32's dx once asked for 32
// input channels or large planes (its tile-lane GEMMs with 16 rows lost 1.2x on 16 -> 32 channels on
// 14x14); with channels in the lanes, and the tile-lane path as it is now, 18 float32 layers with
// 16-24 input channels ran 0.61-0.88x the GEMM path's time (AVX2 0.56-0.62x).
bool channels_ok(i64 Cg, i64 Fg) { return Cg >= kMinChannels && Fg >= kMinChannels; }

// The stride between the 16 transformed matrices of n elements: n rounded up to 4 KiB plus 64 bytes.
// At a multiple of 4 KiB the 16 streams a transform reads or writes all map to one L1 set.
template <class T> i64 spaced(i64 n) {
    const i64 page = 4096 / (i64)sizeof(T);
    return (n + page - 1) / page * page + 64 / (i64)sizeof(T);
}

// The transformed kernels U[gr][xi] (16 matrices per group, `stride` apart): element (ci, co) is
// G k G^T for the 3x3 kernel k from in channel ci to out channel co. Forward: ci < Cg, co < Fg,
// k = w[co][ci]; input gradient (flipped): ci < Fg, co < Cg, k = w[ci][co] rotated by 180 degrees.
// For our GEMM (may_pack), when one depth block holds a matrix, they are written straight in its
// packed A layout (U^T as panels of mr out channels), so no GEMM packs them; else row-major ci x co
// (co contiguous: run_cl reads its rows as they are, the GEMMs read U transposed and pack it with
// a plain copy).
template <class T> struct Weights {
    const T* data;
    i64 stride;
    bool packed;
    int tile;  // M of F(M x M, 3 x 3): (M + 2)^2 matrices
};

template <class T>
Weights<T> transformed_weights(const T* w, i64 groups, i64 Fg, i64 Cg, bool flipped, bool may_pack = true,
                               int tile = 2) {
    const i64 rows = flipped ? Fg : Cg, cols = flipped ? Cg : Fg, xis = (tile + 2) * (tile + 2);
    const auto& gk = gemm_kernels<T>();
    const bool packed = may_pack && tile == 2 && gemm_uses_own() && gk.packed_a_size(cols, rows) > 0;
    const i64 mr = packed ? gk.mr : 0, size = (packed ? (cols + mr - 1) / mr * mr : cols) * rows;
    const i64 us = spaced<T>(size), lanes = winograd_kernels<T>().lanes;
    T* U = scratch<T>(kWinogradWeights, groups * xis * us);
    if (!U) throw std::bad_alloc();
    const auto k = winograd_kernels<T>().cl[cl_index(tile)].weights;
    const i64 lr = flipped ? Cg * 9 : 9, lc = flipped ? 9 : Cg * 9;  // kernel (r -> c): w[c][r], or w[r][c] rotated
    for (i64 gr = 0; gr < groups; ++gr)
        parallel_range(size, lanes, lanes, cap(max_threads(), size * xis, kGrainCopy), [&](i64 b, i64 e, int) {
            k(w + gr * Fg * Cg * 9, rows, cols, lr, lc, flipped ? 1 : 0, mr, b, e, U + gr * xis * us, us);
        });
    return Weights<T>{U, us, packed, tile};
}

struct Plan {
    i64 N, Cin, H, W, Cout, groups, ph, pw, OH, OW;  // in (N, Cin, H, W) -> out (N, Cout, OH, OW)
};

// dx: the forward of dy with the flipped kernels, padding 2 - p. dweight: tiles of the forward's.
Plan dx_plan(const Conv2dShape& s) {
    return Plan{s.N, s.F, s.g.OH, s.g.OW, s.C, s.groups, 2 - s.g.ph, 2 - s.g.pw, s.H, s.W};
}
Plan dweight_plan(const Conv2dShape& s) {
    return Plan{s.N, s.C, s.H, s.W, s.F, s.groups, s.g.ph, s.g.pw, s.g.OH, s.g.OW};
}

// The tiling of a plan in M x M tiles, and its work items: the batch's tiles in order (tile t =
// th * TW + tw of image n is tile n * TPI + t) cut in blocks of kMinTiles (a quarter of it for 4x4
// tiles: the same outputs; a third for 7x7), an item each (the last also takes the remainder: no
// small item left to one thread); an item may span images. The 2x2 and 4x4 block sizes are
// multiples of every GEMM tile width, so every item but the last is whole register tiles; 32 7x7
// tiles are not whole tiles of AVX2's 6 rows, yet ran 3-8% faster there than 30 (four float64
// layers, forward and dweight: 30 leaves 256 tiles unevenly split). Larger blocks
// measured slower once their transformed data left L2 (768 tiles: 16x256x14x14 forward 5.4 ->
// 9.6 ms, float32) and none faster beyond noise; 24 4x4 tiles ran within 5% of 16 to 96 on eight
// float64 layers' dweight. 7x7 tiles: dweight's products run over an item's tiles as their depth,
// and 8 tiles (the outputs of 24 4x4 tiles) ran 1.1-1.3x slower than 32 (best of 4 to 64 on four
// layers; the forward alike at 8, 16, 32 and 64). The split depends on the shape alone, never on the
// thread count.
struct Tiles {
    i64 M, TH, TW, TPI, total, block, ldx, rows;  // total: the batch's tiles; padded plane rows x ldx (M = 2)
    explicit Tiles(const Plan& p, i64 m = 2)
        : M(m), TH((p.OH + m - 1) / m), TW((p.OW + m - 1) / m), TPI(TH * TW), total(p.N * TPI),
          block(m == 2 ? kMinTiles : m == 4 ? kMinTiles / 4 : kMinTiles / 3), ldx(2 * ((TW + 15) / 16 * 16) + 34),
          rows(2 * TH + 2) {}
    i64 plane() const { return rows * ldx; }
    i64 items() const { return total < block ? 1 : total / block; }  // per group
    i64 max_cols() const { return total < block ? total : block + total % block; }  // the last item's
    i64 transforms() const { return (M + 2) * (M + 2); }
};

struct Item {
    i64 g0, g1;  // the batch's tiles g0 .. g1: the item's columns
    i64 cols() const { return g1 - g0; }
    i64 images(const Tiles& t) const { return (g1 - 1) / t.TPI - g0 / t.TPI + 1; }
};

Item item(const Tiles& t, i64 i) {
    return Item{i * t.block, i == t.items() - 1 ? t.total : (i + 1) * t.block};
}

// The item's tiles in its k-th image (k < images): image n, tiles t0 .. t1, tile t0's column.
struct Run {
    i64 n, t0, t1, col;
};

Run image_run(const Tiles& t, const Item& it, i64 k) {
    const i64 n = it.g0 / t.TPI + k, base = n * t.TPI;
    const i64 t0 = it.g0 > base ? it.g0 - base : 0, t1 = it.g1 < base + t.TPI ? it.g1 - base : t.TPI;
    return Run{n, t0, t1, base + t0 - it.g0};
}

// f(th, tw, n, off) for the row segments of tiles [t0, t1): n tiles from (th, tw), off = th*TW + tw - t0.
template <class F> void segments(const Tiles& t, i64 t0, i64 t1, F&& f) {
    for (i64 q = t0; q < t1;) {
        const i64 th = q / t.TW, tw = q % t.TW, n = t.TW - tw < t1 - q ? t.TW - tw : t1 - q;
        f(th, tw, n, q - t0);
        q += n;
    }
}

// f(th, tw, n, rows, off) for tiles [t0, t1) as rectangles of `rows` tile rows of n tiles from
// (th, tw): a partial first row, the whole rows, a partial last row; off = th*TW + tw - t0.
template <class F> void rectangles(const Tiles& t, i64 t0, i64 t1, F&& f) {
    for (i64 q = t0; q < t1;) {
        const i64 th = q / t.TW, tw = q % t.TW;
        const i64 rows = tw == 0 && t1 - q >= t.TW ? (t1 - q) / t.TW : 1;
        const i64 n = rows > 1 || t.TW - tw <= t1 - q ? t.TW - tw : t1 - q;
        f(th, tw, n, rows, q - t0);
        q += rows > 1 ? rows * t.TW : n;
    }
}

// V[xi * vs + c * cols + column] (c < Cg) = B^T d B of the item's tiles of the input planes of
// group gr; with nr > 0, the same columns cut in panels of nr (the GEMM's packed
// B: column q of channel c at (q / nr) * Cg * nr + c * nr + q % nr). xps: one padded plane per
// thread (only the rows the tiles read are filled).
template <class T>
void transform_input(const T* in, const Plan& p, const Tiles& t, const Item& it, i64 gr, T* V, i64 vs, T* xps,
                     int nt, i64 nr = 0) {
    const auto input = winograd_kernels<T>().input;
    const auto input_panels = winograd_kernels<T>().input_panels;
    const i64 Cg = p.Cin / p.groups, NT = it.cols();
    // a run of n tiles from tw reads columns up to 2 * (tw + ceil(n / L) * L) + 2 of its rows
    const i64 L = winograd_kernels<T>().lanes, reach = 2 * t.TW + 2 * L;
    parallel_range(it.images(t) * Cg, 1, 1, cap(nt, NT * Cg * 16, kGrainCopy), [&](i64 b, i64 e, int thread) {
        T* xp = xps + thread * t.plane();
        for (i64 q = b; q < e; ++q) {
            const i64 c = q % Cg;
            const Run run = image_run(t, it, q / Cg);
            const T* plane = in + (run.n * p.Cin + gr * Cg + c) * p.H * p.W;
            const i64 r0 = 2 * (run.t0 / t.TW), r1 = 2 * ((run.t1 - 1) / t.TW) + 4;
            for (i64 r = r0; r < r1; ++r) {  // the columns the transforms read: [0, reach)
                T* row = xp + r * t.ldx;
                const i64 ih = r - p.ph, c0 = p.pw < reach ? p.pw : reach;
                const i64 n = ih < 0 || ih >= p.H ? 0 : p.W < reach - c0 ? p.W : reach - c0;
                zero(row, c0);
                if (n > 0) memcpy(row + c0, plane + ih * p.W, (size_t)n * sizeof(T));
                zero(row + c0 + n, reach - c0 - n);
            }
            segments(t, run.t0, run.t1, [&](i64 th, i64 tw, i64 n, i64 off) {
                const T* src = xp + 2 * th * t.ldx + 2 * tw;
                const i64 col = run.col + off;
                if (nr) input_panels(src, t.ldx, n, col, V + c * nr, vs, Cg * nr);
                else input(src, t.ldx, 1, n, V + c * NT + col, vs);
            });
        }
    });
}

// run() with U in the GEMM's packed A layout: per item, the input transform writes packed B panels
// and each (mr kernels, nr tiles) block runs its 16 register tiles and their output transform in L1
// (no packing, and the products never go to L2 and back).
template <class T>
void run_fused(const T* in, const Weights<T>& U, const T* bias, T* out, const Plan& p, int act, T param) {
    const auto fused = winograd_kernels<T>().fused[act];
    const auto& gk = gemm_kernels<T>();
    const i64 Cg = p.Cin / p.groups, Fg = p.Cout / p.groups, mr = gk.mr, nr = gk.nr, L = winograd_kernels<T>().lanes;
    const Tiles t(p);
    const i64 panels_max = (t.max_cols() + nr - 1) / nr, msz = 16 * mr * nr;
    const i64 vsz = 16 * spaced<T>(Cg * nr * panels_max);
    const i64 work = 16 * Fg * Cg * t.TPI * p.N * p.groups;
    for_items<T>(t.items() * p.groups, vsz + max_threads() * (t.plane() + msz), work, [&](i64 i, T* buf, int nt) {
        const i64 gr = i % p.groups;
        const Item it = item(t, i / p.groups);
        const i64 NT = it.cols(), tp = (NT + nr - 1) / nr, fp = (Fg + mr - 1) / mr, vs = spaced<T>(Cg * nr * tp);
        T* V = buf;
        T* ms = buf + vsz + max_threads() * t.plane();
        transform_input(in, p, t, it, gr, V, vs, buf + vsz, nt, nr);
        const i64 edge = NT - (tp - 1) * nr, edge_read = (edge + L - 1) / L * L;  // the last panel's columns, read
        if (edge < edge_read)
            for (i64 xi = 0; xi < 16; ++xi)
                for (i64 c = 0; c < Cg; ++c) zero(V + xi * vs + (tp - 1) * Cg * nr + c * nr + edge, edge_read - edge);
        const i64 ys = p.OH * p.OW;
        parallel_range(fp * tp, 1, 1, cap(nt, 16 * Fg * Cg * NT, kGrainFlops), [&](i64 b, i64 e, int thread) {
            T* m = ms + thread * msz;
            for (i64 w = b; w < e; ++w) {
                const i64 fi = w % fp, j = w / fp, rows = Fg - fi * mr < mr ? Fg - fi * mr : mr;
                const i64 q0 = j * nr, cols = NT - q0 < nr ? NT - q0 : nr;
                const WinogradTiles<T> to{out + (gr * Fg + fi * mr) * ys, ys, p.Cout * ys, t.TPI, t.TW, p.OH, p.OW,
                                          bias ? bias + gr * Fg + fi * mr : nullptr, param};
                fused(Cg, U.data + gr * 16 * U.stride + fi * mr * Cg, U.stride, V + j * Cg * nr, vs, rows, it.g0 + q0,
                      cols, m, to);
            }
        });
    });
}

// What the channel-lane transforms read, from all their calls: the largest |value|, and whether one
// was inf or NaN. Those layers run first and ask after (tame) instead of a pass over the data
// before; for data that are not tame the caller recomputes on the GEMM path.
struct Scan {
    std::atomic<double> max{0};
    std::atomic<bool> bad{false};
    template <class T> void add(const T* s) {  // a kernel's scan: {max |value|, 0 or NaN}
        if (s[1] != s[1]) bad.store(true, std::memory_order_relaxed);
        double cur = max.load(std::memory_order_relaxed);
        while ((double)s[0] > cur && !max.compare_exchange_weak(cur, (double)s[0], std::memory_order_relaxed)) {
        }
    }
    double value() const { return bad.load() ? __builtin_inf() : max.load(); }
};

// V[xi * vs + column * Cp + c] = B^T d B of the item's tiles of the input planes of group gr,
// channels in the lanes (a tile's row of Cp: the channels rounded up to lanes, zero past Cg); what
// they read goes to scan.
template <class T>
void transform_input_cl(const T* in, const Plan& p, const Tiles& t, const Item& it, i64 gr, T* V, i64 vs, i64 Cp,
                        int nt, Scan& scan) {
    const auto& wk = winograd_kernels<T>();
    const auto input = wk.cl[cl_index(t.M)].input;
    const i64 Cg = p.Cin / p.groups, L = wk.lanes, cc = Cp / L;
    parallel_items(it.images(t) * cc, cap(nt, it.cols() * Cp * t.transforms(), kGrainCopy), [&](i64 u) {
        const Run run = image_run(t, it, u / cc);
        const i64 first = u % cc * L, nch = Cg - first < L ? Cg - first : L;
        const T* src = in + (run.n * p.Cin + gr * Cg + first) * p.H * p.W;
        rectangles(t, run.t0, run.t1, [&](i64 th, i64 tw, i64 n, i64 rows, i64 off) {
            T sc[2];
            input(src, p.H * p.W, nch, p.H, p.W, t.M * th - p.ph, t.M * tw - p.pw, n, rows, t.TW,
                  V + (run.col + off) * Cp + first, vs, Cp, sc);
            scan.add(sc);
        });
    });
}

// run() with channels in the lanes, F(2x2), F(4x4) or F(7x7) as U's transforms: per item, the input
// transform writes each tile as a row of channels, and each group of mr tiles runs its products
// over all the kernels and their output transform (U row-major: Cin rows of Cout kernels per
// matrix).
template <class T>
void run_cl(const T* in, const Weights<T>& U, const T* bias, T* out, const Plan& p, int act, T param, Scan& scan) {
    const auto& wk = winograd_kernels<T>();
    const auto fused = wk.cl[cl_index(U.tile)].fused[act];
    const i64 Cg = p.Cin / p.groups, Fg = p.Cout / p.groups, mr = wk.mr, L = wk.lanes;
    const i64 Cp = (Cg + L - 1) / L * L, Fp = (Fg + L - 1) / L * L;
    const Tiles t(p, U.tile);
    const i64 xis = t.transforms(), vsz = xis * spaced<T>(Cp * t.max_cols()), msz = xis * mr * Fp;
    const i64 work = xis * Fg * Cg * t.TPI * p.N * p.groups;
    for_items<T>(t.items() * p.groups, vsz + max_threads() * msz, work, [&](i64 i, T* buf, int nt) {
        const i64 gr = i % p.groups;
        const Item it = item(t, i / p.groups);
        const i64 NT = it.cols(), vs = spaced<T>(Cp * NT), groups = (NT + mr - 1) / mr, ys = p.OH * p.OW;
        T* V = buf;
        transform_input_cl(in, p, t, it, gr, V, vs, Cp, nt, scan);
        const WinogradTiles<T> to{out + gr * Fg * ys, ys, p.Cout * ys, t.TPI, t.TW, p.OH, p.OW,
                                  bias ? bias + gr * Fg : nullptr, param};
        parallel_range(groups, 1, 1, cap(nt, xis * Fg * Cg * NT, kGrainFlops), [&](i64 b, i64 e, int thread) {
            T* m = buf + vsz + thread * msz;
            for (i64 g = b; g < e; ++g) {
                const i64 q = g * mr, rows = NT - q < mr ? NT - q : mr;
                fused(Cg, U.data + gr * xis * U.stride, U.stride, Fg, V + q * Cp, vs, Cp, rows, Fg, it.g0 + q, m, to);
            }
        });
    });
}

// Whether a layer runs with channels in the lanes (run_cl) rather than tiles (run). The channel
// lanes measured faster on the layers of a grid (docs/performance.md) except where a transformed
// kernel matrix no longer fits L1 (Cg * Fg * sizeof(T) over 64 KiB: 128 float64 channels 1.04-1.13x
// slower), where a tile row fills a vector while the channels fill fewer than two (float32 16
// channels on 56x56 planes: 1.02-1.24x slower), and on float64 layers whose input and output
// exceed 8 MiB (16x64x56x56: 1.11-1.14x, 16x32x56x56: 1.14-1.26x slower; the same layers with 2-4
// images 0.95-1.03x).
template <class T> bool channel_lanes(const Plan& p) {
    const i64 Cg = p.Cin / p.groups, Fg = p.Cout / p.groups, L = winograd_kernels<T>().lanes;
    const double bytes = (double)p.N * (double)(p.Cin * p.H * p.W + p.Cout * p.OH * p.OW) * (double)sizeof(T);
    return Cg * Fg * (i64)sizeof(T) <= (64 << 10) && !((p.OW + 1) / 2 >= L && Cg < 2 * L) &&
           !(sizeof(T) == 8 && bytes > (double)(8 << 20));
}

// The tile size M of F(M x M, 3 x 3) for float64 layers with channels in the lanes: of 2, 4 and 7,
// the one that runs the fewest products ((M + 2)^2 per M x M tile, counting the tiles that overhang
// the output's edge; the smaller tile on a tie), among those whose (M + 2)^2 transformed kernel
// matrices (the forward's and dx's U, dweight's accumulators) stay within 1 MiB, an L2: past it
// dweight over 256 -> 256 channels on 14x14 ran 1.7x slower with 4x4 tiles. Else, and for float32, 2.
// Larger tiles round more: their transforms' entries grow (to 19 and 131 in A^T's rows against 3),
// about 30x float32's error for 4x4 tiles, which float64's 2^-53 absorbs (docs/performance.md).
template <class T> int tile_size(const Plan& p, bool cl) {
    const i64 Cg = p.Cin / p.groups, Fg = p.Cout / p.groups;
    if (!cl || sizeof(T) != 8) return 2;
    int best = 2;
    double fewest = (double)((p.OH + 1) / 2) * (double)((p.OW + 1) / 2) * 16;
    for (const int m : {4, 7}) {
        const double xis = (double)((m + 2) * (m + 2));
        const double products = (double)((p.OH + m - 1) / m) * (double)((p.OW + m - 1) / m) * xis;
        if (xis * (double)Cg * (double)Fg * (double)sizeof(T) <= (double)(1 << 20) && products < fewest) {
            best = m;
            fewest = products;
        }
    }
    return best;
}

// tame()'s terms (max|in| * max|w| or max|x| * max|dy|) for F(M x M, 3 x 3): the forward and dx
// |A^T [(G w G^T) . (B^T x B)] A| <= (A^T's row sum)^2 * (G's)^2 * (B^T's)^2 * channels, 9 * 9 for
// 2x2 tiles, 361 * 1 * 100 for 4x4, 131.04^2 * 3.8^2 * 15.94^2 for 7x7; dweight
// |G^T [sum V . (A dy A^T)] G| <= (B^T's)^2 * (A's)^2 * (G^T's)^2 per tile: 4 * 4 * 4 for 2x2 tiles,
// 100 * 225 * (5/3)^2 for 4x4, 254 * 127^2 * 10.06^2 for 7x7.
double forward_terms(int tile, i64 channels) {
    return (tile == 7 ? 6.3e7 : tile == 4 ? 36100.0 : 81.0) * (double)channels;
}
double dweight_terms(int tile, i64 tiles) { return (tile == 7 ? 4.2e8 : tile == 4 ? 62500.0 : 64.0) * (double)tiles; }
// Each operand's growth through its own transform (products of the row sums): B^T . B for the data,
// G . G^T for the kernels, A . A^T for dweight's dy.
double data_growth(int tile) { return tile == 7 ? 254.1 : tile == 4 ? 100.0 : 4.0; }
double kernel_growth(int tile) { return tile == 7 ? 14.4 : tile == 4 ? 1.0 : 2.25; }
double grad_growth(int tile) { return tile == 7 ? 16129.0 : tile == 4 ? 225.0 : 4.0; }

// Operands whose largest |values| ma and mb, their transforms (growth ga, gb) and the products and
// sums (terms) all stay far from overflow: then Winograd's result is the direct sum's up to rounding.
template <class T> bool fits(double ma, double ga, double mb, double gb, double terms) {
    return tame<T>(ma * ga, mb * gb, 0.0) && tame<T>(ma, mb, terms);
}

// out = act(the stride-1 3x3 correlation of in with the kernels whose transforms are U
// (groups x 16 x Cin_g x Cout_g, matrices `spaced` apart) + bias (or null)).
template <class T>
void run(const T* in, const Weights<T>& U, const T* bias, T* out, const Plan& p, int act = kNormNone, T param = T(0)) {
    if (U.packed) return run_fused(in, U, bias, out, p, act, param);
    const auto output = winograd_kernels<T>().output[act];
    const i64 Cg = p.Cin / p.groups, Fg = p.Cout / p.groups;
    const Tiles t(p);
    const i64 vsz = 16 * spaced<T>(Cg * t.max_cols()), msz = 16 * spaced<T>(Fg * t.max_cols());
    const i64 work = 16 * Fg * Cg * t.TPI * p.N * p.groups;
    const auto& gk = gemm_kernels<T>();
    std::atomic<bool> ok{true};
    for_items<T>(t.items() * p.groups, vsz + msz + max_threads() * t.plane(), work, [&](i64 i, T* buf, int nt) {
        const i64 gr = i % p.groups;
        const Item it = item(t, i / p.groups);
        const i64 NT = it.cols(), vs = spaced<T>(Cg * NT), ms = spaced<T>(Fg * NT);
        T* V = buf;
        T* M = buf + vsz;
        transform_input(in, p, t, it, gr, V, vs, buf + vsz + msz, nt);
        std::atomic<bool> gemm_ok{true};
        parallel_items(16, cap(nt, 16 * Fg * Cg * NT, kGrainFlops), [&](i64 xi) {
            const T* u = U.data + (gr * 16 + xi) * U.stride;
            const bool done = U.packed ? gk.gemm_packed_a(Fg, NT, Cg, u, V + xi * vs, NT, M + xi * ms, NT)
                                       : gemm(Tr::T, Tr::N, Fg, NT, Cg, T(1), u, Fg, V + xi * vs, NT, T(0),
                                              M + xi * ms, NT);
            if (!done) gemm_ok = false;
        });
        if (!gemm_ok) {
            ok = false;
            return;
        }
        parallel_items(it.images(t) * Fg, cap(nt, NT * Fg * 16, kGrainCopy), [&](i64 q) {
            const i64 f = q % Fg;
            const Run run = image_run(t, it, q / Fg);
            const T b = bias ? bias[gr * Fg + f] : T(0);
            T* y = out + (run.n * p.Cout + gr * Fg + f) * p.OH * p.OW;
            segments(t, run.t0, run.t1, [&](i64 th, i64 tw, i64 n, i64 off) {
                const i64 width = p.OW - 2 * tw < 2 * n ? p.OW - 2 * tw : 2 * n;  // this segment's outputs only
                output(M + f * NT + run.col + off, ms, 1, n, b, y + 2 * th * p.OW + 2 * tw, p.OH - 2 * th,
                       width, p.OW, param);
            });
        });
    });
    if (!ok) throw std::bad_alloc();
}

// The forward of `in` (the plan's input) with the kernels w (flipped: dx's), if its data fit (see
// winograd_forward); false: not taken, out possibly written.
template <class T>
bool forward_checked(const T* in, const T* w, const T* bias, T* out, const Plan& pl, i64 Fg, i64 Cg, bool flipped,
                     int act, T param) {
    const bool cl = channel_lanes<T>(pl);
    const int tile = tile_size<T>(pl, cl);
    const double terms = forward_terms(tile, pl.Cin / pl.groups);
    const T* arrays[2] = {w, in};
    const i64 sizes[2] = {pl.groups * Fg * Cg * 9, pl.N * pl.Cin * pl.H * pl.W};
    double m[2] = {0, 0};
    max_abs(cl ? 1 : 2, arrays, sizes, m);  // with channels in the lanes the transforms scan the data
    if (!fits<T>(m[1], data_growth(tile), m[0], kernel_growth(tile), terms)) return false;
    const Weights<T> U = transformed_weights(w, pl.groups, Fg, Cg, flipped, !cl, tile);
    if (!cl) {
        run(in, U, bias, out, pl, act, param);
        return true;
    }
    Scan scan;
    run_cl(in, U, bias, out, pl, act, param, scan);
    return fits<T>(scan.value(), data_growth(tile), m[0], kernel_growth(tile), terms);
}

}  // namespace

// Winograd's transforms take differences of inputs (d0 - d2, ...): an inf gives inf - inf = NaN
// where the direct sum gives +-inf; fits() also keeps the transforms' growth and the products from
// overflowing. The weights are scanned first; the data too on tiles in the lanes, while with
// channels in the lanes their transforms scan what they read and the check comes after the layer
// (false: the caller's GEMM path overwrites the result).
template <class T>
bool winograd_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int act, T param) {
    const i64 Cg = s.g.C, Fg = s.F / s.groups;
    if (!shape_ok(s.g, s.N, Cg, Fg, s.groups, s.groups == s.C && s.groups > 1, channels_ok(Cg, Fg), true) || s.N == 0)
        return false;
    const Plan pl{s.N, s.C, s.H, s.W, s.F, s.groups, s.g.ph, s.g.pw, s.g.OH, s.g.OW};
    return forward_checked(x, w, bias, y, pl, Fg, Cg, false, act, param);
}

bool winograd_dweight_may_take(const Conv2dShape& s) {
    const i64 Cg = s.g.C, Fg = s.F / s.groups;
    const bool depthwise = s.groups == s.C && s.groups > 1;
    return s.N > 0 && shape_ok(s.g, s.N, Cg, Fg, s.groups, depthwise, channels_ok(Cg, Fg));
}

WinogradBackward winograd_backward_plan(bool want_dx, bool want_dw, const Conv2dShape& s) {
    const i64 Cg = s.g.C, Fg = s.F / s.groups;
    const bool depthwise = s.groups == s.C && s.groups > 1;
    want_dx = want_dx && s.N > 0 && s.H > 0 && s.W > 0 && s.g.ph <= 2 && s.g.pw <= 2 &&
              shape_ok(s.g, s.N, Fg, Cg, s.groups, depthwise, channels_ok(Cg, Fg));  // an empty dx: no tiles
    return WinogradBackward{want_dx, want_dw && winograd_dweight_may_take(s)};
}

// The forward of dy with the flipped kernels; the data checked as in winograd_forward.
template <class T> bool winograd_backward_input(const T* dy, const T* w, T* dx, const Conv2dShape& s) {
    return forward_checked(dy, w, static_cast<const T*>(nullptr), dx, dx_plan(s), s.F / s.groups, s.g.C, true,
                           kNormNone, T(0));
}

// dw = the sum over images and tiles of V(x) . (A dy A^T): per item, both transforms with L
// channels (filters) in the lanes write each tile as a row of depth-major operands (D: tiles x Fp
// filters, V: tiles x Cp channels), the products M[xi] (Fg x Cg) += D^T V run over them
// unpacked, then G^T M G. Items are split into fixed chunks, each summing into its own M (the sums
// do not depend on the thread count); the chunks are added in order at the end. The transforms
// scan x and dy: false (dw not written) if they are not tame.
template <class T> bool winograd_backward_weight(const T* dy, const T* x, T* dw, const Conv2dShape& s) {
    const i64 Cg = s.g.C, Fg = s.F / s.groups;
    const Plan p = dweight_plan(s);
    const Tiles t(p, tile_size<T>(p, true));
    const auto& wk = winograd_kernels<T>();
    const auto& ck = wk.cl[cl_index(t.M)];
    const i64 L = wk.lanes, Cp = (Cg + L - 1) / L * L, Fp = (Fg + L - 1) / L * L;  // a tile's row in V and D
    const i64 fc = Fp / L;  // lane chunks of filters
    const i64 items = t.items(), chunks = items < kDwChunks ? items : kDwChunks, xis = t.transforms();
    const i64 vsz = xis * spaced<T>(Cp * t.max_cols()), dsz = xis * spaced<T>(Fp * t.max_cols());
    const i64 ms = spaced<T>(Fg * Cg), msz = s.groups * xis * ms;
    T* Ms = scratch<T>(kPartials, chunks * msz);
    if (!Ms) throw std::bad_alloc();
    Scan xs, dys;
    for_items<T>(chunks, vsz + dsz, xis * Fg * Cg * t.TPI * s.N * s.groups,
                 [&](i64 chunk, T* buf, int nt) {
        const i64 i0 = chunk * items / chunks, i1 = (chunk + 1) * items / chunks;
        T* V = buf;
        T* D = buf + vsz;
        for (i64 i = i0; i < i1; ++i)
            for (i64 gr = 0; gr < s.groups; ++gr) {
                const Item it = item(t, i);  // the same for every group
                const i64 NT = it.cols(), vs = spaced<T>(Cp * NT), ds = spaced<T>(Fp * NT);
                transform_input_cl(x, p, t, it, gr, V, vs, Cp, nt, xs);
                parallel_items(it.images(t) * fc, cap(nt, NT * Fp * xis, kGrainCopy), [&](i64 u) {
                    const Run run = image_run(t, it, u / fc);
                    const i64 first = u % fc * L, nch = Fg - first < L ? (Fg > first ? Fg - first : 0) : L;
                    const T* src = nch == 0 ? nullptr  // a zero chunk of the filters' padding
                                            : dy + (run.n * s.F + gr * Fg + first) * p.OH * p.OW;
                    segments(t, run.t0, run.t1, [&](i64 th, i64 tw, i64 n, i64 off) {
                        T sc[2];
                        ck.output_grad(src, p.OH * p.OW, nch, p.OH, p.OW, t.M * th, t.M * tw, n,
                                       D + (run.col + off) * Fp + first, ds, Fp, sc);
                        dys.add(sc);
                    });
                });
                T* M = Ms + chunk * msz + gr * xis * ms;
                parallel_items(xis, cap(nt, xis * Fg * Cg * NT, kGrainFlops), [&](i64 xi) {
                    wk.dw_products(NT, D + xi * ds, Fp, V + xi * vs, Cp, Fg, Cg, M + xi * ms, Cg, i != i0);
                });
            }
    });
    if (!fits<T>(xs.value(), data_growth(t.M), dys.value(), grad_growth(t.M), dweight_terms(t.M, t.total)))
        return false;
    parallel_range(s.F, 1, 1, cap(max_threads(), s.F * Cg * xis * chunks, kGrainCopy), [&](i64 b, i64 e, int) {
        for (i64 f = b; f < e; ++f) {
            const i64 gr = f / Fg, fl = f % Fg;
            ck.weights_grad(Ms + gr * xis * ms + fl * Cg, ms, chunks, msz, Cg, dw + f * Cg * 9, 9);
        }
    });
    return true;
}

template bool winograd_forward<float>(const float*, const float*, const float*, float*, const Conv2dShape&, int,
                                      float);
template bool winograd_forward<double>(const double*, const double*, const double*, double*, const Conv2dShape&, int,
                                       double);
template bool winograd_backward_input<float>(const float*, const float*, float*, const Conv2dShape&);
template bool winograd_backward_input<double>(const double*, const double*, double*, const Conv2dShape&);
template bool winograd_backward_weight<float>(const float*, const float*, float*, const Conv2dShape&);
template bool winograd_backward_weight<double>(const double*, const double*, double*, const Conv2dShape&);

}  // namespace ops
}  // namespace relucore
