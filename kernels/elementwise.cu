// Elementwise kernels: unary ops and their backward, broadcasting binary ops, strided copies,
// casts, fill. Grid-stride loops; the output is contiguous, inputs are read through a Layout, so a
// transposed or broadcast view is never copied first.
//
// Op codes match ptm-cuda's `Unary` and `Binary` enums.

namespace ptm {

enum Unary {
    U_NEG = 0, U_ABS, U_SIGN, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_POWF, U_TANH, U_SIGMOID, U_RELU,
    U_GELU_TANH, U_GELU_ERF, U_SILU, U_ADD_SCALAR, U_MUL_SCALAR
};
enum Binary { B_ADD = 0, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN };
enum Compare { C_EQ = 0, C_NE, C_LT, C_LE, C_GT, C_GE };

// sqrt(2/pi) and 1/sqrt(2), as the CPU path uses them.
#define PTM_SQRT_2_OVER_PI 0.7978845608028654
#define PTM_INV_SQRT_2 0.7071067811865476
#define PTM_INV_SQRT_2PI 0.3989422804014327

template <typename A> __device__ __forceinline__ A sigmoid(A x) { return A(1) / (A(1) + mexp(-x)); }

template <typename A> __device__ __forceinline__ A unary_fwd(int op, A p, A x) {
    switch (op) {
        case U_NEG: return -x;
        case U_ABS: return mabs(x);
        case U_SIGN: return x > A(0) ? A(1) : (x < A(0) ? A(-1) : x * A(0));
        case U_EXP: return mexp(x);
        case U_LOG: return mlog(x);
        case U_SQRT: return msqrt(x);
        case U_RSQRT: return A(1) / msqrt(x);
        case U_POWF: return mpow(x, p);
        case U_TANH: return mtanh(x);
        case U_SIGMOID: return sigmoid(x);
        case U_RELU: return x > A(0) ? x : A(0);  // NaN gives 0, as ptm-cpu
        case U_GELU_TANH: {
            const A u = A(PTM_SQRT_2_OVER_PI) * (x + A(0.044715) * x * x * x);
            return A(0.5) * x * (A(1) + mtanh(u));
        }
        case U_GELU_ERF: return A(0.5) * x * (A(1) + merf(x * A(PTM_INV_SQRT_2)));
        case U_SILU: return x * sigmoid(x);
        case U_ADD_SCALAR: return x + p;
        case U_MUL_SCALAR: return x * p;
    }
    return x;
}

// d f(x) / dx.
template <typename A> __device__ __forceinline__ A unary_grad(int op, A p, A x) {
    switch (op) {
        case U_NEG: return A(-1);
        case U_ABS: return x > A(0) ? A(1) : (x < A(0) ? A(-1) : A(0));
        case U_SIGN: return A(0);
        case U_EXP: return mexp(x);
        case U_LOG: return A(1) / x;
        case U_SQRT: return A(0.5) / msqrt(x);
        case U_RSQRT: return A(-0.5) / (x * msqrt(x));
        case U_POWF: return p * mpow(x, p - A(1));
        case U_TANH: { const A t = mtanh(x); return A(1) - t * t; }
        case U_SIGMOID: { const A s = sigmoid(x); return s * (A(1) - s); }
        case U_RELU: return x > A(0) ? A(1) : A(0);
        case U_GELU_TANH: {
            const A c = A(PTM_SQRT_2_OVER_PI);
            const A u = c * (x + A(0.044715) * x * x * x);
            const A t = mtanh(u);
            const A du = c * (A(1) + A(3 * 0.044715) * x * x);
            return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * du;
        }
        case U_GELU_ERF:
            return A(0.5) * (A(1) + merf(x * A(PTM_INV_SQRT_2))) + x * A(PTM_INV_SQRT_2PI) * mexp(A(-0.5) * x * x);
        case U_SILU: { const A s = sigmoid(x); return s * (A(1) + x * (A(1) - s)); }
        case U_ADD_SCALAR: return A(1);
        case U_MUL_SCALAR: return p;
    }
    return A(0);
}

template <typename A> __device__ __forceinline__ A binary_fwd(int op, A a, A b) {
    switch (op) {
        case B_ADD: return a + b;
        case B_SUB: return a - b;
        case B_MUL: return a * b;
        case B_DIV: return a / b;
        // NaN propagates, as the CPU path's max/min.
        case B_MAX: return (a != a || b != b) ? a + b : (a > b ? a : b);
        case B_MIN: return (a != a || b != b) ? a + b : (a < b ? a : b);
    }
    return a;
}

template <typename T>
__device__ void unary(int op, double p, i64 n, const T* x, Layout lx, T* y) {
    typedef typename Acc<T>::type A;
    const A pa = A(p);
    PTM_GRID_STRIDE(i, n) {
        y[i] = from_acc<T>(unary_fwd<A>(op, pa, to_acc(x[offset_of(i, lx)])));
    }
}

// dx = dy * f'(x), all contiguous; with accumulate, dx += that.
template <typename T>
__device__ void unary_bwd(int op, double p, i64 n, const T* x, const T* dy, T* dx, int accumulate) {
    typedef typename Acc<T>::type A;
    const A pa = A(p);
    PTM_GRID_STRIDE(i, n) {
        A g = to_acc(dy[i]) * unary_grad<A>(op, pa, to_acc(x[i]));
        if (accumulate) g += to_acc(dx[i]);
        dx[i] = from_acc<T>(g);
    }
}

template <typename T>
__device__ void binary(int op, i64 n, const T* a, Layout la, const T* b, Layout lb, T* y) {
    typedef typename Acc<T>::type A;
    PTM_GRID_STRIDE(i, n) {
        y[i] = from_acc<T>(binary_fwd<A>(op, to_acc(a[offset_of(i, la)]), to_acc(b[offset_of(i, lb)])));
    }
}

// Integer arithmetic wraps (through unsigned 64-bit arithmetic, so signed overflow is defined)
// and divides toward zero, as Rust's wrapping ops; the host refuses a zero divisor beforehand.
__device__ __forceinline__ u32 int_div(u32 a, u32 b) { return a / b; }
__device__ __forceinline__ i64 int_div(i64 a, i64 b) {
    return b == -1 ? (i64)(0ull - (unsigned long long)a) : a / b;  // MIN / -1 wraps to MIN
}
template <typename T> __device__ __forceinline__ T int_binary(int op, T a, T b) {
    typedef unsigned long long U;
    switch (op) {
        case B_ADD: return (T)((U)a + (U)b);
        case B_SUB: return (T)((U)a - (U)b);
        case B_MUL: return (T)((U)a * (U)b);
        case B_DIV: return int_div(a, b);
        case B_MAX: return a > b ? a : b;
        case B_MIN: return a < b ? a : b;
    }
    return a;
}

template <typename T>
__device__ void binary_int(int op, i64 n, const T* a, Layout la, const T* b, Layout lb, T* y) {
    PTM_GRID_STRIDE(i, n) { y[i] = int_binary<T>(op, a[offset_of(i, la)], b[offset_of(i, lb)]); }
}

template <typename T> __device__ void strided_copy(i64 n, const T* x, Layout lx, T* y) {
    PTM_GRID_STRIDE(i, n) { y[i] = x[offset_of(i, lx)]; }
}

template <typename S, typename D> __device__ void cast(i64 n, const S* x, D* y) {
    PTM_GRID_STRIDE(i, n) { y[i] = from_acc<D>(to_acc(x[i])); }
}

// A cast where either side is an integer, through f64 (see from_f64).
template <typename S, typename D> __device__ void cast_f64(i64 n, const S* x, D* y) {
    PTM_GRID_STRIDE(i, n) { y[i] = from_f64<D>(to_f64(x[i])); }
}

template <typename T> __device__ void fill(i64 n, double v, T* y) {
    typedef typename Acc<T>::type A;
    const T t = from_acc<T>(A(v));
    PTM_GRID_STRIDE(i, n) { y[i] = t; }
}

// y = cond ? a : b, cond as u8 (nonzero = true), all three read through layouts.
template <typename T>
__device__ void where_cond(i64 n, const unsigned char* c, Layout lc, const T* a, Layout la, const T* b,
                           Layout lb, T* y) {
    PTM_GRID_STRIDE(i, n) {
        y[i] = c[offset_of(i, lc)] ? a[offset_of(i, la)] : b[offset_of(i, lb)];
    }
}

// y[i] = 1 where a op b holds, else 0 (IEEE: every comparison with NaN is false but !=).
template <typename T>
__device__ void compare(int op, i64 n, const T* a, Layout la, const T* b, Layout lb, u32* y) {
    typedef typename Acc<T>::type A;
    PTM_GRID_STRIDE(i, n) {
        const A x = to_acc(a[offset_of(i, la)]), z = to_acc(b[offset_of(i, lb)]);
        bool r = false;
        switch (op) {
            case C_EQ: r = x == z; break;
            case C_NE: r = x != z; break;
            case C_LT: r = x < z; break;
            case C_LE: r = x <= z; break;
            case C_GT: r = x > z; break;
            case C_GE: r = x >= z; break;
        }
        y[i] = r ? 1u : 0u;
    }
}

// y = cond ? a : b with a u32 mask (ptm-tensor's masks), all read through layouts.
template <typename T>
__device__ void where_mask(i64 n, const u32* c, Layout lc, const T* a, Layout la, const T* b, Layout lb, T* y) {
    PTM_GRID_STRIDE(i, n) {
        y[i] = c[offset_of(i, lc)] ? a[offset_of(i, la)] : b[offset_of(i, lb)];
    }
}

// y[ly(i)] = x[lx(i)]: a strided copy into a strided destination (concatenation, narrow writes).
template <typename T> __device__ void copy_into(i64 n, const T* x, Layout lx, T* y, Layout ly) {
    PTM_GRID_STRIDE(i, n) { y[offset_of(i, ly)] = x[offset_of(i, lx)]; }
}

}  // namespace ptm

