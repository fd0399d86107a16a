// The memory of relucore's own large output arrays: a NumPy memory handler that keeps freed blocks
// for the next array of the same size. glibc returns large freed blocks to the OS, so an output
// re-allocated every training step page-faults all of its memory again every step.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pybind11 {
class module_;
}

namespace relucore {
namespace bind {

// Arrays of at least this many bytes are created with the caching handler; smaller ones never see it.
constexpr int64_t kOutputCacheMinBytes = int64_t(256) << 10;

// While alive, NumPy allocates new arrays with the caching handler if `nbytes` is large enough and
// the cache is on (the handler is recorded on each array, so its free comes back to the cache from
// wherever it happens). Needs the GIL; create the array inside the scope, nothing else.
class OutputScope {
public:
    explicit OutputScope(int64_t nbytes);
    ~OutputScope();
    OutputScope(const OutputScope&) = delete;
    OutputScope& operator=(const OutputScope&) = delete;

private:
    void* previous_ = nullptr;  // the handler capsule to restore (a new reference), or null
};

void bind_output_cache(pybind11::module_& m);

}  // namespace bind
}  // namespace relucore
