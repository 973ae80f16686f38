// Shared prelude of every kernel file: element types, conversions through f32, warp and block
// reductions, and strided indexing. ptm-cuda puts this text in front of each kernels/*.cu before
// NVRTC compiles it (NVRTC has no file system of its own for our headers).
#include <cuda_fp16.h>
#include <cuda_bf16.h>

typedef __half f16;
typedef __nv_bfloat16 bf16;
typedef long long i64;
typedef unsigned int u32;

// NVRTC has no <math.h> macros.
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

namespace ptm {

// Arithmetic happens in f32 (f64 for f64): reduced-precision types are storage formats.
template <typename T> struct Acc { typedef float type; };
template <> struct Acc<double> { typedef double type; };
template <> struct Acc<u32> { typedef u32 type; };   // integers compare as themselves
template <> struct Acc<i64> { typedef i64 type; };

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(f16 x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ u32 to_acc(u32 x) { return x; }
__device__ __forceinline__ i64 to_acc(i64 x) { return x; }

template <typename T> __device__ __forceinline__ T from_acc(float x);
template <> __device__ __forceinline__ float from_acc<float>(float x) { return x; }
template <> __device__ __forceinline__ f16 from_acc<f16>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ bf16 from_acc<bf16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ double from_acc<double>(float x) { return (double)x; }
template <typename T> __device__ __forceinline__ T from_acc(double x);
template <> __device__ __forceinline__ double from_acc<double>(double x) { return x; }
template <> __device__ __forceinline__ float from_acc<float>(double x) { return (float)x; }
template <> __device__ __forceinline__ f16 from_acc<f16>(double x) { return __double2half(x); }
template <> __device__ __forceinline__ bf16 from_acc<bf16>(double x) { return __double2bfloat16(x); }
// Integers accumulate as themselves (integer reductions and comparisons).
template <typename T> __device__ __forceinline__ T from_acc(u32 x);
template <> __device__ __forceinline__ u32 from_acc<u32>(u32 x) { return x; }
template <typename T> __device__ __forceinline__ T from_acc(i64 x);
template <> __device__ __forceinline__ i64 from_acc<i64>(i64 x) { return x; }

// Casts that involve an integer go through f64, as ptm-tensor's CPU casts do (Rust's `as`): float
// to integer truncates toward zero and saturates, NaN becomes 0; integer to float rounds to nearest.
__device__ __forceinline__ double to_f64(float x) { return x; }
__device__ __forceinline__ double to_f64(double x) { return x; }
__device__ __forceinline__ double to_f64(f16 x) { return __half2float(x); }
__device__ __forceinline__ double to_f64(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ double to_f64(u32 x) { return (double)x; }
__device__ __forceinline__ double to_f64(i64 x) { return (double)x; }
template <typename T> __device__ __forceinline__ T from_f64(double x) { return from_acc<T>(x); }
template <> __device__ __forceinline__ u32 from_f64<u32>(double x) {
    if (!(x > 0.0)) return 0u;  // NaN and everything at or below zero
    return x >= 4294967295.0 ? 4294967295u : (u32)x;
}
template <> __device__ __forceinline__ i64 from_f64<i64>(double x) {
    if (x != x) return 0;
    if (x <= -9223372036854775808.0) return (i64)0x8000000000000000ull;
    return x >= 9223372036854775808.0 ? (i64)0x7fffffffffffffffll : (i64)x;
}

// Math by argument type: the f32 function for f32, the f64 one for f64. (A bare `exp(x)` on a
// float may resolve to the double overload and silently compute in f64.)
__device__ __forceinline__ float mexp(float x) { return expf(x); }
__device__ __forceinline__ double mexp(double x) { return ::exp(x); }
__device__ __forceinline__ float mlog(float x) { return logf(x); }
__device__ __forceinline__ double mlog(double x) { return ::log(x); }
__device__ __forceinline__ float mtanh(float x) { return tanhf(x); }
__device__ __forceinline__ double mtanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float merf(float x) { return erff(x); }
__device__ __forceinline__ double merf(double x) { return ::erf(x); }
__device__ __forceinline__ float msqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double msqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float mpow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double mpow(double x, double y) { return ::pow(x, y); }
__device__ __forceinline__ float mabs(float x) { return fabsf(x); }
__device__ __forceinline__ double mabs(double x) { return ::fabs(x); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double warp_max(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). `scratch` holds 32 values.
// Every thread gets the result. Begins with a barrier so that scratch can be reused at once.
template <typename A> __device__ __forceinline__ A block_sum(A v, A* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : A(0);
    return warp_sum(v);
}

template <typename A> __device__ __forceinline__ A block_max(A v, A* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : A(-INFINITY);
    return warp_max(v);
}

// A strided view of at most 6 dimensions, passed to kernels by value (matches ptm-cuda's Layout).
struct Layout {
    int rank;
    int pad_;
    i64 offset;
    i64 shape[6];
    i64 stride[6];
};

// Element offset of the i-th element (row-major order over `shape`).
__device__ __forceinline__ i64 offset_of(i64 i, const Layout& l) {
    i64 off = l.offset;
    for (int d = l.rank - 1; d >= 0; --d) {
        const i64 s = l.shape[d];
        off += (i % s) * l.stride[d];
        i /= s;
    }
    return off;
}

}  // namespace ptm

#define PTM_GRID_STRIDE(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)
