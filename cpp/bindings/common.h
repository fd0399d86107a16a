// Shared by the binding files: a zero-copy look at a NumPy array that the fast paths can use as is.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <vector>

#include "output_cache.h"
#include "relucore/kernels.h"

namespace relucore {
namespace bind {

namespace py = pybind11;

constexpr int kF32 = 11, kF64 = 12;  // NPY_FLOAT, NPY_DOUBLE
// NPY_ARRAY_* flag bits (NumPy's ABI); pybind11 names only C-contiguity publicly.
constexpr int kCContiguous = 0x0001, kAligned = 0x0100, kWriteable = 0x0400;

struct View {
    PyObject* a = nullptr;
    int type = 0;  // kF32, kF64 or 0
    char* data = nullptr;
    i64 size = 0, nbytes = 0;
    int nd = 0;
    const py::ssize_t* shape = nullptr;  // the array's own dimensions, valid while it lives
};

// numpy.ndarray itself: a subclass (matrix, masked array) may not mean what its buffer says.
inline PyTypeObject* ndarray_type() {
    static PyTypeObject* const t =
        reinterpret_cast<PyTypeObject*>(py::object(py::module_::import("numpy").attr("ndarray")).release().ptr());
    return t;
}

// The array behind `h` if it can be used as is, else nullopt-like (a.a == nullptr).
inline View plain(py::handle h, bool writeable = false) {
    View v;
    if (Py_TYPE(h.ptr()) != ndarray_type()) return v;
    const auto a = py::reinterpret_borrow<py::array>(h);
    const py::dtype d = a.dtype();
    const int type = d.num();
    if (type != kF32 && type != kF64) return v;
    if (d.byteorder() == '>') return v;
    const int need = kCContiguous | kAligned | (writeable ? kWriteable : 0);
    if ((a.flags() & need) != need) return v;
    v.a = h.ptr();
    v.type = type;
    v.data = static_cast<char*>(const_cast<void*>(a.data()));
    v.nd = (int)a.ndim();
    v.shape = a.shape();
    v.size = 1;
    for (int i = 0; i < v.nd; ++i) v.size *= (i64)v.shape[i];
    v.nbytes = v.size * (v.type == kF32 ? 4 : 8);
    return v;
}

inline int ndim(const View& v) { return v.nd; }
inline const py::ssize_t* dims(const View& v) { return v.shape; }

inline bool same_shape(const View& a, const View& b) {
    if (ndim(a) != ndim(b)) return false;
    for (int i = 0; i < ndim(a); ++i)
        if (dims(a)[i] != dims(b)[i]) return false;
    return true;
}

inline bool disjoint(const View& a, const View& b) {
    return a.nbytes == 0 || b.nbytes == 0 || a.data + a.nbytes <= b.data || b.data + b.nbytes <= a.data;
}

// `out` may be the same memory as an input (elementwise in place) or disjoint from all of them.
inline bool out_ok(const View& out, const View& like, std::initializer_list<const View*> inputs) {
    if (!out.a || out.type != like.type || !same_shape(out, like)) return false;
    for (const View* in : inputs)
        if (!(in->data == out.data && in->nbytes == out.nbytes) && !disjoint(*in, out)) return false;
    return true;
}

// A new array relucore returns: large ones come from the output cache (see output_cache.h).
inline py::array new_array(const py::dtype& dt, const std::vector<py::ssize_t>& shape) {
    int64_t nbytes = dt.itemsize();
    for (py::ssize_t d : shape)
        if (d < 0 || __builtin_mul_overflow(nbytes, (int64_t)d, &nbytes)) nbytes = 0;  // NumPy refuses it
    OutputScope scope(nbytes);
    return py::array(dt, shape);
}

inline py::array new_like(const View& v) {
    return new_array(v.type == kF32 ? py::dtype::of<float>() : py::dtype::of<double>(),
                     std::vector<py::ssize_t>(dims(v), dims(v) + ndim(v)));
}

// The array a kernel writes: out_h itself if it may (the input `like` itself or disjoint from every
// input), else a new array like `like` when out_h is None; false when out_h cannot be used as is.
inline bool output_array(py::handle out_h, const View& like, std::initializer_list<const View*> inputs,
                         py::object& out, View& out_v) {
    if (out_h.is_none()) {
        out = new_like(like);
        out_v = plain(out, true);
        return true;
    }
    out_v = plain(out_h, true);
    if (!out_ok(out_v, like, inputs)) return false;
    out = py::reinterpret_borrow<py::object>(out_h);
    return true;
}

// (outer, channels, inner) with channels on axis 1; 0-d and 1-d arrays are one channel.
inline void geometry(const View& v, i64& outer, i64& channels, i64& inner) {
    const int nd = ndim(v);
    outer = nd >= 2 ? (i64)dims(v)[0] : 1;
    channels = nd >= 2 ? (i64)dims(v)[1] : 1;
    inner = 1;
    for (int i = 2; i < nd; ++i) inner *= (i64)dims(v)[i];
    if (nd < 2) inner = v.size;
}

}  // namespace bind
}  // namespace relucore
