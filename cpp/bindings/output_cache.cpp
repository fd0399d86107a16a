// The caching NumPy memory handler behind relucore's large output arrays (see output_cache.h).
//
// Freed blocks wait in exact-size buckets for the next array of that size (a training step asks for
// the same sizes every step). Bounds: blocks up to kMaxBlock, at most kMaxCached bytes in all, the
// oldest dropped first. NumPy may free from any thread, with or without the GIL: one mutex guards
// the cache, and nothing here touches Python objects except OutputScope (which holds the GIL).
#include "output_cache.h"

#include <pybind11/pybind11.h>

#include <pthread.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <new>
#include <unordered_map>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

namespace py = pybind11;

namespace relucore {
namespace bind {
namespace {

constexpr size_t kMaxBlock = size_t(64) << 20;
constexpr size_t kMaxCached = size_t(256) << 20;
// Each block starts with its size (realloc and free need it; NumPy's size argument is not always
// the allocated one); 64 bytes keep the data 64-byte aligned for the vector kernels.
constexpr size_t kHeader = 64;

struct Block {
    char* base;
    size_t size;  // the caller's bytes, after the header
};

struct Cache {
    std::mutex lock;
    std::list<Block> order;  // oldest first
    std::unordered_map<size_t, std::deque<std::list<Block>::iterator>> buckets;  // oldest first
    size_t cached = 0;
    int64_t hits = 0, misses = 0;
};

// Never destroyed: arrays may be freed after static destructors ran, at interpreter exit.
Cache* const g_cache = new Cache;
bool g_enabled = true;
PyObject* g_capsule = nullptr;  // the handler as NumPy takes it; never released

// A fork while another thread holds the lock: the child's copy of it is re-initialised (prepare
// takes it first, so the lists are consistent in the child).
void before_fork() { g_cache->lock.lock(); }
void after_fork_in_parent() { g_cache->lock.unlock(); }
void after_fork_in_child() { new (&g_cache->lock) std::mutex; }
const int g_atfork = pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);

char* data_of(char* base) { return base + kHeader; }
char* base_of(void* data) { return static_cast<char*>(data) - kHeader; }
size_t size_of(void* data) { return *reinterpret_cast<size_t*>(base_of(data)); }

void* fresh(size_t size) {
    if (size > SIZE_MAX - kHeader) return nullptr;
    void* base = nullptr;
    if (posix_memalign(&base, kHeader, kHeader + size) != 0) return nullptr;
    *static_cast<size_t*>(base) = size;
    return data_of(static_cast<char*>(base));
}

// A cached block of exactly `size` bytes (the newest: its memory is the likeliest still in cache), or null.
void* take(size_t size) {
    if (size > kMaxBlock) return nullptr;
    std::lock_guard<std::mutex> g(g_cache->lock);
    const auto b = g_cache->buckets.find(size);
    if (b == g_cache->buckets.end()) {
        ++g_cache->misses;
        return nullptr;
    }
    const auto it = b->second.back();
    b->second.pop_back();
    if (b->second.empty()) g_cache->buckets.erase(b);
    char* base = it->base;
    g_cache->order.erase(it);
    g_cache->cached -= size;
    ++g_cache->hits;
    return data_of(base);
}

void drop_oldest() {
    const Block old = g_cache->order.front();
    auto& bucket = g_cache->buckets[old.size];
    bucket.pop_front();
    if (bucket.empty()) g_cache->buckets.erase(old.size);
    g_cache->order.pop_front();
    g_cache->cached -= old.size;
    std::free(old.base);
}

void give(void* data) {
    const size_t size = size_of(data);
    char* base = base_of(data);
    if (size > kMaxBlock) {
        std::free(base);
        return;
    }
    std::lock_guard<std::mutex> g(g_cache->lock);
    try {
        g_cache->order.push_back(Block{base, size});
    } catch (...) {  // no memory for the bookkeeping: free the block instead
        std::free(base);
        return;
    }
    try {
        g_cache->buckets[size].push_back(std::prev(g_cache->order.end()));
    } catch (...) {
        g_cache->order.pop_back();
        std::free(base);
        return;
    }
    g_cache->cached += size;
    while (g_cache->cached > kMaxCached) drop_oldest();
}

void release_all() {
    std::list<Block> blocks;
    {
        std::lock_guard<std::mutex> g(g_cache->lock);
        blocks.swap(g_cache->order);
        g_cache->buckets.clear();
        g_cache->cached = 0;
    }
    for (const Block& b : blocks) std::free(b.base);
}

// The PyDataMem_Handler entry points: C callbacks, so they never throw.
void* cache_malloc(void*, size_t size) {
    void* p = take(size);
    return p ? p : fresh(size);
}

void* cache_calloc(void*, size_t nelem, size_t elsize) {
    size_t size;
    if (__builtin_mul_overflow(nelem, elsize, &size)) return nullptr;
    void* p = cache_malloc(nullptr, size);
    if (p) std::memset(p, 0, size);
    return p;
}

void* cache_realloc(void*, void* ptr, size_t size) {
    if (!ptr) return cache_malloc(nullptr, size);
    void* p = cache_malloc(nullptr, size);
    if (!p) return nullptr;  // the old block stays the caller's
    const size_t old = size_of(ptr);
    std::memcpy(p, ptr, old < size ? old : size);
    give(ptr);
    return p;
}

void cache_free(void*, void* ptr, size_t) {
    if (ptr) give(ptr);
}

PyDataMem_Handler g_handler = {
    "relucore_output_cache", 1, {nullptr, &cache_malloc, &cache_calloc, &cache_realloc, &cache_free}};

py::dict stats() {
    int64_t hits, misses, cached, blocks;
    {  // copied first: building the dict may run the garbage collector, which may free into the cache
        std::lock_guard<std::mutex> g(g_cache->lock);
        hits = g_cache->hits;
        misses = g_cache->misses;
        cached = (int64_t)g_cache->cached;
        blocks = (int64_t)g_cache->order.size();
    }
    py::dict d;
    d["hits"] = hits;
    d["misses"] = misses;
    d["cached_bytes"] = cached;
    d["blocks"] = blocks;
    d["enabled"] = g_enabled;
    d["max_block_bytes"] = (int64_t)kMaxBlock;
    d["max_cached_bytes"] = (int64_t)kMaxCached;
    d["min_array_bytes"] = kOutputCacheMinBytes;
    return d;
}

// A float64 array of n zeros made through the handler's calloc (NumPy's zeros), for tests.
py::object zeros(int64_t n) {
    if (n < 0) throw py::value_error("n must be >= 0");
    OutputScope scope(n > INT64_MAX / 8 ? 0 : n * 8);
    npy_intp dim = (npy_intp)n;
    PyObject* a = PyArray_ZEROS(1, &dim, NPY_DOUBLE, 0);
    if (!a) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(a);
}

}  // namespace

OutputScope::OutputScope(int64_t nbytes) {
    if (!g_enabled || !g_capsule || nbytes < kOutputCacheMinBytes) return;
    previous_ = PyDataMem_SetHandler(g_capsule);
    if (!previous_) PyErr_Clear();  // allocate with NumPy's handler then
}

OutputScope::~OutputScope() {
    if (!previous_) return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);  // a failed allocation's error survives the restore
    PyObject* ours = PyDataMem_SetHandler(static_cast<PyObject*>(previous_));
    if (ours)
        Py_DECREF(ours);
    else
        PyErr_Clear();
    Py_DECREF(static_cast<PyObject*>(previous_));
    PyErr_Restore(type, value, tb);
}

void bind_output_cache(py::module_& m) {
    if (PyArray_ImportNumPyAPI() < 0) throw py::error_already_set();
    const char* env = std::getenv("RELUCORE_OUTPUT_CACHE");
    g_enabled = !(env && std::strcmp(env, "0") == 0);
    g_capsule = PyCapsule_New(&g_handler, "mem_handler", nullptr);
    if (!g_capsule) throw py::error_already_set();
    m.def("_output_cache_stats", &stats,
          "the output cache's counters: hits, misses, cached_bytes, blocks, enabled and its bounds (for tests)");
    m.def("_output_cache_release", &release_all, "free every block the output cache holds");
    m.def("_output_cache_zeros", &zeros, py::arg("n"),
          "a float64 array of n zeros allocated through the output cache's calloc (for tests)");
}

}  // namespace bind
}  // namespace relucore
