// Tensor-core matrix product for f16 and bf16 operands with f32 accumulation (sm_80+):
//   C[b] = alpha · A[b] · B[b] + beta · C[b] (+ bias broadcast over rows), C in the operands' type.
//
// 128×128 block tiles over K-slices of 32, 8 warps in a 2×4 grid each owning a 64×32 tile
// (4×4 mma.sync.m16n8k16 per 16 of K). Operand slices stream global → shared with cp.async through
// a 3-stage pipeline; fragments come out of shared memory with ldmatrix (its .trans form when the
// operand is stored the other way round). Each operand may be K-major (K contiguous: A row-major,
// B as Bᵀ row-major, e.g. a Linear weight) or MN-major (M resp. N contiguous), so both transposes
// of the backward are read in place; the four combinations are four kernels.
//
// Requirements checked by the launcher: 16-byte aligned bases, the non-unit stride and the batch
// strides multiples of 8 elements. Tails in M, N, K are zero-filled by cp.async's src-size operand.
// Shared rows are padded by 8 elements so that ldmatrix's 8 row reads hit distinct banks.

namespace ptm {

#define MMA_BM 128
#define MMA_BN 128
#define MMA_BK 32
#define MMA_STAGES 3
#define MMA_THREADS 256
// Halves per stage for one operand: the larger of 128×(32+8) (K-major) and 32×(128+8) (MN-major).
#define MMA_STAGE_ELEMS (MMA_BM * (MMA_BK + 8))

__device__ __forceinline__ u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(u32 dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(u32* r, u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32* r, u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

template <typename T> __device__ __forceinline__ void mma_16816(float* c, const u32* a, const u32* b);
template <> __device__ __forceinline__ void mma_16816<bf16>(float* c, const u32* a, const u32* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma_16816<f16>(float* c, const u32* a, const u32* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Copies one operand's slice for K-slice `k0` into shared memory `s` (one stage).
// K-major: rows r of the tile (M or N index) hold 32 consecutive k: s[r·40 + k].
// MN-major: rows k hold 128 consecutive m (n): s[k·136 + r].
// `rows` is M (or N); `ld` the stride of the non-unit dimension.
template <typename T, bool KMAJ>
__device__ __forceinline__ void load_tile(T* s, const T* g, int r0, int rows, int k0, int K, i64 ld, int tid) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        const int c = tid + e * MMA_THREADS;  // 512 chunks of 8 elements
        int r, k;
        if (KMAJ) {
            r = c >> 2;
            k = (c & 3) * 8;
        } else {
            k = c >> 4;
            r = (c & 15) * 8;
        }
        const int gr = r0 + r, gk = k0 + k;
        int bytes = 0;
        const T* src = g;
        if (KMAJ) {
            if (gr < rows && gk < K) {
                bytes = min(16, (K - gk) * 2);
                src = g + gr * ld + gk;
            }
        } else {
            if (gk < K && gr < rows) {
                bytes = min(16, (rows - gr) * 2);
                src = g + gk * ld + gr;
            }
        }
        T* dst = KMAJ ? s + r * (MMA_BK + 8) + k : s + k * (MMA_BM + 8) + r;
        cp_async16(smem_addr(dst), src, bytes);
    }
}

template <typename T, bool A_KMAJ, bool B_KMAJ>
__device__ void gemm_mma(int M, int N, int K, const T* A, i64 lda, i64 a_bs, const T* B, i64 ldb, i64 b_bs, T* C,
                         i64 ldc, i64 c_bs, float alpha, float beta, const T* bias) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* As = reinterpret_cast<T*>(smem_raw);
    T* Bs = As + MMA_STAGES * MMA_STAGE_ELEMS;

    A += blockIdx.z * a_bs;
    B += blockIdx.z * b_bs;
    C += blockIdx.z * c_bs;
    const int m0 = blockIdx.y * MMA_BM, n0 = blockIdx.x * MMA_BN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

    const int KT = (K + MMA_BK - 1) / MMA_BK;
#pragma unroll
    for (int s = 0; s < MMA_STAGES - 1; ++s) {
        if (s < KT) {
            load_tile<T, A_KMAJ>(As + s * MMA_STAGE_ELEMS, A, m0, M, s * MMA_BK, K, lda, tid);
            load_tile<T, B_KMAJ>(Bs + s * MMA_STAGE_ELEMS, B, n0, N, s * MMA_BK, K, ldb, tid);
        }
        cp_async_commit();
    }

    for (int kt = 0; kt < KT; ++kt) {
        cp_async_wait<MMA_STAGES - 2>();
        __syncthreads();  // slice kt is in; every warp is done with slice kt-1's stage
        const int nk = kt + MMA_STAGES - 1;
        if (nk < KT) {
            const int slot = nk % MMA_STAGES;
            load_tile<T, A_KMAJ>(As + slot * MMA_STAGE_ELEMS, A, m0, M, nk * MMA_BK, K, lda, tid);
            load_tile<T, B_KMAJ>(Bs + slot * MMA_STAGE_ELEMS, B, n0, N, nk * MMA_BK, K, ldb, tid);
        }
        cp_async_commit();

        const T* as = As + (kt % MMA_STAGES) * MMA_STAGE_ELEMS;
        const T* bs = Bs + (kt % MMA_STAGES) * MMA_STAGE_ELEMS;
#pragma unroll
        for (int kk = 0; kk < MMA_BK; kk += 16) {
            u32 a[4][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int mb = wm + i * 16;
                if (A_KMAJ) {
                    ldmatrix_x4(a[i], smem_addr(as + (mb + (lane & 15)) * (MMA_BK + 8) + kk + (lane >> 4) * 8));
                } else {
                    const int r = lane & 7, mat = lane >> 3;
                    ldmatrix_x4_trans(a[i], smem_addr(as + (kk + (mat >> 1) * 8 + r) * (MMA_BM + 8) + mb + (mat & 1) * 8));
                }
            }
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const int nb = wn + j * 16;
                u32 r4[4];
                if (B_KMAJ) {
                    ldmatrix_x4(r4, smem_addr(bs + (nb + (lane & 7) + (lane >> 4) * 8) * (MMA_BK + 8) + kk +
                                              ((lane >> 3) & 1) * 8));
                } else {
                    const int r = lane & 7, mat = lane >> 3;
                    ldmatrix_x4_trans(r4, smem_addr(bs + (kk + (mat & 1) * 8 + r) * (MMA_BN + 8) + nb + (mat >> 1) * 8));
                }
                b[2 * j][0] = r4[0];
                b[2 * j][1] = r4[1];
                b[2 * j + 1][0] = r4[2];
                b[2 * j + 1][1] = r4[3];
            }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) mma_16816<T>(acc[i][j], a[i], b[j]);
        }
    }
    cp_async_wait<0>();

