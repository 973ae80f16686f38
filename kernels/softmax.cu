// Row-wise softmax and log-softmax, forward and backward, for rows of any length.
//
// One block per row (grid-stride over rows). The forward reads the row twice: once for the running
// max and sum (an online softmax: each thread keeps (m, s) with s = Σ exp(x - m), rescaled whenever
// m grows), once to write. Threads' (m, s) pairs are combined through the block maximum.
// Statistics are in f32 (f64 for f64); -inf entries contribute nothing, NaN propagates.

namespace ptm {

template <typename A> __device__ __forceinline__ void online_push(A x, A& m, A& s) {
    if (x > m) {
        s = s * mexp(m - x) + A(1);
        m = x;
    } else if (x != A(-INFINITY)) {
        s += mexp(x - m);  // x NaN makes s NaN, as it should
    }
}

// Row maximum and Σ exp(x - max) of `x[0..n)`, for every thread of the block.
template <typename T, typename A>
__device__ __forceinline__ void row_stats(const T* x, i64 n, A& row_max, A& row_sum, A* scratch) {
    A m = A(-INFINITY), s = A(0);
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) online_push(to_acc(x[j]), m, s);
    row_max = block_max(m, scratch);
    const A scaled = (m == A(-INFINITY)) ? A(0) : s * mexp(m - row_max);
    row_sum = block_sum(scaled, scratch);
}

template <typename T>
__device__ void softmax_fwd(i64 rows, i64 n, const T* x, T* y, int log_space) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * n;
        T* yr = y + r * n;
        A mx, sum;
        row_stats(xr, n, mx, sum, scratch);
        if (log_space) {
            const A lse = mx + mlog(sum);
            for (i64 j = threadIdx.x; j < n; j += blockDim.x) yr[j] = from_acc<T>(to_acc(xr[j]) - lse);
        } else {
            const A inv = A(1) / sum;
            for (i64 j = threadIdx.x; j < n; j += blockDim.x) yr[j] = from_acc<T>(mexp(to_acc(xr[j]) - mx) * inv);
        }
    }
}

// softmax: dx = y (dy - Σ dy y); log-softmax: dx = dy - exp(y) Σ dy. With accumulate, dx += that.
template <typename T>
__device__ void softmax_bwd(i64 rows, i64 n, const T* y, const T* dy, T* dx, int log_space, int accumulate) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* yr = y + r * n;
        const T* dyr = dy + r * n;
        T* dxr = dx + r * n;
        A part = A(0);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x)
            part += log_space ? to_acc(dyr[j]) : to_acc(dyr[j]) * to_acc(yr[j]);
        const A dot = block_sum(part, scratch);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            const A yv = to_acc(yr[j]), g = to_acc(dyr[j]);
            A v = log_space ? g - mexp(yv) * dot : yv * (g - dot);
            if (accumulate) v += to_acc(dxr[j]);
            dxr[j] = from_acc<T>(v);
        }
    }
}

}  // namespace ptm

#define PTM_SOFTMAX(T, S)                                                                            \
    extern "C" __global__ void softmax_fwd_##S(i64 rows, i64 n, const T* x, T* y, int log_space) {   \
        ptm::softmax_fwd<T>(rows, n, x, y, log_space);                                              \
    }                                                                                               \
    extern "C" __global__ void softmax_bwd_##S(i64 rows, i64 n, const T* y, const T* dy, T* dx,     \
                                               int log_space, int accumulate) {                     \
        ptm::softmax_bwd<T>(rows, n, y, dy, dx, log_space, accumulate);                             \
    }

PTM_SOFTMAX(float, f32)
PTM_SOFTMAX(double, f64)
PTM_SOFTMAX(f16, f16)
PTM_SOFTMAX(bf16, bf16)
