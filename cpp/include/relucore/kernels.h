// The kernel table: one per ISA, filled by cpp/kernels compiled with that ISA's flags, chosen once
// by cpp/dispatch. Plain pointers and 64-bit sizes; every pointer addresses contiguous memory.
#pragma once
#include <stdint.h>

namespace relucore {

using i64 = int64_t;

enum KernelFlags { kCount = 1, kStream = 2 };

// Scratch memory kept between calls, one buffer per slot and thread (cpp/ops/scratch.cpp, compiled
// once without ISA flags: never inline into a kernel object). At least `bytes`, 64-byte aligned,
// contents undefined, valid until the next request for the same slot on this thread; null if the
// allocation fails. A fresh allocation per call costs page faults and zeroing (docs/performance.md).
enum ScratchSlot { kColumns, kPartials, kWinogradWeights, kPackedB, kPackedA, kColumnBlock, kSlots };
void* scratch_bytes(ScratchSlot slot, i64 bytes);
void release_thread_scratch();  // frees the calling thread's buffers

// The elementwise activations, in the order of relucore/activations.inc.
enum class Act : int {
#define RC_ACTIVATION(name, ...) name,
#include "relucore/activations.inc"
#undef RC_ACTIVATION
};
constexpr int kActs = 0
#define RC_ACTIVATION(name, ...) +1
#include "relucore/activations.inc"
#undef RC_ACTIVATION
    ;

template <class T>
struct ElementwiseKernels {
    // y[i] = f(x[i]) for i < n. `param` is the op's scalar (slope, alpha; unused by relu/sigmoid/tanh).
    // If mask != nullptr, bit (bit0 + i) of mask is set to the op's "gradient passes" bit (ops with
    // mask = 1 in the list). flags: kCount -> return the number of y[i] > 0 (else 0); kStream ->
    // write y with cache-bypassing stores (for outputs larger than the last-level cache; ignored
    // when mask != nullptr).
    using Forward = i64 (*)(const T* x, T* y, i64 n, T param, uint8_t* mask, i64 bit0, int flags);
    // dx[i] = g(dy[i], s[i]) where s is x or the forward output y (the list's `from`).
    using Backward = void (*)(const T* dy, const T* s, T* dx, i64 n, T param, int flags);
    // dx[i] from dy[i] and bit (bit0 + i) of mask.
    using BackwardMask = void (*)(const T* dy, const uint8_t* mask, i64 bit0, T* dx, i64 n, T param);
    // PReLU backward over one channel run: writes dx, returns sum of (x > 0 ? 0 : x * dy).
    using PreluBackward = double (*)(const T* dy, const T* x, T* dx, i64 n, T weight);