    // Accumulator fragment: c0, c1 at (row g, cols 2q, 2q+1), c2, c3 at row g + 8.
    const int g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int gm = m0 + wm + i * 16 + g + h * 8;
            if (gm >= M) continue;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int gn = n0 + wn + j * 8 + 2 * q + e;
                    if (gn >= N) continue;
                    float v = alpha * acc[i][j][2 * h + e];
                    T* c = C + gm * ldc + gn;
                    if (beta != 0.f) v += beta * to_acc(*c);  // beta 0 never reads C
                    if (bias) v += to_acc(bias[gn]);
                    *c = from_acc<T>(v);
                }
            }
        }
    }
}

}  // namespace ptm

// Dynamic shared memory: 3 stages × 2 operands × 128·40 halves = 61 440 bytes.
#define PTM_GEMM_MMA(T, S, AK, BK, NAME)                                                                 \
    extern "C" __global__ void __launch_bounds__(MMA_THREADS)                                           \
        gemm_mma_##NAME##_##S(int M, int N, int K, const T* A, i64 lda, i64 a_bs, const T* B, i64 ldb,  \
                              i64 b_bs, T* C, i64 ldc, i64 c_bs, float alpha, float beta, const T* bias) { \
        ptm::gemm_mma<T, AK, BK>(M, N, K, A, lda, a_bs, B, ldb, b_bs, C, ldc, c_bs, alpha, beta, bias);  \
    }
// NAME: a then b, k = K-major, m = MN-major.
#define PTM_GEMM_MMA_ALL(T, S)              \
    PTM_GEMM_MMA(T, S, true, true, kk)      \
    PTM_GEMM_MMA(T, S, true, false, km)     \
    PTM_GEMM_MMA(T, S, false, true, mk)     \
    PTM_GEMM_MMA(T, S, false, false, mm)

PTM_GEMM_MMA_ALL(bf16, bf16)
PTM_GEMM_MMA_ALL(f16, f16)