#define PTM_ELEMENTWISE(T, S)                                                                          \
    extern "C" __global__ void unary_##S(int op, double p, i64 n, const T* x, ptm::Layout lx, T* y) { \
        ptm::unary<T>(op, p, n, x, lx, y);                                                            \
    }                                                                                                 \
    extern "C" __global__ void unary_bwd_##S(int op, double p, i64 n, const T* x, const T* dy, T* dx, \
                                             int acc) {                                               \
        ptm::unary_bwd<T>(op, p, n, x, dy, dx, acc);                                                  \
    }                                                                                                 \
    extern "C" __global__ void binary_##S(int op, i64 n, const T* a, ptm::Layout la, const T* b,     \
                                          ptm::Layout lb, T* y) {                                     \
        ptm::binary<T>(op, n, a, la, b, lb, y);                                                       \
    }                                                                                                 \
    extern "C" __global__ void copy_##S(i64 n, const T* x, ptm::Layout lx, T* y) {                   \
        ptm::strided_copy<T>(n, x, lx, y);                                                            \
    }                                                                                                 \
    extern "C" __global__ void fill_##S(i64 n, double v, T* y) { ptm::fill<T>(n, v, y); }            \
    extern "C" __global__ void where_##S(i64 n, const unsigned char* c, ptm::Layout lc, const T* a,  \
                                         ptm::Layout la, const T* b, ptm::Layout lb, T* y) {          \
        ptm::where_cond<T>(n, c, lc, a, la, b, lb, y);                                                \
    }