    Forward forward[kActs];
    Backward backward[kActs];
    BackwardMask backward_mask[kActs];  // null for ops without a mask
    PreluBackward prelu_backward;
    int tile;  // elements per main-loop iteration (tests probe tile-1, tile, tile+1)
};

// Geometry of one 2-D convolution or pooling window sweep over a (C, H, W) image.
struct ConvGeom {
    i64 C, H, W;     // input channels (of this group) and size
    i64 kh, kw;      // kernel
    i64 sh, sw;      // stride
    i64 ph, pw;      // padding
    i64 dh, dw;      // dilation
    i64 OH, OW;      // output size
};

// The usual pooling window, 2x2 stride 2 over whole windows, which the pooling and the batch norm +
// pool sweep run on their vector paths; those keep in-window offsets up to W + 1 in T and int32
// (exact below 2**24).
inline bool is_pool_2x2s2(const ConvGeom& g) {
    return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1 &&
           2 * g.OH <= g.H && 2 * g.OW <= g.W && g.W < (i64(1) << 24);
}

// Filters per register group of the small-tap direct convolution (ConvKernels::small_conv_rows).
constexpr int kSmallConvGroup = 8;
// conv_dweight sums by dot products along the pixels for layers of at most this many column rows
// (C*kh*kw), in register tiles of kDotTileM x kDotTileN elements, each a vector of lane sums.
constexpr i64 kDotFormTaps = 16;
constexpr i64 kDotTileM = 4, kDotTileN = 3;
template <class T> constexpr i64 kMaxLanes = 64 / (i64)sizeof(T);  // the widest vector's
// Elements of T that holds the accumulators of an m x n dw (vectors of up to kMaxLanes<T>).
template <class T> constexpr i64 dot_acc_elements(i64 rows, i64 n) {
    return (rows + kDotTileM - 1) / kDotTileM * ((n + kDotTileN - 1) / kDotTileN) * kDotTileM * kDotTileN * kMaxLanes<T>;
}

template <class T>
struct ConvKernels {
    // Rows [r0, r1) of the column matrix (C*kh*kw, OH*OW) of one image x (C, H, W); zero outside x.
    void (*im2col)(const T* x, T* cols, const ConvGeom& g, i64 r0, i64 r1);
    // The adjoint for channels [c0, c1): x[c] += every column entry that im2col read from x[c].
    void (*col2im)(const T* cols, T* x, const ConvGeom& g, i64 c0, i64 c1);
    // The same for a column buffer the caller owns: entries that read outside x may be zeroed.
    void (*col2im_owned)(T* cols, T* x, const ConvGeom& g, i64 c0, i64 c1);
    // One (H, W) plane -> (OH, OW) maxima and their flat indices h*W + w (NaN wins, first max on ties).
    void (*max_pool)(const T* x, T* y, int64_t* idx, const ConvGeom& g);
    // The same with each winner's position in its window (i * kw + j; windows of at most 255 taps).
    void (*max_pool_pos)(const T* x, T* y, uint8_t* pos, const ConvGeom& g);
    // dx (H, W) = dy (OH, OW) at the positions max_pool_pos chose; false if one lies outside x.
    bool (*max_pool_pos_backward)(const T* dy, const uint8_t* pos, T* dx, const ConvGeom& g);
    // One plane; count_include_pad as in PyTorch.
    void (*avg_pool)(const T* x, T* y, const ConvGeom& g, int count_include_pad);
    // dx (H, W) += the adjoint of avg_pool for dy (OH, OW).
    void (*avg_pool_backward)(const T* dy, T* dx, const ConvGeom& g, int count_include_pad);
    // Direct convolution of one plane with one (kh, kw) kernel: y (OH, OW) += x * w, then
    // y = act(y) (a NormAct with its parameter; kNormNone for every plane but a sum's last).
    void (*plane_conv)(const T* x, const T* w, T* y, const ConvGeom& g, int act, T param);
    // dx (H, W) += the adjoint of plane_conv applied to dy (OH, OW).
    void (*plane_conv_backward_input)(const T* dy, const T* w, T* dx, const ConvGeom& g);
    // dw (kh, kw) += the correlation of dy (OH, OW) with x (H, W).
    void (*plane_conv_backward_weight)(const T* dy, const T* x, T* dw, const ConvGeom& g);
    // Output rows [oh0, oh1) of a stride-1, dilation-1 convolution of one image with F filters and
    // few taps (K = C*kh*kw), summed in registers: y[f, oh, :] = act(sum_t wt(f, t) x_t + bias[f])
    // (the GEMM path's order: taps in order, then the bias). xp holds x's rows oh0 - ph .. oh1 - ph
    // + kh - 1 (one past the rows used: output rows go in pairs) zero-padded: element (c, r, q) =
    // x[c, oh0 - ph + r, q - pw] (0 outside x) at xp[(c * rp + r) * wp + q], with rp >= oh1 - oh0 +
    // kh and wp >= roundup(OW, 16) + kw - 1; wt holds the weights in groups
    // of kSmallConvGroup filters, tap-major: w[f, t] at wt[((f / G) * K + t) * G + f % G] (zeros
    // past F). y is the image's (F, OH, OW) output.
    void (*small_conv_rows)(const T* xp, i64 wp, i64 rp, const T* wt, const T* bias, T* y, i64 F,
                            const ConvGeom& g, i64 oh0, i64 oh1, int act, T param);
    // The sum of x[0..n) (a bias gradient's plane), in vector partial sums.
    double (*sum)(const T* x, i64 n);
    // max |x[i]| over i < n (0 for n = 0); +inf if any x[i] is NaN or infinite.
    T (*max_abs)(const T* x, i64 n);
};

template <class T>
struct GemmKernels {
    // Row-major C (m x n) = alpha * op(A) op(B) + beta * C on the calling thread; ta/tb nonzero
    // transpose (op(A) is m x k). beta == 0 never reads C. These three return false if their
    // scratch could not be allocated (C is then incomplete; the caller raises MemoryError).
    bool (*gemm)(int ta, int tb, i64 m, i64 n, i64 k, T alpha, const T* a, i64 lda, const T* b, i64 ldb, T beta,
                 T* c, i64 ldc);
    // The same with B = the column matrix of one image x (C*kh*kw rows, OH*OW columns), built block
    // by block, never stored whole: y[:, n0:n1] = act(w (m x C*kh*kw) cols[:, n0:n1] (+ bias[i] on
    // row i if bias)) with act a NormAct and its parameter, and dw[:, n0:n1] = the sum over
    // `images` images of dy_i (m x OH*OW) cols_i[n0:n1, :]^T + beta * dw, image i's dy at
    // dy + i * dy_step and its x at x + i * x_step. Leading dimensions and steps in elements.
    bool (*conv_forward)(i64 m, const T* w, i64 ldw, const T* bias, const T* x, const ConvGeom& g, i64 n0, i64 n1,
                         T* y, i64 ldy, int act, T param);
    bool (*conv_dweight)(i64 m, i64 images, const T* dy, i64 lddy, i64 dy_step, const T* x, i64 x_step,
                         const ConvGeom& g, i64 n0, i64 n1, T beta, T* dw, i64 lddw);
    // c (m x n, row stride ldc) = act(c) for a NormAct and its parameter: the epilogue of a GEMM
    // that has none to hook (OpenBLAS), run on a block it has just written.
    void (*activate)(T* c, i64 ldc, i64 m, i64 n, int act, T param);
    // A given packed and reused (k <= one depth block, m <= one row block; else packed_a_size is
    // 0): C (m x n) = A B, B row-major, A (m x k) as panels of mr rows, each k x mr (depth-major),
    // rows past m zero.
    i64 (*packed_a_size)(i64 m, i64 k);
    // op(A) (m x k; ta nonzero: a is stored k x m) into dst in that layout (packed_a_size elements).
    void (*pack_a_whole)(int ta, i64 m, i64 k, const T* a, i64 lda, T* dst);
    bool (*gemm_packed_a)(i64 m, i64 n, i64 k, const T* ap, const T* b, i64 ldb, T* c, i64 ldc);
    // conv_dweight's dot form (layers of at most kDotFormTaps column rows) one image at a time: the
    // lane accumulators of rows [row0, row0 + m) of dw (F x n; row0 a multiple of kDotTileM) += a
    // (m rows of k, lda apart) times b's n rows (ldb apart) lane by lane, from zero if `first`; then
    // out (m x n, ldo apart) = the sums of the first m rows' lanes. Over a chunk's images in order,
    // the same sums as conv_dweight's over that chunk. acc: dot_acc_elements(F, n), 64-byte aligned.
    void (*dot_acc_block)(i64 row0, i64 m, i64 n, i64 k, const T* a, i64 lda, const T* b, i64 ldb, T* acc,
                          int first);
    void (*dot_acc_reduce)(i64 m, i64 n, const T* acc, T* out, i64 ldo);
    int beats_blas;  // measured faster than OpenBLAS as shipped here (the avx512 tile): "auto" uses it
    int mr, nr;  // register tile (rows of C by columns): splits of C at multiples of nr keep full tiles
};

// The activations batch norm and conv2d fuse.
enum NormAct { kNormNone, kNormRelu, kNormLeaky, kNormElu, kNormActs };

// A mixed-radix FFT of length n (radices 4, 2, 3, 5), built by ops/fft_conv.cpp: stage q has radix
// radix[q], span[q] = the product of the radices before it, and twiddles at tw[q]: twr/twi[tw[q] +
// j * radix[q] + t] = exp(-2 pi i j t / (span[q] * radix[q])) for j < span[q], t < radix[q].
constexpr int kFftMaxStages = 8;
constexpr int kFftMaxTwiddles = 512;
template <class T>
struct FftPlan {
    i64 n;
    int stages;
    int radix[kFftMaxStages];
    i64 span[kFftMaxStages], tw[kFftMaxStages];
    T twr[kFftMaxTwiddles], twi[kFftMaxTwiddles];
};

// Complex 2-D DFTs of n x n planes (n = plan.n) for the FFT convolution. A spectrum is n rows:
// row i's real parts at z + i * zs, its imaginary parts at z + i * zs + zm (zs and zm multiples
// of lanes; zs = ld, zm = n * ld for a contiguous plane); it is stored transposed (element
// [k2][k1], k1 the frequency along x's rows). work: two contiguous planes of row stride ld >= n
// (a multiple of lanes), 4 * n * ld elements.
template <class T>
struct FftKernels {
    // z = DFT(a + i b) with a and b (h x w, row stride w; b null: zero) placed at row pr, column pc
    // of a zero n x n plane.
    void (*forward)(const T* a, const T* b, i64 h, i64 w, i64 pr, i64 pc, const FftPlan<T>& p, i64 ld, T* z,
                    i64 zs, i64 zm, T* work);
    // v = the unscaled inverse DFT of z; rows [r0, r0 + oh) x columns [c0, c0 + ow) of v stored as
    // act(s * Re v + ba) into ya and act(s * Im v + bb) into yb (null: skipped), row stride ow.
    void (*inverse[kNormActs])(const T* z, i64 zs, i64 zm, const FftPlan<T>& p, i64 ld, T* work, i64 r0, i64 c0,
                               i64 oh, i64 ow, T s, T* ya, T ba, T* yb, T bb, T param);
    // The pointwise products, as a product of matrices of spectra over complex values [e0, e1)
    // (multiples of lanes) of each, imaginary parts m further: o(i, j) = sum over k < K of A(i, k) B(k, j), with A(i, k) at
    // a + i * ai + k * ak (conjugated if conj_a), B(k, j) at b + k * bk + j * bj (conjugated if
    // conj_b), o(i, j) at o + i * oi + j * oj.
    void (*cgemm)(i64 I, i64 J, i64 K, const T* a, i64 ai, i64 ak, const T* b, i64 bk, i64 bj, T* o, i64 oi, i64 oj,
                  i64 m, i64 e0, i64 e1, int conj_a, int conj_b);
    int lanes;
};

// Where the batch's Winograd tiles land in the output (the fused forward): tile q is tile q % TPI
// of image q / TPI (tile t at row t / TW, column t % TW of the M x M tiles).
template <class T>
struct WinogradTiles {
    T* y;             // image 0, the first output channel of the rows
    i64 row_step;     // between output channels (OH * OW)
    i64 image_step;   // between images
    i64 TPI, TW, OH, OW;
    const T* bias;    // per row, or null
    T param;          // the activation's
};

// Winograd F(M x M, 3 x 3) with L channels (or filters) in the lanes: the forward, dx (the forward of
// dy with the flipped kernels) and the kernel gradient, on A x A transforms (A = M + 2, XI = A*A
// of them; tile (th, tw) covers outputs [M*th, M*th + M) x [M*tw, M*tw + M)).
template <class T>
struct WinogradClKernels {
    // Kernel transform G k G^T of a rows x cols grid of 3x3 kernels (kernel (r, c) row-major at
    // w[r*lr + c*lc ..+9], rotated by 180 degrees if flip) into XI matrices u[xi*us ..], row-major
    // (mr = 0) or as panels of mr columns, each rows x mr (columns past cols zero: the tile-lane
    // forward's packed operand, 2x2 tiles); elements [e0, e1) of that layout.
    void (*weights)(const T* w, i64 rows, i64 cols, i64 lr, i64 lc, int flip, i64 mr, i64 e0, i64 e1, T* u,
                    i64 us);
    // n kernel gradients dw[l*ls + 3i + j] = G^T m G from m[part*ps + xi*ms + l] summed over
    // `parts` partials in order.
    void (*weights_grad)(const T* m, i64 ms, i64 parts, i64 ps, i64 n, T* dw, i64 ls);
    // trows tile rows of n tiles each of nch <= L input planes (H x W, plane l at x + l*ps; the
    // first tile's patch from row r0, column c0, negative in the zero padding) into
    // v[xi*vs + (r*tstep + i)*ld ..+L] (tile i of row r; lanes past nch 0). With scan (else null):
    // scan[0] = the largest |value| read, scan[1] = NaN if one was inf or NaN, else 0.
    void (*input)(const T* x, i64 ps, i64 nch, i64 H, i64 W, i64 r0, i64 c0, i64 n, i64 trows, i64 tstep, T* v,
                  i64 vs, i64 ld, T* scan);
    // The same for n M x M tiles of one tile row of dy planes (OH x OW): A g A^T.
    void (*output_grad)(const T* g, i64 ps, i64 nch, i64 OH, i64 OW, i64 r0, i64 c0, i64 n, T* v, i64 vs, i64 ld,
                        T* scan);
    // `rows` <= mr tiles of the batch from tile q0 (v + xi*vs: the tiles as rows of k channels, ldv
    // apart, from input) by the transformed kernels (u + xi*us: k rows of F filters, ldu apart)
    // into m (XI x mr x F rounded up to lanes), then the output transform, bias and activation of
    // all F filters into `to`.
    void (*fused[kNormActs])(i64 k, const T* u, i64 us, i64 ldu, const T* v, i64 vs, i64 ldv, i64 rows, i64 F,
                             i64 q0, T* m, const WinogradTiles<T>& to);
};

template <class T>
struct WinogradKernels {
    // F(2x2, 3x3) input transform of one zero-padded plane xp (row stride ldx, 2*TH + 2 rows, at
    // least 2*ceil(TW/lanes)*lanes + 2 readable elements a row): v[xi*vs + th*TW + tw], xi < 16.
    void (*input)(const T* xp, i64 ldx, i64 TH, i64 TW, T* v, i64 vs);
    // Output transform of m[xi*ms + th*TW + tw] into y (OH x OW, row stride ldy; nothing written
    // past it), plus bias, then the activation (indexed by NormAct) with its parameter.
    void (*output[kNormActs])(const T* m, i64 ms, i64 TH, i64 TW, T bias, T* y, i64 OH, i64 OW, i64 ldy, T param);
    // The forward with the products fused (GemmKernels' register tile and packed layouts):
    // input_panels transforms n tiles of a tile row of xp (as `input`) into columns col .. col + n
    // of the 16 matrices v[xi*vs ..], each cut in panels of nr columns `ps` apart (v: this
    // channel's row of panel 0); fused takes `rows` (<= mr) kernels by `cols` (<= nr) columns from
    // the batch's tile q0: u + xi*us and v + xi*vs are their packed A and B panels over k
    // channels; the 16 register tiles go to m (16 x mr x nr), then their output transform, bias
    // and activation into `to`.
    void (*input_panels)(const T* xp, i64 ldx, i64 n, i64 col, T* v, i64 vs, i64 ps);
    void (*fused[kNormActs])(i64 k, const T* u, i64 us, const T* v, i64 vs, i64 rows, i64 q0, i64 cols, T* m,
                             const WinogradTiles<T>& to);
    // Channels in the lanes: cl[0] for F(2x2, 3x3), cl[1] for F(4x4, 3x3), cl[2] for F(7x7, 3x3)
    // (float64 only; float32's is cl[1]) (see WinogradClKernels).
    WinogradClKernels<T> cl[3];
    // c (F x C, ldc) = [c +] (add) the sum over kc of a[p*lda + f] * b[p*ldb + c] (reads whole
    // vectors of each row of b): the kernel gradient's products.
    void (*dw_products)(i64 kc, const T* a, i64 lda, const T* b, i64 ldb, i64 F, i64 C, T* c, i64 ldc, int add);
    int mr;  // dw_products' and the channel-lane forward's register tile rows
    int lanes;
};

// Values of one channel: `runs` runs of `len` contiguous elements, `stride` apart (images of an
// (N, C, spatial) array).
struct NormRuns {
    i64 runs, len, stride;
};
// Where the backward reads its second operand: the forward input x, or the output y alone.
enum NormFrom { kFromX, kFromY, kNormFroms };

// Per-channel constants of the backward (see NormKernels).
template <class T>
struct NormCoef {
    T mean, scale, bias;  // from x: z = (x - mean) * scale + bias
    T param;              // the activation's slope or alpha
    T a, c0, c2;          // dx = a * g + c0 + c2 * u
};

// Per-channel constants of the (N, C) kernels (see NormKernels), indexed by channel.
template <class T>
struct NormCols {
    const T *mean, *scale, *bias;  // z = (x - mean) * scale + bias
    const T *a, *c0, *c2;          // dx = a * g + c0 + c2 * u (u: x - mean, or z - bias from y)
    T param;
};

template <class T>
struct NormKernels {
    // Sums of (x - shift) and (x - shift)^2 over one channel: in T within blocks of a run, in double
    // across blocks, in a fixed order.
    void (*moments)(const T* x, const NormRuns& r, T shift, double* s1, double* s2);
    // y = act((x - mean) * scale + bias) over one channel; returns the number of y > 0 if count.
    i64 (*normalize[kNormActs])(const T* x, T* y, const NormRuns& r, T mean, T scale, T bias, T param,
                                int count);
    // With g = dy * act'(z) and u = x - mean, z = u * scale + bias (from x) or z = act^-1(y),
    // u = z - bias (from y): sums of g and g * u over one channel (double across blocks), and
    // dx = a * g + c0 + c2 * u (dx = a * g if !training). Null for relu from y (not invertible).
    void (*grad_sums[kNormActs][kNormFroms])(const T* dy, const T* s, const NormRuns& r, const NormCoef<T>& k,
                                             double* sg, double* sgu);
    void (*grad_input[kNormActs][kNormFroms])(const T* dy, const T* s, T* dx, const NormRuns& r,
                                              const NormCoef<T>& k, int training);
    // The same for an (N, C) array (one value per image and channel), vectorized across channels
    // [c0, c1) of `rows` rows `ld` apart; each channel summed down its column in a fixed order
    // (vector lanes for whole vectors from c0, one lane for the rest: split at multiples of `lanes`).
    // Statistics shifted by row 0; the backward from x or (not relu) from y, as above.
    void (*col_moments)(const T* x, i64 rows, i64 ld, i64 c0, i64 c1, double* s1, double* s2);
    void (*col_normalize[kNormActs])(const T* x, T* y, i64 rows, i64 ld, i64 c0, i64 c1, const NormCols<T>& k,
                                     i64* counts);
    void (*col_grad_sums[kNormActs][kNormFroms])(const T* dy, const T* s, i64 rows, i64 ld, i64 c0, i64 c1,
                                                 const NormCols<T>& k, double* sg, double* sgu);
    void (*col_grad_input[kNormActs][kNormFroms])(const T* dy, const T* s, T* dx, i64 rows, i64 ld, i64 c0, i64 c1,
                                                  const NormCols<T>& k, int training);
    // 2x2 stride-2 max pooling fused with the above over one plane (g: the pooling's geometry, OH =
    // H / 2, OW = W / 2; pos: each window's winner 0..3, MaxPool2d's kept positions). pool2_normalize:
    // y and pos of max_pool_pos over normalize's output. pool2_grad_sums: grad_sums for dy unpooled
    // by pos (false if a position is over 3). pool2_grad_input: grad_input for that dy.
    void (*pool2_normalize[kNormActs])(const T* x, T* y, uint8_t* pos, const ConvGeom& g, T mean, T scale, T bias,
                                       T param);
    bool (*pool2_grad_sums[kNormActs])(const T* dy, const uint8_t* pos, const T* x, const ConvGeom& g,
                                       const NormCoef<T>& k, double* sg, double* sgu);
    void (*pool2_grad_input[kNormActs])(const T* dy, const uint8_t* pos, const T* x, T* dx, const ConvGeom& g,
                                        const NormCoef<T>& k, int training);
    int lanes;
};

// The fused softmax cross-entropy's constants: the target distribution t' = keep * t + spread
// (keep = 1 - label smoothing, spread = smoothing / classes), the gradient's scale (1 / count for a
// mean), and the class index that marks a position to skip.
template <class T>
struct CeParams {
    T keep, spread, scale;
    i64 ignore;
};

template <class T>
struct LossKernels {
    // Over L classes: `rows` contiguous rows of L ("rows"), or the positions [i0, i1) of one (L, I)
    // block, class stride I, across the vector lanes ("cols"). Outputs may be the inputs.
    // y = softmax(x), or log_softmax(x) if log.
    void (*softmax_rows)(const T* x, T* y, i64 rows, i64 L, int log);
    void (*softmax_cols)(const T* x, T* y, i64 L, i64 I, i64 i0, i64 i1, int log);
    // dx from dy and the forward output y: y * (dy - sum dy * y), or dy - exp(y) * sum dy if log.
    void (*softmax_backward_rows)(const T* dy, const T* y, T* dx, i64 rows, i64 L, int log);
    void (*softmax_backward_cols)(const T* dy, const T* y, T* dx, i64 L, i64 I, i64 i0, i64 i1, int log);
    // Cross entropy of each position against a class index t (every index in [0, L) or
    // p.ignore, checked by the caller) or class probabilities t (laid out like x): loss[position]
    // in double (0 for an ignored one) and g = p.scale * (softmax(x) * sum t' - t').
    void (*ce_index_rows)(const T* x, const i64* t, T* g, double* loss, i64 rows, i64 L, const CeParams<T>& p);
    void (*ce_index_cols)(const T* x, const i64* t, T* g, double* loss, i64 L, i64 I, i64 i0, i64 i1,
                          const CeParams<T>& p);
    void (*ce_prob_rows)(const T* x, const T* t, T* g, double* loss, i64 rows, i64 L, const CeParams<T>& p);
    void (*ce_prob_cols)(const T* x, const T* t, T* g, double* loss, i64 L, i64 I, i64 i0, i64 i1,
                         const CeParams<T>& p);
};

// Every kernel family for one dtype.
template <class T>
struct Kernels {
    ElementwiseKernels<T> act;
    ConvKernels<T> conv;
    GemmKernels<T> gemm;
    WinogradKernels<T> wino;
    FftKernels<T> fft;
    NormKernels<T> norm;
    LossKernels<T> loss;
};

struct KernelTable {
    const char* isa;
    Kernels<float> f32;
    Kernels<double> f64;
    template <class T> const Kernels<T>& of() const;
};
template <> inline const Kernels<float>& KernelTable::of<float>() const { return f32; }
template <> inline const Kernels<double>& KernelTable::of<double>() const { return f64; }

// One accessor per compiled ISA (defined in cpp/kernels, one object library each).
namespace scalar { const KernelTable* kernel_table(); }
namespace avx2 { const KernelTable* kernel_table(); }
namespace avx512 { const KernelTable* kernel_table(); }

}  // namespace relucore
