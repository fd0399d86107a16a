// The portable baseline ISA: every "vector" is one lane, no FMA.
#pragma once
#include "scalar.h"

namespace relucore {
namespace RC_NS {
static inline void stream_fence() {}
template <class T> struct VecOf { using type = Scalar<T, false>; };
template <class T> using ScalarOf = Scalar<T, false>;
#define RC_ISA_NAME "scalar"
}  // namespace RC_NS
}  // namespace relucore
