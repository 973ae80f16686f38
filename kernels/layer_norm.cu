// Layer norm over rows, forward and backward, PyTorch's definition (biased variance, eps inside
// the square root). Statistics in f32 (f64 for f64), two passes for accuracy.
//
// The forward saves each row's mean and 1/sqrt(var + eps) (f32, f64 for f64). The backward writes
// dx row by row, and each block adds dy·x̂ and dy into its own row of partial sums for dw and db;
// `layer_norm_bwd_reduce` then sums those rows in a fixed order, so results are deterministic.

namespace ptm {

template <typename T>
__device__ void layer_norm_fwd(i64 rows, i64 n, const T* x, const T* w, const T* b, double eps, T* y,
                               typename Acc<T>::type* mean_out, typename Acc<T>::type* rstd_out) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * n;
        T* yr = y + r * n;
        A s = A(0);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) s += to_acc(xr[j]);
        const A mean = block_sum(s, scratch) / A(n);
        A q = A(0);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            const A d = to_acc(xr[j]) - mean;
            q += d * d;
        }
        const A var = block_sum(q, scratch) / A(n);
        const A rstd = A(1) / msqrt(var + A(eps));
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            A v = (to_acc(xr[j]) - mean) * rstd;
            if (w) v *= to_acc(w[j]);
            if (b) v += to_acc(b[j]);
            yr[j] = from_acc<T>(v);
        }
        if (threadIdx.x == 0) {
            if (mean_out) mean_out[r] = mean;
            if (rstd_out) rstd_out[r] = rstd;
        }
    }
}

// dx = rstd (g - mean(g) - x̂ mean(g x̂)) with g = dy w; partial dw += dy x̂, db += dy per block
// (row blockIdx.x of dw_part / db_part, n wide, zeroed by this kernel first).
template <typename T>
__device__ void layer_norm_bwd(i64 rows, i64 n, const T* x, const T* w, const typename Acc<T>::type* mean,
                               const typename Acc<T>::type* rstd, const T* dy, T* dx, int accumulate,
                               typename Acc<T>::type* dw_part, typename Acc<T>::type* db_part) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    A* dwp = dw_part ? dw_part + (i64)blockIdx.x * n : nullptr;
    A* dbp = db_part ? db_part + (i64)blockIdx.x * n : nullptr;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        if (dwp) dwp[j] = A(0);
        if (dbp) dbp[j] = A(0);
    }
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * n;
        const T* dyr = dy + r * n;
        T* dxr = dx + r * n;
        const A mu = mean[r], rs = rstd[r];
        A sg = A(0), sgx = A(0);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            const A xh = (to_acc(xr[j]) - mu) * rs;
            const A g = to_acc(dyr[j]) * (w ? to_acc(w[j]) : A(1));
            sg += g;
            sgx += g * xh;
        }
        const A mg = block_sum(sg, scratch) / A(n);
        const A mgx = block_sum(sgx, scratch) / A(n);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            const A xh = (to_acc(xr[j]) - mu) * rs;
            const A d = to_acc(dyr[j]);
            const A g = d * (w ? to_acc(w[j]) : A(1));
            A v = rs * (g - mg - xh * mgx);
            if (accumulate) v += to_acc(dxr[j]);
            dxr[j] = from_acc<T>(v);
            // Each thread owns the same columns in every row: no race on the partials.
            if (dwp) dwp[j] += d * xh;
            if (dbp) dbp[j] += d;
        }
    }
}

// out[j] (+)= Σ_p part[p][j], p in order.
template <typename T>
__device__ void layer_norm_bwd_reduce(i64 parts, i64 n, const typename Acc<T>::type* part, T* out, int accumulate) {
    typedef typename Acc<T>::type A;
    PTM_GRID_STRIDE(j, n) {
        A s = A(0);
        for (i64 p = 0; p < parts; ++p) s += part[p * n + j];
        if (accumulate) s += to_acc(out[j]);
        out[j] = from_acc<T>(s);
    }
}

}  // namespace ptm

#define PTM_LAYER_NORM(T, S, A)                                                                        \
    extern "C" __global__ void layer_norm_fwd_##S(i64 rows, i64 n, const T* x, const T* w, const T* b, \
                                                  double eps, T* y, A* mean, A* rstd) {                \
        ptm::layer_norm_fwd<T>(rows, n, x, w, b, eps, y, mean, rstd);                                 \
    }                                                                                                 \
    extern "C" __global__ void layer_norm_bwd_##S(i64 rows, i64 n, const T* x, const T* w,            \
                                                  const A* mean, const A* rstd, const T* dy, T* dx,   \
                                                  int accumulate, A* dw_part, A* db_part) {           \
        ptm::layer_norm_bwd<T>(rows, n, x, w, mean, rstd, dy, dx, accumulate, dw_part, db_part);      \
    }                                                                                                 \
    extern "C" __global__ void layer_norm_bwd_reduce_##S(i64 parts, i64 n, const A* part, T* out,     \
                                                         int accumulate) {                           \
        ptm::layer_norm_bwd_reduce<T>(parts, n, part, out, accumulate);                               \
    }

PTM_LAYER_NORM(float, f32, float)
PTM_LAYER_NORM(double, f64, double)
PTM_LAYER_NORM(f16, f16, float)
PTM_LAYER_NORM(bf16, bf16, float)