PTM_ELEMENTWISE(float, f32)
PTM_ELEMENTWISE(double, f64)
PTM_ELEMENTWISE(f16, f16)
PTM_ELEMENTWISE(bf16, bf16)

#define PTM_MASKS(T, S)                                                                                \
    extern "C" __global__ void compare_##S(int op, i64 n, const T* a, ptm::Layout la, const T* b,      \
                                           ptm::Layout lb, u32* y) {                                  \
        ptm::compare<T>(op, n, a, la, b, lb, y);                                                      \
    }                                                                                                 \
    extern "C" __global__ void where_mask_##S(i64 n, const u32* c, ptm::Layout lc, const T* a,         \
                                              ptm::Layout la, const T* b, ptm::Layout lb, T* y) {     \
        ptm::where_mask<T>(n, c, lc, a, la, b, lb, y);                                                \
    }
PTM_MASKS(float, f32)
PTM_MASKS(double, f64)
PTM_MASKS(f16, f16)
PTM_MASKS(bf16, bf16)
PTM_MASKS(u32, u32)
PTM_MASKS(i64, i64)

#define PTM_COPY_INTO(T, S)                                                                              \
    extern "C" __global__ void copy_into_##S(i64 n, const T* x, ptm::Layout lx, T* y, ptm::Layout ly) { \
        ptm::copy_into<T>(n, x, lx, y, ly);                                                             \
    }

