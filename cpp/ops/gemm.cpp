#include "gemm.h"

#include "relucore/dispatch.h"
#include "threads.h"

namespace relucore {
namespace ops {
namespace {
enum Backend { kAuto = 0, kOwn = 1, kBlas = 2 };

template <class T>
bool run(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb,
         T beta, T* c, int64_t ldc) {
    const SettingsScope settings;  // one backend and table for the whole product
    if (gemm_uses_own())
        return gemm_kernels<T>().gemm(ta == Tr::T, tb == Tr::T, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return true;
}
}  // namespace

bool gemm_uses_own() {
    const Settings s = current_settings();
    const int b = s.gemm;
    return b == kOwn || (b == kAuto && s.kernels->f32.gemm.beats_blas);
}

bool gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
    return run(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

bool gemm(Tr ta, Tr tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc) {
    return run(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void release_scratch() {
    release_thread_scratch();  // the calling thread (it may not be one of the pool's)
    on_every_worker([]() noexcept { release_thread_scratch(); });
}

int64_t gemm_align() { return gemm_uses_own() ? active_kernels().f32.gemm.nr : 64; }

bool set_gemm_backend(const std::string& name) {
    const int b = name == "auto" ? kAuto : name == "own" ? kOwn : name == "blas" ? kBlas : -1;
    if (b < 0) return false;
    set_gemm_switch(b);
    return true;
}

std::string gemm_backend() {
    const int b = current_settings().gemm;
    return b == kOwn ? "own" : b == kBlas ? "blas" : "auto";
}

}  // namespace ops
}  // namespace relucore
