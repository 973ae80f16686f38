// Reductions over the last dimension of a contiguous [rows, n] array (the caller moves the reduced
// dimensions last). One block per row; sums in f32 (f64 for f64, the type itself for integers,
// which wrap). NaN propagates through max/min, and argmax returns the first index of the maximum
// (a NaN counts as the maximum, as in PyTorch).

namespace ptm {

enum Reduce { R_SUM = 0, R_MAX, R_MIN };

template <typename A> __device__ __forceinline__ A reduce_pair(int op, A a, A b) {
    if (op == R_SUM) return a + b;
    if (a != a || b != b) return a + b;
    return op == R_MAX ? (a > b ? a : b) : (a < b ? a : b);
}

// The identity of max and min: ±inf for floats, the type's extremes for integers.
template <typename A> struct Lim {
    __device__ static A lowest() { return A(-INFINITY); }
    __device__ static A highest() { return A(INFINITY); }
};
template <> struct Lim<u32> {
    __device__ static u32 lowest() { return 0u; }
    __device__ static u32 highest() { return 0xffffffffu; }
};
template <> struct Lim<i64> {
    __device__ static i64 lowest() { return (i64)0x8000000000000000ull; }
    __device__ static i64 highest() { return 0x7fffffffffffffffll; }
};

template <typename T>
__device__ void reduce_rows(int op, i64 rows, i64 n, const T* x, T* y) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[32];
    const A init = op == R_SUM ? A(0) : (op == R_MAX ? Lim<A>::lowest() : Lim<A>::highest());
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * n;
        A v = init;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) v = reduce_pair(op, v, to_acc(xr[j]));
        for (int o = 16; o > 0; o >>= 1) v = reduce_pair(op, v, __shfl_xor_sync(0xffffffffu, v, o));
        __syncthreads();
        if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
        __syncthreads();
        if (threadIdx.x < 32) {
            v = threadIdx.x < (blockDim.x >> 5) ? scratch[threadIdx.x] : init;
            for (int o = 16; o > 0; o >>= 1) v = reduce_pair(op, v, __shfl_xor_sync(0xffffffffu, v, o));
            if (threadIdx.x == 0) y[r] = from_acc<T>(v);
        }
    }
}

// (value, index) with NaN the largest and ties going to the smaller index.
template <typename A> __device__ __forceinline__ bool arg_better(A v, i64 i, A w, i64 k, int want_max) {
    const bool vn = v != v, wn = w != w;
    if (vn || wn) return vn && (!wn || i < k);
    if (v == w) return i < k;
    return want_max ? v > w : v < w;
}

template <typename T>
__device__ void arg_rows(int want_max, i64 rows, i64 n, const T* x, i64* out) {
    typedef typename Acc<T>::type A;
    __shared__ A sv[32];
    __shared__ i64 si[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * n;
        A v = A(0);   // unread while idx == n
        i64 idx = n;  // no element yet: loses every comparison
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            const A w = to_acc(xr[j]);
            if (idx == n || arg_better(w, j, v, idx, want_max)) { v = w; idx = j; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const A w = __shfl_xor_sync(0xffffffffu, v, o);
            const i64 k = __shfl_xor_sync(0xffffffffu, idx, o);
            if (k != n && (idx == n || arg_better(w, k, v, idx, want_max))) { v = w; idx = k; }
        }
        __syncthreads();
        if ((threadIdx.x & 31) == 0) { sv[threadIdx.x >> 5] = v; si[threadIdx.x >> 5] = idx; }
        __syncthreads();
        if (threadIdx.x < 32) {
            const bool live = threadIdx.x < (blockDim.x >> 5);
            v = live ? sv[threadIdx.x] : A(0);
            idx = live ? si[threadIdx.x] : n;
            for (int o = 16; o > 0; o >>= 1) {
                const A w = __shfl_xor_sync(0xffffffffu, v, o);
                const i64 k = __shfl_xor_sync(0xffffffffu, idx, o);
                if (k != n && (idx == n || arg_better(w, k, v, idx, want_max))) { v = w; idx = k; }
            }
            if (threadIdx.x == 0) out[r] = idx;
        }
    }
}

}  // namespace ptm

#define PTM_REDUCE(T, S)                                                                              \
    extern "C" __global__ void reduce_rows_##S(int op, i64 rows, i64 n, const T* x, T* y) {          \
        ptm::reduce_rows<T>(op, rows, n, x, y);                                                      \
    }                                                                                                \
    extern "C" __global__ void arg_rows_##S(int want_max, i64 rows, i64 n, const T* x, i64* out) {   \
        ptm::arg_rows<T>(want_max, rows, n, x, out);                                                 \
    }

PTM_REDUCE(float, f32)
PTM_REDUCE(double, f64)
PTM_REDUCE(f16, f16)
PTM_REDUCE(bf16, bf16)
PTM_REDUCE(u32, u32)
PTM_REDUCE(i64, i64)
