// Fused softmax + cross-entropy over rows of `c` logits, PyTorch's semantics: rows whose target is
// `ignore_index` count for nothing. The probabilities are never stored: the forward keeps each
// row's log-sum-exp, the backward recomputes exp(x - lse) from it.

namespace ptm {

template <typename A> __device__ __forceinline__ void ce_push(A x, A& m, A& s) {
    if (x > m) {
        s = s * mexp(m - x) + A(1);
        m = x;
    } else if (x != A(-INFINITY)) {
        s += mexp(x - m);
    }
}

// loss[r] = lse(row) - row[target] (0 for ignored rows), lse[r] saved for the backward.
template <typename T>
__device__ void ce_fwd(i64 rows, i64 c, const T* logits, const i64* targets, i64 ignore_index,
                       typename Acc<T>::type* loss, typename Acc<T>::type* lse) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = logits + r * c;
        const i64 t = targets[r];
        if (t == ignore_index) {
            if (threadIdx.x == 0) {
                loss[r] = A(0);
                lse[r] = A(0);
            }
            continue;
        }
        A m = A(-INFINITY), s = A(0);
        for (i64 j = threadIdx.x; j < c; j += blockDim.x) ce_push(to_acc(xr[j]), m, s);
        const A mx = block_max(m, scratch);
        const A sum = block_sum(m == A(-INFINITY) ? A(0) : s * mexp(m - mx), scratch);
        if (threadIdx.x == 0) {
            const A l = mx + mlog(sum);
            lse[r] = l;
            loss[r] = l - to_acc(xr[t]);
        }
    }
}

// dlogits = scale · (softmax(row) - onehot(target)), scale = dloss[0] · factor (for the mean loss,
// factor = 1 / counted rows); zero rows for ignored targets. With accumulate, dlogits += that.
template <typename T>
__device__ void ce_bwd(i64 rows, i64 c, const T* logits, const i64* targets, i64 ignore_index,
                       const typename Acc<T>::type* lse, const T* dloss, double factor, T* dlogits,
                       int accumulate) {
    typedef typename Acc<T>::type A;
    const A scale = to_acc(dloss[0]) * A(factor);
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = logits + r * c;
        T* gr = dlogits + r * c;
        const i64 t = targets[r];
        const bool ignored = t == ignore_index;
        const A l = lse[r];
        for (i64 j = threadIdx.x; j < c; j += blockDim.x) {
            A v = ignored ? A(0) : scale * (mexp(to_acc(xr[j]) - l) - (j == t ? A(1) : A(0)));
            if (accumulate) v += to_acc(gr[j]);
            gr[j] = from_acc<T>(v);
        }
    }
}

}  // namespace ptm

#define PTM_CE(T, S, A)                                                                                \
    extern "C" __global__ void cross_entropy_fwd_##S(i64 rows, i64 c, const T* logits, const i64* t,    \
                                                     i64 ignore, A* loss, A* lse) {                    \
        ptm::ce_fwd<T>(rows, c, logits, t, ignore, loss, lse);                                        \
    }                                                                                                 \
    extern "C" __global__ void cross_entropy_bwd_##S(i64 rows, i64 c, const T* logits, const i64* t,    \
                                                     i64 ignore, const A* lse, const T* dloss,         \
                                                     double factor, T* dlogits, int accumulate) {      \
        ptm::ce_bwd<T>(rows, c, logits, t, ignore, lse, dloss, factor, dlogits, accumulate);          \
    }

PTM_CE(float, f32, float)
PTM_CE(double, f64, double)
PTM_CE(f16, f16, float)
PTM_CE(bf16, bf16, float)