// Integer tensors: strided copies (contiguous() of an index or mask view) and wrapping arithmetic.
#define PTM_INTEGERS(T, S)                                                                             \
    extern "C" __global__ void copy_##S(i64 n, const T* x, ptm::Layout lx, T* y) {                   \
        ptm::strided_copy<T>(n, x, lx, y);                                                            \
    }                                                                                                 \
    extern "C" __global__ void binary_##S(int op, i64 n, const T* a, ptm::Layout la, const T* b,     \
                                          ptm::Layout lb, T* y) {                                     \
        ptm::binary_int<T>(op, n, a, la, b, lb, y);                                                   \
    }
PTM_INTEGERS(u32, u32)
PTM_INTEGERS(i64, i64)

PTM_COPY_INTO(float, f32)
PTM_COPY_INTO(double, f64)
PTM_COPY_INTO(f16, f16)
PTM_COPY_INTO(bf16, bf16)
PTM_COPY_INTO(u32, u32)
PTM_COPY_INTO(i64, i64)

#define PTM_CAST(S, SN, D, DN) \
    extern "C" __global__ void cast_##SN##_##DN(i64 n, const S* x, D* y) { ptm::cast<S, D>(n, x, y); }
#define PTM_CASTS_FROM(S, SN)          \
    PTM_CAST(S, SN, float, f32)        \
    PTM_CAST(S, SN, double, f64)       \
    PTM_CAST(S, SN, f16, f16)          \
    PTM_CAST(S, SN, bf16, bf16)
PTM_CASTS_FROM(float, f32)
PTM_CASTS_FROM(double, f64)
PTM_CASTS_FROM(f16, f16)
PTM_CASTS_FROM(bf16, bf16)

#define PTM_CAST_F64(S, SN, D, DN) \
    extern "C" __global__ void cast_##SN##_##DN(i64 n, const S* x, D* y) { ptm::cast_f64<S, D>(n, x, y); }
#define PTM_CASTS_INT(I, IN)            \
    PTM_CAST_F64(I, IN, float, f32)     \
    PTM_CAST_F64(I, IN, double, f64)    \
    PTM_CAST_F64(I, IN, f16, f16)       \
    PTM_CAST_F64(I, IN, bf16, bf16)     \
    PTM_CAST_F64(float, f32, I, IN)     \
    PTM_CAST_F64(double, f64, I, IN)    \
    PTM_CAST_F64(f16, f16, I, IN)       \
    PTM_CAST_F64(bf16, bf16, I, IN)
PTM_CASTS_INT(u32, u32)
PTM_CASTS_INT(i64, i64)
PTM_CAST_F64(u32, u32, i64, i64)
PTM_CAST_F64(i64, i64, u32, u32)
