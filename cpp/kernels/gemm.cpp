// Single-threaded GEMM, row-major: C = alpha * op(A) op(B) + beta * C, written once against the
// vector wrapper. Goto/BLIS blocking: a KC x NC block of op(B) is packed into NR-wide panels that
// stay in L2, an MC x KC block of op(A) into MR-row panels (one stays in L1), and a register tile
// of MR rows x NV vectors accumulates over KC. Packing zero-pads the edges, so the inner loop has
// no tail; only the stores of edge tiles are masked. cpp/ops splits calls across threads.
#include "isa.h"
#include "act_ops.h"
#include "gemm_tile.h"

namespace relucore {
namespace RC_NS {
namespace {

constexpr i64 kKC = 256;             // depth of one block: an A panel is MR*KC elements (8 KB float)
constexpr i64 kMC = 256 / kMR * kMR;  // rows of A packed at a time (every conv layer here: all of them)
constexpr i64 kL2Bytes = 512 << 10;  // budget for the packed B block (KC x NC)

template <class T> constexpr i64 nc() { return kL2Bytes / (kKC * (i64)sizeof(T)) / nr<T>() * nr<T>(); }

// Packing buffers come from the shared per-thread scratch (relucore/kernels.h): packed B, packed A
// and the im2col block of the fused conv GEMMs, at most KC*NC + MC*KC + KC*NC elements (~1.2 MB
// float) whatever the GEMM's size.
template <class T> T* scratch(ScratchSlot slot, i64 n) { return static_cast<T*>(scratch_bytes(slot, n * (i64)sizeof(T))); }

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols, in L x L register transposes; partial
// blocks load zeros and store masked (an MR = 8 row panel is half a 16-lane block).
template <class T> void transpose_copy(const T* src, i64 lds, i64 rows, i64 cols, T* dst, i64 ldd) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    for (i64 r = 0; r < rows; r += L) {
        const i64 nr_ = rows - r < L ? rows - r : L;
        for (i64 c = 0; c < cols; c += L) {
            const i64 nc_ = cols - c < L ? cols - c : L;
            V v[L];
            for (int i = 0; i < L; ++i)
                v[i] = i >= nr_ ? V::zero()
                       : nc_ == L ? V::load(src + (r + i) * lds + c)
                                  : V::load_tail(src + (r + i) * lds + c, nc_);
            transpose(v);
            for (int i = 0; i < nc_; ++i) {
                T* p = dst + (c + i) * ldd + r;
                if (nr_ == L) v[i].store(p);
                else v[i].store_tail(p, nr_);
            }
        }
    }
}

// op(A)(i, p) for rows [i0, i0+mc) and depths [p0, p0+kc) into MR-row panels, each kc x MR
// (depth-major), rows past mc zero; scaled by alpha.
template <class T>
void pack_a(bool ta, const T* a, i64 lda, i64 i0, i64 mc, i64 p0, i64 kc, T alpha, T* dst) {
    for (i64 ir = 0; ir < mc; ir += kMR, dst += kMR * kc) {
        const i64 rows = mc - ir < kMR ? mc - ir : kMR;
        if (ta) {  // op(A)(i, p) = a[p * lda + i]: MR contiguous values per depth
            using V = typename VecOf<T>::type;
            const V va = V::set1(alpha);
            for (i64 p = 0; p < kc; ++p) {
                const T* src = a + (p0 + p) * lda + i0 + ir;
                T* d = dst + p * kMR;
                for (i64 i = 0; i < kMR; i += V::L) {  // masked past `rows` (loads zero) and past MR
                    const i64 n = rows - i, w = kMR - i;
                    const V v = va * (n >= V::L ? V::load(src + i) : n > 0 ? V::load_tail(src + i, n) : V::zero());
                    if (w >= V::L) v.store(d + i);
                    else v.store_tail(d + i, w);
                }
            }
        } else {  // op(A)(i, p) = a[i * lda + p]
            transpose_copy(a + (i0 + ir) * lda + p0, lda, rows, kc, dst, kMR);
            for (i64 p = 0; p < kc; ++p) {
                T* d = dst + p * kMR;
                if (alpha != T(1))
                    for (i64 i = 0; i < rows; ++i) d[i] *= alpha;
                for (i64 i = rows; i < kMR; ++i) d[i] = T(0);
            }
        }
    }
}

// op(B)(p, j) for depths [p0, p0+kc) and columns [j0, j0+ncols) into NR-wide panels, each kc x NR,
// columns past ncols zero up to the next whole vector (the narrowest tile reads no further).
template <class T>
void pack_b(bool tb, const T* b, i64 ldb, i64 p0, i64 kc, i64 j0, i64 ncols, T* dst) {
    constexpr i64 NR = nr<T>(), L = VecOf<T>::type::L;
    for (i64 jr = 0; jr < ncols; jr += NR, dst += NR * kc) {
        const i64 cols = ncols - jr < NR ? ncols - jr : NR;
        const i64 width = (cols + L - 1) / L * L;  // what tile_for reads of a narrow last panel
        if (!tb) {  // op(B)(p, j) = b[p * ldb + j]: rows of the panel are contiguous
            for (i64 p = 0; p < kc; ++p) {
                const T* src = b + (p0 + p) * ldb + j0 + jr;
                T* d = dst + p * NR;
                for (i64 j = 0; j < cols; ++j) d[j] = src[j];
                for (i64 j = cols; j < width; ++j) d[j] = T(0);
            }
        } else {  // op(B)(p, j) = b[j * ldb + p]
            transpose_copy(b + (j0 + jr) * ldb + p0, ldb, cols, kc, dst, NR);
            if (cols < width)
                for (i64 p = 0; p < kc; ++p)
                    for (i64 j = cols; j < width; ++j) dst[p * NR + j] = T(0);
        }
    }
}

// The blocked loops for C (m x n) = act(alpha * op(A) B + beta * C (+ bias[i] on row i if bias)),
// where pack_b(p0, kc, j0, ncols, dst) packs rows [p0, p0+kc) x columns [j0, j0+ncols) of B as
// pack_b above does. A is packed here, or given packed (pre: m <= MC, k <= KC, the layout of
// pack_a). m, n, k > 0.
template <class T, class PackB, class Op = Identity<T>>
bool blocked(bool ta, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, PackB&& pack_b_fn, T beta, T* c, i64 ldc,
             const T* bias = nullptr, const T* pre = nullptr, Op act = Op{}) {
    constexpr i64 NR = nr<T>(), NC = nc<T>();
    const i64 kc_max = k < kKC ? k : kKC;
    const i64 nc_max = n < NC ? (n + NR - 1) / NR * NR : NC;
    const i64 mc_max = m < kMC ? (m + kMR - 1) / kMR * kMR : kMC;
    T* bp = scratch<T>(kPackedB, kc_max * nc_max);
    T* ap = pre ? nullptr : scratch<T>(kPackedA, kc_max * mc_max);
    if (!bp || !(ap || pre)) return false;
    // Depth blocks outermost, then row blocks, then column blocks: op(A) is packed once, and B
    // once per row block (once for every conv layer here: m <= MC).
    for (i64 pc = 0; pc < k; pc += kKC) {
        const i64 kc = k - pc < kKC ? k - pc : kKC;
        const T bet = pc == 0 ? beta : T(1);
        for (i64 ic = 0; ic < m; ic += kMC) {
            const i64 mc = m - ic < kMC ? m - ic : kMC;
            if (!pre) pack_a(ta, a, lda, ic, mc, pc, kc, alpha, ap);
            const T* apc = pre ? pre : ap;
            for (i64 jc = 0; jc < n; jc += NC) {
                const i64 ncols = n - jc < NC ? n - jc : NC;
                pack_b_fn(pc, kc, jc, ncols, bp);
                for (i64 ir = 0; ir < mc; ir += kMR) {
                    const i64 rows = mc - ir < kMR ? mc - ir : kMR;
                    for (i64 jr = 0; jr < ncols; jr += NR) {
                        const i64 cols = ncols - jr < NR ? ncols - jr : NR;
                        tile_for<T, kNV>(kc, apc + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc, rows,
                                         cols, bet, bias && pc == 0 ? bias + ic + ir : nullptr, act, pc + kc == k);
                    }
                }
            }
        }
    }
    return true;
}

// C = beta * C, for the empty products (beta == 0 writes zeros, as BLAS does).
template <class T> void scale(i64 m, i64 n, T beta, T* c, i64 ldc) {
    for (i64 i = 0; i < m; ++i)
        for (i64 j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
}

// C = alpha * A B^T + beta * C where rows of A and B run along k (the dweight of a layer with few
// columns, e.g. 16 x 9 x 784): each C element is a dot product in a register, no packing, which
// would cost more than these few products. For operands that stay in L2 (see use_dot).
constexpr int kDotM = kDotTileM, kDotN = kDotTileN;  // 12 accumulators + 3 B vectors + 1 A vector (16 ymm)
// Tiles side by side per register tile on AVX-512: two (24 accumulators, 6 B vectors and an A vector
// of 32 zmm) load 10 vectors per 24 multiply-adds instead of 7 per 12.
#if defined(RC_ISA_AVX512)
constexpr int kDotGroup = 2;
#else
constexpr int kDotGroup = 1;
#endif

template <class T, int RM, int RN>
void dot_tile(i64 rm, i64 rn, i64 k, const T* a, i64 lda, const T* b, i64 ldb, T alpha, T beta, T* c, i64 ldc) {
    using V = typename VecOf<T>::type;
    V acc[RM][RN];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) acc[i][j] = V::zero();
    i64 p = 0;
    for (; p + V::L <= k; p += V::L) {
        V bv[RN];
        for (int j = 0; j < RN; ++j) bv[j] = j < rn ? V::load(b + j * ldb + p) : V::zero();
        for (int i = 0; i < RM; ++i) {
            if (i >= rm) break;
            const V av = V::load(a + i * lda + p);
            for (int j = 0; j < RN; ++j) acc[i][j] = mul_add(av, bv[j], acc[i][j]);
        }
    }
    if (p < k) {
        V bv[RN];
        for (int j = 0; j < RN; ++j) bv[j] = j < rn ? V::load_tail(b + j * ldb + p, k - p) : V::zero();
        for (int i = 0; i < RM; ++i) {
            if (i >= rm) break;
            const V av = V::load_tail(a + i * lda + p, k - p);
            for (int j = 0; j < RN; ++j) acc[i][j] = mul_add(av, bv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < RM && i < rm; ++i)
        for (int j = 0; j < RN && j < rn; ++j) {
            T& out = c[i * ldc + j];
            out = alpha * reduce_add(acc[i][j]) + (beta == T(0) ? T(0) : beta * out);
        }
}

template <class T>
void gemm_dot(i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb, T beta, T* c, i64 ldc) {
    constexpr i64 NW = kDotGroup * kDotN;
    for (i64 i = 0; i < m; i += kDotM)
        for (i64 j = 0; j < n; j += NW) {
            const i64 rm = m - i < kDotM ? m - i : kDotM, rn = n - j < NW ? n - j : NW;
            const T* ai = a + i * lda;
            const T* bj = b + j * ldb;
            T* cij = c + i * ldc + j;
            if (rm == kDotM && rn == NW) dot_tile<T, kDotM, NW>(kDotM, NW, k, ai, lda, bj, ldb, alpha, beta, cij, ldc);
            else if (rn <= kDotN) dot_tile<T, kDotM, kDotN>(rm, rn, k, ai, lda, bj, ldb, alpha, beta, cij, ldc);
            else dot_tile<T, kDotM, NW>(rm, rn, k, ai, lda, bj, ldb, alpha, beta, cij, ldc);
        }
}

// C = alpha * A B + beta * C for at most kDotM rows of A and B row-major (batch-1 inference with
// weights stored (in, out)): each row of B is read once, straight from memory, and multiplied into
// a register tile of kRowNV vectors per row of C; no packing (which would move B twice more).
#if defined(RC_ISA_AVX512)
constexpr int kRowNV = 4;  // kDotM * 4 accumulators + 4 B vectors + 1 broadcast (of 32 zmm)
#else
constexpr int kRowNV = 3;  // kDotM * 3 + 3 + 1 = 16 ymm
#endif

template <class T>
void row_tile(i64 rm, i64 cols, i64 k, const T* a, i64 lda, const T* b, i64 ldb, T alpha, T beta, T* c, i64 ldc) {
    using V = typename VecOf<T>::type;
    V acc[kDotM][kRowNV];
    for (int i = 0; i < kDotM; ++i)
        for (int v = 0; v < kRowNV; ++v) acc[i][v] = V::zero();
    const bool whole = cols == kRowNV * V::L;
    for (i64 p = 0; p < k; ++p) {
        V bv[kRowNV];
        for (int v = 0; v < kRowNV; ++v) {
            const i64 n = cols - v * V::L;
            bv[v] = whole || n >= V::L ? V::load(b + p * ldb + v * V::L)
                    : n > 0            ? V::load_tail(b + p * ldb + v * V::L, n)
                                       : V::zero();
        }
        for (int i = 0; i < kDotM; ++i) {
            if (i >= rm) break;
            const V av = V::set1(a[i * lda + p]);
            for (int v = 0; v < kRowNV; ++v) acc[i][v] = mul_add(av, bv[v], acc[i][v]);
        }
    }
    const V va = V::set1(alpha), vb = V::set1(beta);
    for (int i = 0; i < kDotM && i < rm; ++i)
        for (int v = 0; v < kRowNV; ++v) {
            T* q = c + i * ldc + v * V::L;
            const i64 n = cols - v * V::L;
            if (n <= 0) break;
            const V old = beta == T(0) ? V::zero() : n >= V::L ? V::load(q) : V::load_tail(q, n);
            const V r = beta == T(0) ? va * acc[i][v] : mul_add(vb, old, va * acc[i][v]);
            if (n >= V::L) r.store(q);
            else r.store_tail(q, n);
        }
}

template <class T>
void gemm_rows(i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb, T beta, T* c, i64 ldc) {
    constexpr i64 W = kRowNV * VecOf<T>::type::L;
    for (i64 j = 0; j < n; j += W)
        row_tile(m, n - j < W ? n - j : W, k, a, lda, b + j, ldb, alpha, beta, c + j, ldc);
}

// The dot form pays off when packing would dominate: few products per packed element (small m and
// n) and operands small enough to be re-read from L2 (measured: 16 x 9 x 784 from 6.2 to 2.6 us),
// and for outputs a few columns wide, which would leave most lanes of the blocked tile empty (a
// 10-class linear layer's 64 x 10 x 392 depth chunks: 2 threads, float64 34.5 -> 28.5 us for the
// layer, float32 21 -> 16).
template <class T> bool use_dot(i64 m, i64 n, i64 k) {
    return (m * n <= 512 || n <= 2 * kDotGroup * kDotN) && (m + n) * k * (i64)sizeof(T) <= (256 << 10);
}

template <class T>
bool gemm(int ta, int tb, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb, T beta, T* c,
          i64 ldc) {
    if (m <= 0 || n <= 0) return true;
    if (k <= 0 || alpha == T(0)) return scale(m, n, beta, c, ldc), true;
    // at most kDotM rows (batch-1 inference): B is read once in the dot form, whatever its size
    if (!ta && tb && (m <= kDotM || use_dot<T>(m, n, k))) return gemm_dot(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), true;
    if (!ta && !tb && m <= kDotM) return gemm_rows(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), true;
    return blocked<T>(ta != 0, m, n, k, alpha, a, lda,
               [&](i64 p0, i64 kc, i64 j0, i64 ncols, T* dst) { pack_b(tb != 0, b, ldb, p0, kc, j0, ncols, dst); },
               beta, c, ldc);
}

// Elements of A (m x k) packed whole for gemm_packed_a, or 0 if it is more than one block.
i64 packed_a_size(i64 m, i64 k) { return m <= kMC && k <= kKC ? (m + kMR - 1) / kMR * kMR * k : 0; }

template <class T> void pack_a_whole(int ta, i64 m, i64 k, const T* a, i64 lda, T* dst) {
    pack_a(ta != 0, a, lda, 0, m, 0, k, T(1), dst);
}

// C (m x n) = A B, A given in pack_a's layout (the 16 Winograd products reuse each transformed
// kernel matrix for every block of tiles: written packed once per call, never packed per product).
template <class T> bool gemm_packed_a(i64 m, i64 n, i64 k, const T* ap, const T* b, i64 ldb, T* c, i64 ldc) {
    if (m <= 0 || n <= 0) return true;
    if (k <= 0) return scale(m, n, T(0), c, ldc), true;
    return blocked<T>(false, m, n, k, T(1), nullptr, 0,
               [&](i64 p0, i64 kc, i64 j0, i64 ncols, T* dst) { pack_b(false, b, ldb, p0, kc, j0, ncols, dst); },
               T(0), c, ldc, nullptr, ap);
}

// The column matrix is never stored whole: each B block is built by im2col into an L2-sized
// buffer, then packed from there (the separate im2col pass wrote it to L3 and packing read it back).
// The activation is applied in the register tiles' last store.
template <class T>
bool conv_forward(i64 m, const T* w, i64 ldw, const T* bias, const T* x, const ConvGeom& g, i64 n0, i64 n1, T* y,
                  i64 ldy, int act, T param) {
    const i64 k = g.C * g.kh * g.kw, n = n1 - n0;
    if (m <= 0 || n <= 0) return true;
    return with_act(act, param, [&](auto op) {
        using S = ScalarOf<T>;
        if (k <= 0) {
            for (i64 i = 0; i < m; ++i)
                for (i64 j = n0; j < n1; ++j) y[i * ldy + j] = op.fwd(S::set1(bias ? bias[i] : T(0))).v;
            return true;
        }
        T* s = scratch<T>(kColumnBlock, kKC * nc<T>());
        if (!s) return false;
        return blocked<T>(false, m, n, k, T(1), w, ldw, [&](i64 p0, i64 kc, i64 j0, i64 ncols, T* dst) {
            im2col_block(x, g, p0, p0 + kc, n0 + j0, n0 + j0 + ncols, s, ncols);
            pack_b(false, s, ncols, 0, kc, 0, ncols, dst);
        }, T(0), y + n0, ldy, bias, nullptr, op);
    });
}

// The dot form of dweight over several images: each dw element is a dot product along the pixels
// of every image, summed lane-wise in a vector accumulator that is kept in scratch between images
// and k chunks, and reduced once at the end. No packing and no transposes (both operands run along
// the depth), and one horizontal sum per element per call instead of one per image. Each element's
// sum does not depend on how rows or columns are split, so thread splits change no bit.
// G adjacent accumulator tiles (RM x RN elements each, one after another in acc_mem) over rm rows
// and rn <= G * RN columns.
template <class T, int RM, int RN, int G = 1>
void dot_acc_tile(i64 rm, i64 rn, i64 k, const T* a, i64 lda, const T* b, i64 ldb, typename VecOf<T>::type* acc_mem,
                  bool first) {
    using V = typename VecOf<T>::type;
    constexpr int N = G * RN;
    const auto at = [](int i, int j) { return (j / RN * RM + i) * RN + j % RN; };  // acc_mem index
    V acc[RM][N];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < N; ++j) acc[i][j] = first ? V::zero() : acc_mem[at(i, j)];
    // Edge tiles read rows rm.. and rn.. as copies of the last ones (their sums are never used):
    // the loop keeps no row tests.
    const T* ar[RM];
    const T* br[N];
    for (int i = 0; i < RM; ++i) ar[i] = a + (i < rm ? i : rm - 1) * lda;
    for (int j = 0; j < N; ++j) br[j] = b + (j < rn ? j : rn - 1) * ldb;
    i64 p = 0;
    for (; p + V::L <= k; p += V::L) {
        V bv[N];
        for (int j = 0; j < N; ++j) bv[j] = V::load(br[j] + p);
        for (int i = 0; i < RM; ++i) {
            const V av = V::load(ar[i] + p);
            for (int j = 0; j < N; ++j) acc[i][j] = mul_add(av, bv[j], acc[i][j]);
        }
    }
    if (p < k) {
        V bv[N];
        for (int j = 0; j < N; ++j) bv[j] = V::load_tail(br[j] + p, k - p);
        for (int i = 0; i < RM; ++i) {
            const V av = V::load_tail(ar[i] + p, k - p);
            for (int j = 0; j < N; ++j) acc[i][j] = mul_add(av, bv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < N; ++j) acc_mem[at(i, j)] = acc[i][j];
}

// The tiles of rows [i, i + rm) from column tile jt on (rn columns): as many side by side as fit.
template <class T>
void dot_acc_tiles(i64 rm, i64 rn, i64 k, const T* a, i64 lda, const T* b, i64 ldb, typename VecOf<T>::type* acc_mem,
                   bool first) {
    if (kDotGroup > 1 && rn > kDotN)
        dot_acc_tile<T, kDotM, kDotN, kDotGroup>(rm, rn, k, a, lda, b, ldb, acc_mem, first);
    else
        dot_acc_tile<T, kDotM, kDotN>(rm, rn, k, a, lda, b, ldb, acc_mem, first);
}

// Taken for layers with at most kDotFormTaps column rows (first layers: 1 channel of 3x3): packing
// and edge tiles cost the per-image GEMM more there. Measured against the per-image GEMMs (dot form
// for m*n <= 512, else blocked): 64 filters x 9 rows 0.67x, 16 x 9 1.0x; 32 x 27 (3 channels of
// 3x3) 1.12x and 32 x 144 2x slower, where the operands outgrow L1 and the blocked GEMM's reuse wins.
template <class T> bool use_dot_images(const ConvGeom& g) { return g.C * g.kh * g.kw <= kDotFormTaps; }

// dweight_dot's sums for one image: rows [row0, row0 + m) of dw (row0 a multiple of kDotM) from m
// rows of dy (a) and the n column rows (b), into accumulator tiles laid out as dweight_dot's (tile
// (i / kDotM, j / kDotN) at ((i / kDotM) * tiles_n + j / kDotN) * kDotM * kDotN vectors, tiles_n =
// ceil(n / kDotN)).
template <class T>
void dot_acc_block(i64 row0, i64 m, i64 n, i64 k, const T* a, i64 lda, const T* b, i64 ldb, T* acc, int first) {
    using V = typename VecOf<T>::type;
    static_assert(sizeof(V) <= sizeof(T) * kMaxLanes<T>, "accumulators as wide as dot_acc_elements counts");
    const i64 tiles_n = (n + kDotN - 1) / kDotN;
    V* am = reinterpret_cast<V*>(acc) + (row0 / kDotM) * tiles_n * kDotM * kDotN;
    for (i64 i = 0; i < m; i += kDotM)
        for (i64 j = 0; j < n; j += kDotGroup * kDotN) {
            const i64 rm = m - i < kDotM ? m - i : kDotM, rn = n - j < kDotGroup * kDotN ? n - j : kDotGroup * kDotN;
            dot_acc_tiles<T>(rm, rn, k, a + i * lda, lda, b + j * ldb, ldb,
                             am + ((i / kDotM) * tiles_n + j / kDotN) * kDotM * kDotN, first != 0);
        }
}

// out (m x n, row stride ldo) = the sums of those accumulators' lanes, as dweight_dot writes them.
template <class T> void dot_acc_reduce(i64 m, i64 n, const T* acc, T* out, i64 ldo) {
    using V = typename VecOf<T>::type;
    const i64 tiles_n = (n + kDotN - 1) / kDotN;
    const V* am = reinterpret_cast<const V*>(acc);
    for (i64 i = 0; i < m; ++i)
        for (i64 j = 0; j < n; ++j)
            out[i * ldo + j] = reduce_add(am[((i / kDotM) * tiles_n + j / kDotN) * kDotM * kDotN +
                                             (i % kDotM) * kDotN + j % kDotN]) + T(0);
}

template <class T>
bool dweight_dot(i64 m, i64 images, const T* dy, i64 lddy, i64 dy_step, const T* x, i64 x_step, const ConvGeom& g,
                 i64 n0, i64 n1, T beta, T* dw, i64 lddw) {
    using V = typename VecOf<T>::type;
    const i64 k = g.OH * g.OW, n = n1 - n0, tiles_n = (n + kDotN - 1) / kDotN;
    constexpr i64 tile_bytes = kDotM * kDotN * V::L * (i64)sizeof(T);
    // Rows per block: their accumulators in 256 KB; pixels per chunk: its columns in 128 KB.
    i64 mb = (256 << 10) / (tiles_n * tile_bytes) * kDotM;
    mb = mb < kDotM ? kDotM : mb > m ? (m + kDotM - 1) / kDotM * kDotM : mb;
    i64 kc = (128 << 10) / (n * (i64)sizeof(T)) / V::L * V::L;
    kc = kc < V::L ? V::L : kc > k ? k : kc;
    V* acc = static_cast<V*>(scratch_bytes(kPackedB, mb / kDotM * tiles_n * tile_bytes));
    T* s = scratch<T>(kColumnBlock, n * kc);
    if (!acc || !s) return false;
    for (i64 i0 = 0; i0 < m; i0 += mb) {
        const i64 rows = m - i0 < mb ? m - i0 : mb;
        for (i64 img = 0; img < images; ++img)
            for (i64 p0 = 0; p0 < k; p0 += kc) {
                const i64 pc = k - p0 < kc ? k - p0 : kc;
                im2col_block(x + img * x_step, g, n0, n1, p0, p0 + pc, s, pc);
                const T* a0 = dy + img * dy_step + i0 * lddy + p0;
                for (i64 i = 0; i < rows; i += kDotM)
                    for (i64 j = 0; j < n; j += kDotGroup * kDotN) {
                        const i64 rm = rows - i < kDotM ? rows - i : kDotM;
                        const i64 rn = n - j < kDotGroup * kDotN ? n - j : kDotGroup * kDotN;
                        V* am = acc + ((i / kDotM) * tiles_n + j / kDotN) * kDotM * kDotN;
                        dot_acc_tiles<T>(rm, rn, pc, a0 + i * lddy, lddy, s + j * pc, pc, am, img == 0 && p0 == 0);
                    }
            }
        for (i64 i = 0; i < rows; ++i)
            for (i64 j = 0; j < n; ++j) {
                const V* am = acc + ((i / kDotM) * tiles_n + j / kDotN) * kDotM * kDotN;
                T& out = dw[(i0 + i) * lddw + n0 + j];
                out = reduce_add(am[(i % kDotM) * kDotN + j % kDotN]) + (beta == T(0) ? T(0) : beta * out);
            }
    }
    return true;
}

// dweight with the columns in tap-major order (column t*C + c for tap t, channel c): with C a
// multiple of the vector length, each vector of a packed B panel row is L consecutive channels of
// one input pixel, one load from the image stored pixel-major (HWC). The panels are built straight
// from that image: no column buffer and no transposes (im2col then pack_b's transpose was two
// passes over the columns). The product lands in a tap-major scratch, reordered into dw at the
// end. Each element's sum runs over the same pixels in the same order as conv_dweight's: same bits.
template <class T> bool use_hwc_dweight(const ConvGeom& g, i64 m, i64 n0, i64 n1, T beta) {
    constexpr i64 L = VecOf<T>::type::L, budget = (512 << 10) / (i64)sizeof(T);
    const i64 ck = g.C * g.kh * g.kw;
    return beta == T(0) && g.C % L == 0 && n0 == 0 && n1 == ck && g.C * g.H * g.W <= budget && m * ck <= budget;
}

// Packed B panels (pack_b's layout) of pixels [p0, p0+kc) x tap-major columns [j0, j0+ncols) from
// the HWC image xh.
template <class T> void pack_hwc(const T* xh, const ConvGeom& g, i64 p0, i64 kc, i64 j0, i64 ncols, T* dst) {
    using V = typename VecOf<T>::type;
    constexpr i64 NR = nr<T>(), L = V::L;
    for (i64 jr = 0; jr < ncols; jr += NR, dst += NR * kc) {
        const int nv = (int)((ncols - jr < NR ? ncols - jr : NR) / L);  // whole vectors: C % L == 0
        i64 di[kNV], dj[kNV], ch[kNV];  // per vector: the tap's row and column offsets, first channel
        for (int v = 0; v < nv; ++v) {
            const i64 j = j0 + jr + v * L, t = j / g.C;
            di[v] = (t / g.kw) * g.dh - g.ph;
            dj[v] = (t % g.kw) * g.dw - g.pw;
            ch[v] = j % g.C;
        }
        for (i64 p = 0, oh = p0 / g.OW, ow = p0 % g.OW; p < kc; ++p) {
            T* d = dst + p * NR;
            for (int v = 0; v < nv; ++v) {
                const i64 ih = oh * g.sh + di[v], iw = ow * g.sw + dj[v];
                const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
                (in ? V::load(xh + (ih * g.W + iw) * g.C + ch[v]) : V::zero()).store(d + v * L);
            }
            if (++ow == g.OW) ow = 0, ++oh;
        }
    }
}

template <class T>
bool dweight_hwc(i64 m, i64 images, const T* dy, i64 lddy, i64 dy_step, const T* x, i64 x_step, const ConvGeom& g,
                 T* dw, i64 lddw) {
    const i64 k = g.OH * g.OW, K = g.kh * g.kw, ck = g.C * K, hw = g.H * g.W;
    T* xh = scratch<T>(kColumnBlock, g.C * hw + m * ck);
    if (!xh) return false;
    T* acc = xh + g.C * hw;  // m x ck, tap-major columns
    for (i64 img = 0; img < images; ++img) {
        transpose_copy(x + img * x_step, hw, g.C, hw, xh, g.C);
        if (!blocked<T>(false, m, ck, k, T(1), dy + img * dy_step, lddy, [&](i64 p0, i64 kc, i64 j0, i64 ncols, T* dst) {
                pack_hwc(xh, g, p0, kc, j0, ncols, dst);
            }, img == 0 ? T(0) : T(1), acc, ck))
            return false;
    }
    for (i64 i = 0; i < m; ++i)
        for (i64 t = 0; t < K; ++t)
            for (i64 c = 0; c < g.C; ++c) dw[i * lddw + c * K + t] = acc[i * ck + t * g.C + c];
    return true;
}

template <class T>
bool conv_dweight(i64 m, i64 images, const T* dy, i64 lddy, i64 dy_step, const T* x, i64 x_step, const ConvGeom& g,
                  i64 n0, i64 n1, T beta, T* dw, i64 lddw) {
    const i64 k = g.OH * g.OW, n = n1 - n0;
    if (m <= 0 || n <= 0) return true;
    if (k <= 0 || images <= 0) return scale(m, n, beta, dw + n0, lddw), true;
    if (use_dot_images<T>(g)) return dweight_dot(m, images, dy, lddy, dy_step, x, x_step, g, n0, n1, beta, dw, lddw);
    if (use_hwc_dweight<T>(g, m, n0, n1, beta))
        return dweight_hwc(m, images, dy, lddy, dy_step, x, x_step, g, dw, lddw);
    T* s = scratch<T>(kColumnBlock, kKC * nc<T>());
    if (!s) return false;
    for (i64 img = 0; img < images; ++img) {
        const T* xi = x + img * x_step;
        if (!blocked<T>(false, m, n, k, T(1), dy + img * dy_step, lddy, [&](i64 p0, i64 kc, i64 j0, i64 ncols, T* dst) {
                im2col_block(xi, g, n0 + j0, n0 + j0 + ncols, p0, p0 + kc, s, kc);  // (ncols x kc): B transposed
                pack_b(true, s, kc, 0, kc, 0, ncols, dst);
            }, img == 0 ? beta : T(1), dw + n0, lddw))
            return false;
    }
    return true;
}

template <class T> void activate(T* c, i64 ldc, i64 m, i64 n, int act, T param) {
    with_act(act, param, [&](auto op) {
        for (i64 i = 0; i < m; ++i) fwd_in_place(op, c + i * ldc, n);
    });
}

}  // namespace

template <class T> GemmKernels<T> make_gemm() {
    GemmKernels<T> g;
    g.gemm = &gemm<T>;
    g.conv_forward = &conv_forward<T>;
    g.conv_dweight = &conv_dweight<T>;
    g.activate = &activate<T>;
    g.packed_a_size = &packed_a_size;
    g.pack_a_whole = &pack_a_whole<T>;
    g.gemm_packed_a = &gemm_packed_a<T>;
    g.dot_acc_block = &dot_acc_block<T>;
    g.dot_acc_reduce = &dot_acc_reduce<T>;
#if defined(RC_ISA_AVX512)
    g.beats_blas = 1;  // ~2x OpenBLAS pinned to AVX2, on par with its AVX-512 kernels (docs/performance.md)
#else
    g.beats_blas = 0;  // OpenBLAS reaches about the AVX2 peak
#endif
    g.mr = kMR;
    g.nr = (int)nr<T>();
    return g;
}
template GemmKernels<float> make_gemm<float>();
template GemmKernels<double> make_gemm<double>();

}  // namespace RC_NS
}  // namespace relucore
