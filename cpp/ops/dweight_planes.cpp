// DweightPlanes (relucore/dweight_planes.h): the dot form's lane accumulators per chunk of images,
// fed image by image, reduced and added as conv2d_backward does.
#include "relucore/dweight_planes.h"

#include <stdint.h>

#include <new>

#include "items.h"
#include "scratch.h"
#include "relucore/dispatch.h"

namespace relucore {
namespace ops {

template <class T>
DweightPlanes<T>::DweightPlanes(const T* x, const Conv2dShape& s, T* dw, T* db)
    : x_(x), s_(s), dw_(dw), db_(db), chunks_(s.N < kDwChunks ? s.N : kDwChunks),
      rows_(s.g.C * s.g.kh * s.g.kw), pixels_(s.g.OH * s.g.OW), chunk_acc_(dot_acc_elements<T>(s.F, rows_)),
      acc_store_((size_t)(chunks_ * chunk_acc_ + kMaxLanes<T>)), plane_sums_(db ? (size_t)(s.N * s.F) : 0) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(acc_store_.data());
    acc_ = acc_store_.data() + ((64 - at % 64) % 64) / sizeof(T);
}

template <class T> void DweightPlanes<T>::add(i64 chunk, i64 n, i64 f0, i64 f1, const T* dy) {
    T* cols = scratch<T>(kColumnBlock, rows_ * pixels_);
    if (!cols) throw std::bad_alloc();
    conv_kernels<T>().im2col(x_ + n * s_.C * s_.H * s_.W, cols, s_.g, 0, rows_);
    if (db_)
        for (i64 f = f0; f < f1; ++f)
            plane_sums_[(size_t)(n * s_.F + f)] = conv_kernels<T>().sum(dy + (f - f0) * pixels_, pixels_);
    gemm_kernels<T>().dot_acc_block(f0, f1 - f0, rows_, pixels_, dy, pixels_, cols, pixels_,
                                    acc_ + chunk * chunk_acc_, n == first_image(chunk));
}

template <class T> void DweightPlanes<T>::finish() {
    const i64 size = s_.F * rows_;
    const auto reduce = gemm_kernels<T>().dot_acc_reduce;
    std::vector<T> partial(chunks_ > 1 ? (size_t)size : 0);
    if (chunks_ == 0)  // no images
        for (i64 i = 0; i < size; ++i) dw_[i] = T(0);
    for (i64 c = 0; c < chunks_; ++c) {
        T* out = c == 0 ? dw_ : partial.data();
        reduce(s_.F, rows_, acc_ + c * chunk_acc_, out, rows_);
        if (c > 0)
            for (i64 i = 0; i < size; ++i) dw_[i] += partial[(size_t)i];
    }
    if (db_) bias_from_plane_sums(plane_sums_.data(), s_.N, s_.F, db_);
}

template class DweightPlanes<float>;
template class DweightPlanes<double>;

}  // namespace ops
}  // namespace relucore
