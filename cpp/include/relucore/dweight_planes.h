// A first layer's dweight and dbias taken from dy an image (the planes of a block of filters) at a
// time, so that what produces dy (the batch norm + pool backward) hands them over from its scratch
// instead of writing dy out for conv2d_backward to read twice. For layers whose dweight
// conv2d_backward sums in the dot form (dweight_is_dot_form), with its sums: the same fixed chunks
// of images, each chunk's lane accumulators fed in image order and the chunks added in order; dbias
// from per-plane sums (bias_from_plane_sums). The same bits as conv2d_backward for any thread count.
#pragma once
#include <vector>

#include "relucore/conv.h"

namespace relucore {
namespace ops {

template <class T> class DweightPlanes {
  public:
    // x: the layer's input (s.N, s.C, s.H, s.W); dw (F, C, kh, kw) and db (F, may be null) are
    // written by finish(). Only for dweight_is_dot_form(s).
    DweightPlanes(const T* x, const Conv2dShape& s, T* dw, T* db);

    i64 chunks() const { return chunks_; }
    i64 first_image(i64 chunk) const { return chunk * s_.N / chunks_; }
    // dy's planes (n, f) for f in [f0, f1) (f0 a multiple of kDotTileM), plane f at dy + (f - f0) *
    // OH*OW. A chunk's images in order for each filter, each (chunk, f) fed by one thread at a time.
    void add(i64 chunk, i64 n, i64 f0, i64 f1, const T* dy);
    void finish();

  private:
    const T* x_;
    Conv2dShape s_;
    T *dw_, *db_;
    i64 chunks_, rows_, pixels_, chunk_acc_;
    std::vector<T> acc_store_;        // per chunk, dot_acc_elements(F, rows_) from acc_ (64-byte aligned)
    T* acc_;
    std::vector<double> plane_sums_;  // per plane (n, f), for dbias
};

}  // namespace ops
}  // namespace relucore
