// General matrix product on the CUDA cores, for every element type and any strides:
//   C[b] = alpha · A[b] · B[b] + beta · C[b] (+ bias broadcast over rows)
// A is M×K with element (m, k) at a_rs·m + a_cs·k, B is K×N with (k, n) at b_rs·k + b_cs·n, so both
// transposes (the backward's Aᵀ·B and A·Bᵀ) are read in place. C is row-major with leading
// dimension ldc. Batches advance each operand by its batch stride (0 broadcasts it).
//
// 64×64 tiles over K-slices of 16, 256 threads each computing 4×4 outputs from registers. This is
// the fp32 / fp64 path and the fallback for half types whose layouts the tensor-core kernel
// (matmul_mma.cu) cannot take.

namespace ptm {

#define SIMT_BM 64
#define SIMT_BN 64
#define SIMT_BK 16

template <typename T>
__device__ void gemm_simt(int M, int N, int K, const T* A, i64 a_rs, i64 a_cs, i64 a_bs, const T* B, i64 b_rs,
                          i64 b_cs, i64 b_bs, T* C, i64 ldc, i64 c_bs, double alpha, double beta, const T* bias) {
    typedef typename Acc<T>::type Ac;
    __shared__ Ac As[SIMT_BK][SIMT_BM + 1];
    __shared__ Ac Bs[SIMT_BK][SIMT_BN + 1];
    const int bz = blockIdx.z;
    A += bz * a_bs;
    B += bz * b_bs;
    C += bz * c_bs;
    const int m0 = blockIdx.y * SIMT_BM, n0 = blockIdx.x * SIMT_BN;
    const int tid = threadIdx.x;
    const int tm = (tid / 16) * 4, tn = (tid % 16) * 4;
    Ac acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = Ac(0);

    for (int k0 = 0; k0 < K; k0 += SIMT_BK) {
        // 64×16 of A and 16×64 of B: 1024 elements each, 4 per thread. Consecutive threads take
        // consecutive m (resp. n), which coalesces when that index has unit stride.
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int idx = tid + e * 256;
            const int r = idx % SIMT_BM, kk = idx / SIMT_BM;
            const int gm = m0 + r, gk = k0 + kk;
            As[kk][r] = (gm < M && gk < K) ? to_acc(A[gm * a_rs + gk * a_cs]) : Ac(0);
            const int gn = n0 + r;
            Bs[kk][r] = (gn < N && gk < K) ? to_acc(B[gk * b_rs + gn * b_cs]) : Ac(0);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < SIMT_BK; ++kk) {
            Ac a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[kk][tm + i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tn + j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int gm = m0 + tm + i;
        if (gm >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int gn = n0 + tn + j;
            if (gn >= N) continue;
            Ac v = Ac(alpha) * acc[i][j];
            T* c = C + gm * ldc + gn;
            if (beta != 0.0) v += Ac(beta) * to_acc(*c);  // beta 0 never reads C (it may be NaN)
            if (bias) v += to_acc(bias[gn]);
            *c = from_acc<T>(v);
        }
    }
}

}  // namespace ptm

#define PTM_GEMM_SIMT(T, S)                                                                            \
    extern "C" __global__ void __launch_bounds__(256)                                                 \
        gemm_simt_##S(int M, int N, int K, const T* A, i64 a_rs, i64 a_cs, i64 a_bs, const T* B,      \
                      i64 b_rs, i64 b_cs, i64 b_bs, T* C, i64 ldc, i64 c_bs, double alpha, double beta, \
                      const T* bias) {                                                                 \
        ptm::gemm_simt<T>(M, N, K, A, a_rs, a_cs, a_bs, B, b_rs, b_cs, b_bs, C, ldc, c_bs, alpha, beta, \
                          bias);                                                                       \
    }

PTM_GEMM_SIMT(float, f32)
PTM_GEMM_SIMT(double, f64)
PTM_GEMM_SIMT(f16, f16)
PTM_GEMM_SIMT(bf16, bf16)
