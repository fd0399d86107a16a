// The public algorithm switch (relucore/conv.h) over the values of conv_algo.h.
#include "conv_algo.h"

#include "relucore/conv.h"

namespace relucore {
namespace ops {

bool set_conv_algo(const std::string& name) {
    const int a = name == "auto"       ? kAlgoAuto
                  : name == "gemm"     ? kAlgoGemm
                  : name == "winograd" ? kAlgoWinograd
                  : name == "fft"      ? kAlgoFft
                                       : -1;
    if (a < 0) return false;
    set_conv_algo_switch(a);
    return true;
}

std::string conv_algo() {
    const int a = current_settings().conv_algo;
    return a == kAlgoGemm ? "gemm" : a == kAlgoWinograd ? "winograd" : a == kAlgoFft ? "fft" : "auto";
}

}  // namespace ops
}  // namespace relucore
