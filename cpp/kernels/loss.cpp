// Softmax, log-softmax and the fused softmax cross-entropy over L classes. Rows: the classes of one
// position are contiguous, vectorized along the row. Columns: class stride I (an (N, C, S) array),
// vectorized across positions, each lane its own softmax. Every pass subtracts the maximum first, so
// logits of any finite size (±1e4) stay finite. Compiled once per ISA; cpp/ops/loss.cpp threads.
#include "isa.h"
#include "vmath.h"

namespace relucore {
namespace RC_NS {
namespace {

// Elements summed in T before the partial sum moves to double (as in batch norm's statistics).
constexpr i64 kBlock = 1 << 12;

template <class T> using Vec = typename VecOf<T>::type;

template <class T> inline T neg_inf() { return (T)-__builtin_huge_val(); }
inline double log_of(double v) { return __builtin_log(v); }

// f(W(), i) for the whole vectors of [b, e) (W = the ISA's vector), then each tail element
// (W = one lane). Both W have the same operations, so one generic lambda serves both.
template <class T, class F> inline void each(i64 b, i64 e, F&& f) {
    using V = Vec<T>;
    i64 i = b;
    for (; i + V::L <= e; i += V::L) f(V(), i);
    for (; i < e; ++i) f(ScalarOf<T>(), i);
}

// A sum in T, moved to double at each flush.
template <class T> struct Sum {
    using V = Vec<T>;
    using S = ScalarOf<T>;
    V v = V::zero();
    S s = S::zero();
    double total = 0;
    template <class W> void add(W a) {
        if constexpr (W::L > 1) v = v + a; else s = s + a;
    }
    void flush() {
        total += (double)reduce_add(v) + (double)s.v;
        v = V::zero();
        s = S::zero();
    }
};

// each() over [0, n) in blocks of kBlock, calling flush() after each block.
template <class T, class F, class G> inline void each_block(i64 n, F&& f, G&& flush) {
    for (i64 b = 0; b < n; b += kBlock) {
        each<T>(b, b + kBlock < n ? b + kBlock : n, f);
        flush();
    }
}

// The largest of x[0..L), ignoring NaN (a NaN still makes the slice's sum NaN).
template <class T> T row_max(const T* x, i64 L) {
    using V = Vec<T>;
    T m = neg_inf<T>();
    i64 i = 0;
    if (L >= V::L) {
        V a = V::load(x);
        for (i = V::L; i + V::L <= L; i += V::L) a = max(a, V::load(x + i));
        T t[V::L];
        a.store(t);
        for (int l = 0; l < V::L; ++l) m = t[l] > m ? t[l] : m;
    }
    for (; i < L; ++i) m = x[i] > m ? x[i] : m;
    return m;
}

// ---------------------------------------------------------------- rows

template <class T> void softmax_rows(const T* x, T* y, i64 rows, i64 L, int log) {
    for (i64 r = 0; r < rows; ++r) {
        const T* xr = x + r * L;
        T* yr = y + r * L;
        const T m = row_max(xr, L);
        Sum<T> s;
        auto flush = [&] { s.flush(); };
        if (log) {
            each_block<T>(L, [&](auto w, i64 i) {
                using W = decltype(w);
                s.add(vexp_nonpositive(W::load(xr + i) - W::set1(m)));
            }, flush);
            const T ls = (T)log_of(s.total);
            // (x - m) is exact near the maximum; subtracting m + log s rounded to T would not be
            each<T>(0, L, [&](auto w, i64 i) {
                using W = decltype(w);
                ((W::load(xr + i) - W::set1(m)) - W::set1(ls)).store(yr + i);
            });
        } else {
            each_block<T>(L, [&](auto w, i64 i) {
                using W = decltype(w);
                const W e = vexp_nonpositive(W::load(xr + i) - W::set1(m));
                e.store(yr + i);
                s.add(e);
            }, flush);
            const T inv = (T)(1.0 / s.total);
            each<T>(0, L, [&](auto w, i64 i) {
                using W = decltype(w);
                (W::load(yr + i) * W::set1(inv)).store(yr + i);
            });
        }
    }
}

template <class T> void softmax_backward_rows(const T* dy, const T* y, T* dx, i64 rows, i64 L, int log) {
    for (i64 r = 0; r < rows; ++r) {
        const T *dyr = dy + r * L, *yr = y + r * L;
        T* dxr = dx + r * L;
        Sum<T> s;  // sum of dy * y (softmax) or of dy (log-softmax)
        each_block<T>(L, [&](auto w, i64 i) {
            using W = decltype(w);
            s.add(log ? W::load(dyr + i) : W::load(dyr + i) * W::load(yr + i));
        }, [&] { s.flush(); });
        const T k = (T)s.total;
        each<T>(0, L, [&](auto w, i64 i) {
            using W = decltype(w);
            const W d = W::load(dyr + i), v = W::load(yr + i);
            (log ? d - vexp(v) * W::set1(k) : v * (d - W::set1(k))).store(dxr + i);
        });
    }
}

// Cross entropy against class indices: row r's loss and g = scale * (softmax * st - spread), then
// g[t] -= scale * keep (st = 1, or 0 times the softmax for an ignored row). g may be x: x[t] is
// read first and every other element is read before it is written.
template <class T>
void ce_index_rows(const T* x, const i64* t, T* g, double* loss, i64 rows, i64 L, const CeParams<T>& p) {
    for (i64 r = 0; r < rows; ++r) {
        const T* xr = x + r * L;
        T* gr = g + r * L;
        const i64 tr = t[r];
        const bool valid = tr != p.ignore;
        const bool smooth = valid && p.spread != 0;
        const T m = row_max(xr, L);
        const T xt = valid ? xr[tr] : T(0);
        Sum<T> s, sd;  // sums of exp(x - m) and (smoothing) of m - x
        each_block<T>(L, [&](auto w, i64 i) {
            using W = decltype(w);
            const W x1 = W::load(xr + i);
            const W e = vexp_nonpositive(x1 - W::set1(m));
            e.store(gr + i);
            s.add(e);
            if (smooth) sd.add(W::set1(m) - x1);
        }, [&] { s.flush(); sd.flush(); });
        const double ls = log_of(s.total);
        const double keep = (double)p.keep, spread = (double)p.spread, scale = (double)p.scale;
        loss[r] = valid ? ls + keep * ((double)m - (double)xt) + (smooth ? spread * sd.total : 0.0) : 0.0;
        const double et = valid ? (double)gr[tr] : 0.0;
        // an ignored row's g is 0 * softmax: NaN all along where its sum is (an inf or NaN in x), as PyTorch
        const T a = (T)((valid ? scale : 0.0) / s.total), b = (T)(valid ? -scale * spread : 0.0);
        each<T>(0, L, [&](auto w, i64 i) {
            using W = decltype(w);
            (W::load(gr + i) * W::set1(a) + W::set1(b)).store(gr + i);
        });
        if (valid) gr[tr] = (T)(scale * (et / s.total - spread - keep));
    }
}

// Against class probabilities t (rows like x): t' = keep * t + spread, loss = log(s) * sum t' +
// sum t' (m - x), g = scale * (softmax * sum t' - t').
template <class T>
void ce_prob_rows(const T* x, const T* t, T* g, double* loss, i64 rows, i64 L, const CeParams<T>& p) {
    for (i64 r = 0; r < rows; ++r) {
        const T *xr = x + r * L, *tr = t + r * L;
        T* gr = g + r * L;
        const T m = row_max(xr, L);
        Sum<T> s, st, stx;
        each_block<T>(L, [&](auto w, i64 i) {
            using W = decltype(w);
            const W x1 = W::load(xr + i);
            const W e = vexp_nonpositive(x1 - W::set1(m));
            const W tp = W::load(tr + i) * W::set1(p.keep) + W::set1(p.spread);
            e.store(gr + i);
            s.add(e);
            st.add(tp);
            stx.add(tp * (W::set1(m) - x1));
        }, [&] { s.flush(); st.flush(); stx.flush(); });
        loss[r] = log_of(s.total) * st.total + stx.total;
        const T a = (T)((double)p.scale * st.total / s.total);
        const T keep = p.keep * p.scale, spread = p.spread * p.scale;
        each<T>(0, L, [&](auto w, i64 i) {
            using W = decltype(w);
            const W tp = W::load(tr + i) * W::set1(keep) + W::set1(spread);
            (W::load(gr + i) * W::set1(a) - tp).store(gr + i);
        });
    }
}

// ---------------------------------------------------------------- columns

// Per-lane values of a W as T / double arrays.
template <class T, class W> inline void to_lanes(W a, double* d) {
    T t[W::L];
    a.store(t);
    for (int l = 0; l < W::L; ++l) d[l] += (double)t[l];
}
template <class T, class W, class F> inline W from_lanes(F&& f) {
    T t[W::L];
    for (int l = 0; l < W::L; ++l) t[l] = f(l);
    return W::load(t);
}

// Lane-wise maximum over the L classes of positions [i, i + W::L) (NaN handled as in row_max).
template <class T, class W> inline W col_max(const T* x, i64 L, i64 I, i64 i) {
    W m = W::set1(neg_inf<T>());
    for (i64 l = 0; l < L; ++l) m = max(m, W::load(x + l * I + i));
    return m;
}

// Lane-wise sums over the classes of f(l) (a W), in T within blocks of kBlock classes.
template <class T, class W, class F> inline void col_sum(i64 L, double* out, F&& f) {
    for (int j = 0; j < W::L; ++j) out[j] = 0;
    for (i64 b = 0; b < L; b += kBlock) {
        const i64 e = b + kBlock < L ? b + kBlock : L;
        W a = W::zero();
        for (i64 l = b; l < e; ++l) a = a + f(l);
        to_lanes<T>(a, out);
    }
}

template <class T> void softmax_cols(const T* x, T* y, i64 L, i64 I, i64 i0, i64 i1, int log) {
    each<T>(i0, i1, [&](auto w, i64 i) {
        using W = decltype(w);
        const W m = col_max<T, W>(x, L, I, i);
        double s[W::L];
        col_sum<T, W>(L, s, [&](i64 l) {
            const W e = vexp_nonpositive(W::load(x + l * I + i) - m);
            if (!log) e.store(y + l * I + i);
            return e;
        });
        if (log) {
            const W ls = from_lanes<T, W>([&](int j) { return (T)log_of(s[j]); });
            for (i64 l = 0; l < L; ++l) ((W::load(x + l * I + i) - m) - ls).store(y + l * I + i);
        } else {
            const W inv = from_lanes<T, W>([&](int j) { return (T)(1.0 / s[j]); });
            for (i64 l = 0; l < L; ++l) (W::load(y + l * I + i) * inv).store(y + l * I + i);
        }
    });
}

template <class T>
void softmax_backward_cols(const T* dy, const T* y, T* dx, i64 L, i64 I, i64 i0, i64 i1, int log) {
    each<T>(i0, i1, [&](auto w, i64 i) {
        using W = decltype(w);
        double s[W::L];
        col_sum<T, W>(L, s, [&](i64 l) {
            const W d = W::load(dy + l * I + i);
            return log ? d : d * W::load(y + l * I + i);
        });
        const W k = from_lanes<T, W>([&](int j) { return (T)s[j]; });
        for (i64 l = 0; l < L; ++l) {
            const W d = W::load(dy + l * I + i), v = W::load(y + l * I + i);
            (log ? d - vexp(v) * k : v * (d - k)).store(dx + l * I + i);
        }
    });
}

template <class T>
void ce_index_cols(const T* x, const i64* t, T* g, double* loss, i64 L, i64 I, i64 i0, i64 i1,
                   const CeParams<T>& p) {
    const double keep = (double)p.keep, spread = (double)p.spread, scale = (double)p.scale;
    each<T>(i0, i1, [&](auto w, i64 i) {
        using W = decltype(w);
        constexpr int n = W::L;
        bool valid[n];
        T xt[n], mt[n];
        bool smooth = false;
        for (int j = 0; j < n; ++j) {
            valid[j] = t[i + j] != p.ignore;
            xt[j] = valid[j] ? x[t[i + j] * I + i + j] : T(0);
            smooth = smooth || (valid[j] && p.spread != 0);
        }
        const W m = col_max<T, W>(x, L, I, i);
        m.store(mt);
        double s[n], sd[n];
        col_sum<T, W>(L, s, [&](i64 l) {
            const W e = vexp_nonpositive(W::load(x + l * I + i) - m);
            if (!smooth) e.store(g + l * I + i);  // with smoothing x is read once more below
            return e;
        });
        if (smooth) {
            col_sum<T, W>(L, sd, [&](i64 l) {
                const W x1 = W::load(x + l * I + i);
                vexp_nonpositive(x1 - m).store(g + l * I + i);
                return m - x1;
            });
        }
        double et[n];
        for (int j = 0; j < n; ++j) {
            loss[i + j] = valid[j] ? log_of(s[j]) + keep * ((double)mt[j] - (double)xt[j]) +
                                         (p.spread != 0 ? spread * sd[j] : 0.0)
                                   : 0.0;
            et[j] = valid[j] ? (double)g[t[i + j] * I + i + j] : 0.0;
        }
        const W a = from_lanes<T, W>([&](int j) { return (T)((valid[j] ? scale : 0.0) / s[j]); });  // as the rows
        const W b = from_lanes<T, W>([&](int j) { return (T)(valid[j] ? -scale * spread : 0.0); });
        for (i64 l = 0; l < L; ++l) (W::load(g + l * I + i) * a + b).store(g + l * I + i);
        for (int j = 0; j < n; ++j)
            if (valid[j]) g[t[i + j] * I + i + j] = (T)(scale * (et[j] / s[j] - spread - keep));
    });
}

template <class T>
void ce_prob_cols(const T* x, const T* t, T* g, double* loss, i64 L, i64 I, i64 i0, i64 i1,
                  const CeParams<T>& p) {
    const T keep = p.keep * p.scale, spread = p.spread * p.scale;
    each<T>(i0, i1, [&](auto w, i64 i) {
        using W = decltype(w);
        constexpr int n = W::L;
        const W m = col_max<T, W>(x, L, I, i);
        double s[n], st[n], stx[n];
        col_sum<T, W>(L, s, [&](i64 l) {
            const W e = vexp_nonpositive(W::load(x + l * I + i) - m);
            return e;
        });
        col_sum<T, W>(L, st, [&](i64 l) { return W::load(t + l * I + i) * W::set1(p.keep) + W::set1(p.spread); });
        col_sum<T, W>(L, stx, [&](i64 l) {
            const W x1 = W::load(x + l * I + i);
            const W tp = W::load(t + l * I + i) * W::set1(p.keep) + W::set1(p.spread);
            vexp_nonpositive(x1 - m).store(g + l * I + i);  // g may be x: the last read of x
            return tp * (m - x1);
        });
        for (int j = 0; j < n; ++j) loss[i + j] = log_of(s[j]) * st[j] + stx[j];
        const W a = from_lanes<T, W>([&](int j) { return (T)((double)p.scale * st[j] / s[j]); });
        for (i64 l = 0; l < L; ++l) {
            const W tp = W::load(t + l * I + i) * W::set1(keep) + W::set1(spread);
            (W::load(g + l * I + i) * a - tp).store(g + l * I + i);
        }
    });
}

}  // namespace

template <class T> LossKernels<T> make_loss() {
    LossKernels<T> k;
    k.softmax_rows = softmax_rows<T>;
    k.softmax_cols = softmax_cols<T>;
    k.softmax_backward_rows = softmax_backward_rows<T>;
    k.softmax_backward_cols = softmax_backward_cols<T>;
    k.ce_index_rows = ce_index_rows<T>;
    k.ce_index_cols = ce_index_cols<T>;
    k.ce_prob_rows = ce_prob_rows<T>;
    k.ce_prob_cols = ce_prob_cols<T>;
    return k;
}

template LossKernels<float> make_loss<float>();
template LossKernels<double> make_loss<double>();

}  // namespace RC_NS
}  // namespace relucore
