// Whole-buffer reductions: the sum (bias gradients) and max |x| (Winograd's overflow guard),
// written once against the vector wrapper.
#include "isa.h"

namespace relucore {
namespace RC_NS {
namespace {

// Four vector accumulators: the adds are independent (a scalar loop is one 4-cycle chain).
template <class T> double sum(const T* x, i64 n) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    V acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    i64 i = 0;
    for (; i + 4 * L <= n; i += 4 * L)
        for (int u = 0; u < 4; ++u) acc[u] = acc[u] + V::load(x + i + u * L);
    for (; i + L <= n; i += L) acc[0] = acc[0] + V::load(x + i);
    if (i < n) acc[1] = acc[1] + V::load_tail(x + i, n - i);
    return (double)reduce_add((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

template <class T> T max_abs(const T* x, i64 n) {
    using V = typename VecOf<T>::type;
    constexpr int L = V::L;
    V m = V::zero(), nan = V::zero();  // nan collects x != x lanes as nonzero
    i64 i = 0;
    for (; i + L <= n; i += L) {
        const V v = V::load(x + i);
        m = max(m, abs(v));  // x86 max: a NaN operand in the first slot is dropped, hence the check
        nan = nan + select(eq(v, v), V::zero(), V::set1(T(1)));
    }
    T r = T(0), bad = T(0);
    T lanes[L];
    m.store(lanes);
    for (int l = 0; l < L; ++l) r = lanes[l] > r ? lanes[l] : r;
    nan.store(lanes);
    for (int l = 0; l < L; ++l) bad += lanes[l];
    for (; i < n; ++i) {
        const T a = x[i] < T(0) ? -x[i] : x[i];
        if (a != a) bad += T(1);
        else if (a > r) r = a;
    }
    return bad != T(0) ? T(__builtin_inf()) : r;
}

}  // namespace

template <class T> void fill_reduce(ConvKernels<T>& k) {
    k.sum = sum<T>;
    k.max_abs = max_abs<T>;
}
template void fill_reduce<float>(ConvKernels<float>&);
template void fill_reduce<double>(ConvKernels<double>&);

}  // namespace RC_NS
}  // namespace relucore
