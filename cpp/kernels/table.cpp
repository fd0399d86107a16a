// This ISA's kernel table.
#include "isa.h"

namespace relucore {
namespace RC_NS {

template <class T> ConvKernels<T> make_conv() {
    ConvKernels<T> k;
    fill_im2col(k);
    fill_pool(k);
    fill_depthwise(k);
    fill_small_conv(k);
    fill_reduce(k);
    return k;
}

// Built on first call, never at load: this object's code may use instructions the CPU lacks, and
// dispatch calls it only for an ISA the CPU has.
const KernelTable* kernel_table() {
    static const KernelTable table = {
        RC_ISA_NAME,
        {make_elementwise<float>(), make_conv<float>(), make_gemm<float>(), make_winograd<float>(),
         make_fft<float>(), make_norm<float>(), make_loss<float>()},
        {make_elementwise<double>(), make_conv<double>(), make_gemm<double>(), make_winograd<double>(),
         make_fft<double>(), make_norm<double>(), make_loss<double>()}};
    return &table;
}

}  // namespace RC_NS
}  // namespace relucore
