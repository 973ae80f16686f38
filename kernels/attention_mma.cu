// Flash attention on tensor cores for f16 / bf16 (f32 accumulation, sm_80+), head dims 32, 64, 128:
// the forward and the backward of FlashAttention-2, with ptm's masking (attention_simt.cu states
// it; the two files agree on every score).
//
// Forward: a block takes 64 queries (4 warps × 16 rows) and walks the key blocks (64 keys) it can
// see, double-buffering K and V through cp.async. Scores S = Q·Kᵀ and the output O += P·V run on
// mma.sync.m16n8k16; P goes from the S accumulators straight into A fragments (the layouts match),
// and an online softmax rescales O as the row maximum grows. Memory is O(64·d) per block: the
// score matrix is never stored. Each query's maximum and 1/Σ exp are saved for the backward.
//
// Backward: a block takes 64 keys (4 warps × 16 keys) and walks the query blocks that can see
// them. It recomputes Sᵀ = K·Qᵀ and Pᵀ from the saved statistics, dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − Δ),
// and accumulates dV += Pᵀ·dO and dK += dSᵀ·Q in registers; dQ += dS·K goes through shared memory
// and f32 atomics into a [bh, tq, d] accumulator (ptm-cuda casts it afterwards). Δ = rowsum(dO∘O)
// comes from attention_simt.cu's delta kernel.
//
// Queries that see no key at all (every score masked) have uniform weights over all keys: the
// forward writes the plain mean of V for them, the main backward leaves them out, and
// `attention_dv_masked_rows` adds their share to dV.

namespace ptm {

#define FA_MASKED (-3.4028234663852886e38f)

__device__ __forceinline__ u32 fa_smem(const void* p) { return (u32)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void fa_cp16(void* dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(fa_smem(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void fa_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void fa_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void fa_ldm(u32* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fa_smem(p)));
}
__device__ __forceinline__ void fa_ldm_t(u32* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fa_smem(p)));
}

template <typename T> __device__ __forceinline__ void fa_mma(float* c, const u32* a, u32 b0, u32 b1);
template <> __device__ __forceinline__ void fa_mma<bf16>(float* c, const u32* a, u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void fa_mma<f16>(float* c, const u32* a, u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename T> __device__ __forceinline__ u32 fa_pack(float lo, float hi);
template <> __device__ __forceinline__ u32 fa_pack<bf16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<u32*>(&v);
}
template <> __device__ __forceinline__ u32 fa_pack<f16>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<u32*>(&v);
}

struct FaShape {
    int bh, heads, tq, tk, prefix, d, causal;
    int pad_;
};

__device__ __forceinline__ bool fa_visible(const FaShape& s, const float* key_padding, int e, int i, int j) {
    if (j < s.prefix) return true;
    const int main = s.tk - s.prefix, jm = j - s.prefix;
    if (s.causal && jm > i + (main - min(s.tq, main))) return false;
    if (key_padding && key_padding[(i64)(e / s.heads) * main + jm] == 0.0f) return false;
    return true;
}

// Keys a query row i may see at most (the causal limit; all keys otherwise).
__device__ __forceinline__ int fa_key_limit(const FaShape& s, int i) {
    if (!s.causal) return s.tk;
    const int main = s.tk - s.prefix;
    return s.prefix + min(main, i + (main - min(s.tq, main)) + 1);
}

// cp.async a [rows_tile][D] tile starting at global row r0 of a [total][D] array into shared
// memory with rows padded to D + 8; rows past `total` are zero-filled.
template <typename T, int D, int ROWS, int THREADS>
__device__ __forceinline__ void fa_load(T* sm, const T* g, int r0, int total, int tid) {
    constexpr int CHUNKS = ROWS * D / 8;
#pragma unroll
    for (int c = tid; c < CHUNKS; c += THREADS) {
        const int r = c / (D / 8), col = (c % (D / 8)) * 8;
        const bool ok = r0 + r < total;
        fa_cp16(sm + r * (D + 8) + col, ok ? g + (i64)(r0 + r) * D + col : g, ok ? 16 : 0);
    }
}

// o[col] = mean over the tk keys of v[:, col], for the columns this thread holds (t·8 + 2·qd + c).
// Rare (a query that sees no key), so kept out of line.
template <typename T>
__device__ __noinline__ void fa_mean_row(const T* ve, int tk, int d, int qd, T* o) {
    for (int t = 0; t < d / 8; ++t)
        for (int c = 0; c < 2; ++c) {
            const int col = t * 8 + 2 * qd + c;
            float sum = 0.f;
            for (int j = 0; j < tk; ++j) sum += to_acc(ve[(i64)j * d + col]);
            o[col] = from_acc<T>(sum / (float)tk);
        }
}

template <typename T, int D>
__device__ void fa_fwd(FaShape s, const float* key_padding, float scale, const T* q, const T* k, const T* v, T* o,
                       float* stats) {
    constexpr int BM = 64, BN = 64, LD = D + 8, NT = D / 8;
    extern __shared__ __align__(16) unsigned char fa_smem_raw[];
    T* Qs = reinterpret_cast<T*>(fa_smem_raw);
    T* Ks = Qs + BM * LD;   // two buffers
    T* Vs = Ks + 2 * BN * LD;  // two buffers
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, qd = lane & 3;
    const int e = blockIdx.y, q0 = blockIdx.x * BM;
    const T* qe = q + (i64)e * s.tq * D;
    const T* ke = k + (i64)e * s.tk * D;
    const T* ve = v + (i64)e * s.tk * D;

    const int last_q = min(q0 + BM, s.tq) - 1;
    const int keys = fa_key_limit(s, last_q);
    const int nkb = (keys + BN - 1) / BN;

    fa_load<T, D, BM, 128>(Qs, qe, q0, s.tq, tid);
    fa_commit();
    if (nkb > 0) {
        fa_load<T, D, BN, 128>(Ks, ke, 0, s.tk, tid);
        fa_load<T, D, BN, 128>(Vs, ve, 0, s.tk, tid);
    }
    fa_commit();
    fa_wait<1>();
    __syncthreads();

    u32 qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        fa_ldm(qf[kk], Qs + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);

    float acc[NT][4];
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[t][c] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    const int row0 = q0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

    for (int kb = 0; kb < nkb; ++kb) {
        const int buf = kb & 1;
        if (kb + 1 < nkb) {
            fa_load<T, D, BN, 128>(Ks + (buf ^ 1) * BN * LD, ke, (kb + 1) * BN, s.tk, tid);
            fa_load<T, D, BN, 128>(Vs + (buf ^ 1) * BN * LD, ve, (kb + 1) * BN, s.tk, tid);
        }
        fa_commit();
        fa_wait<1>();
        __syncthreads();
        const T* kb_s = Ks + buf * BN * LD;
        const T* vb_s = Vs + buf * BN * LD;

        float sc[BN / 8][4];
#pragma unroll
        for (int t = 0; t < BN / 8; ++t)
#pragma unroll
            for (int c = 0; c < 4; ++c) sc[t][c] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
            for (int jp = 0; jp < BN / 16; ++jp) {
                u32 r[4];
                fa_ldm(r, kb_s + (jp * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
                fa_mma<T>(sc[2 * jp], qf[kk], r[0], r[1]);
                fa_mma<T>(sc[2 * jp + 1], qf[kk], r[2], r[3]);
            }
        }
        // Scale and mask; keys past tk are not keys at all (-inf), hidden keys get the mask value.
        // Only blocks that reach past tk, cross the causal limit of the block's first query, or
        // meet a padding mask need the per-score test.
        const bool check = key_padding != nullptr || (kb + 1) * BN > s.tk || fa_key_limit(s, q0) < (kb + 1) * BN;
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int t = 0; t < BN / 8; ++t)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int h = c >> 1;
                float x = sc[t][c] * scale;
                if (check) {
                    const int key = kb * BN + t * 8 + 2 * qd + (c & 1);
                    if (key >= s.tk) x = -INFINITY;
                    else if (!fa_visible(s, key_padding, e, row0 + 8 * h, key)) x = FA_MASKED;
                }
                sc[t][c] = x;
                mx[h] = fmaxf(mx[h], x);
            }
        float corr[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            const float mn = fmaxf(m[h], mx[h]);
            corr[h] = m[h] == -INFINITY ? 0.f : expf(m[h] - mn);
            m[h] = mn;
            l[h] *= corr[h];
        }
#pragma unroll
        for (int t = 0; t < NT; ++t)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[t][c] *= corr[c >> 1];
#pragma unroll
        for (int t = 0; t < BN / 8; ++t)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const float p = sc[t][c] == -INFINITY ? 0.f : expf(sc[t][c] - m[c >> 1]);
                sc[t][c] = p;
                l[c >> 1] += p;
            }
        // O += P·V, P from the score accumulators as A fragments (16 keys per step).
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
            u32 a[4];
            a[0] = fa_pack<T>(sc[2 * kk][0], sc[2 * kk][1]);
            a[1] = fa_pack<T>(sc[2 * kk][2], sc[2 * kk][3]);
            a[2] = fa_pack<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
            a[3] = fa_pack<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                u32 r[4];
                const int rr = lane & 7, mat = lane >> 3;
                fa_ldm_t(r, vb_s + (kk * 16 + (mat & 1) * 8 + rr) * LD + dp * 16 + (mat >> 1) * 8);
                fa_mma<T>(acc[2 * dp], a, r[0], r[1]);
                fa_mma<T>(acc[2 * dp + 1], a, r[2], r[3]);
            }
        }
        __syncthreads();  // this buffer is refilled by the next iteration's prefetch
    }
    fa_wait<0>();

#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int i = row0 + 8 * h;
        if (i >= s.tq) continue;
        T* oi = o + ((i64)e * s.tq + i) * D;
        if (m[h] == FA_MASKED) {
            fa_mean_row<T>(ve, s.tk, D, qd, oi);  // sees no key: uniform weights, the mean of V
            l[h] = (float)s.tk;
        } else {
            const float inv = 1.f / l[h];
#pragma unroll
            for (int t = 0; t < NT; ++t)
#pragma unroll
                for (int c = 0; c < 2; ++c) oi[t * 8 + 2 * qd + c] = from_acc<T>(acc[t][2 * h + c] * inv);
        }
        if (qd == 0) {
            stats[((i64)e * s.tq + i) * 2] = m[h];
            stats[((i64)e * s.tq + i) * 2 + 1] = 1.f / l[h];
        }
    }
}

template <typename T, int D, int BQ>
__device__ void fa_bwd(FaShape s, const float* key_padding, float scale, const T* q, const T* k, const T* v,
                       const float* stats, const float* delta, const T* dout, float* dq_acc, T* dk, T* dv) {
    constexpr int BN = 64, LD = D + 8, NT = D / 8, LDS = BQ + 8;
    extern __shared__ __align__(16) unsigned char fa_smem_raw[];
    T* Ks = reinterpret_cast<T*>(fa_smem_raw);
    T* Vs = Ks + BN * LD;
    T* Qs = Vs + BN * LD;
    T* Gs = Qs + BQ * LD;      // dO
    T* Ss = Gs + BQ * LD;      // dSᵀ, [BN][BQ + 8]
    float* ms = reinterpret_cast<float*>(Ss + BN * LDS);
    float* invs = ms + BQ;
    float* dls = invs + BQ;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, qd = lane & 3;
    const int e = blockIdx.y, k0 = blockIdx.x * BN;
    const T* qe = q + (i64)e * s.tq * D;
    const T* ge = dout + (i64)e * s.tq * D;
    const T* ke = k + (i64)e * s.tk * D;
    const T* ve = v + (i64)e * s.tk * D;

    fa_load<T, D, BN, 128>(Ks, ke, k0, s.tk, tid);
    fa_load<T, D, BN, 128>(Vs, ve, k0, s.tk, tid);
    fa_commit();

    // The first query that sees this block's first key (prefix keys: every query).
    int qstart = 0;
    if (s.causal && k0 >= s.prefix) {
        const int main = s.tk - s.prefix;
        qstart = max(0, (k0 - s.prefix) - (main - min(s.tq, main)));
    }
    const int qb0 = qstart / BQ, nqb = (s.tq + BQ - 1) / BQ;

    float dka[NT][4], dva[NT][4];
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int c = 0; c < 4; ++c) dka[t][c] = dva[t][c] = 0.f;
    const int key0 = k0 + warp * 16 + g;  // this thread's keys: key0 and key0 + 8

    for (int qb = qb0; qb < nqb; ++qb) {
        const int qs0 = qb * BQ;
        fa_load<T, D, BQ, 128>(Qs, qe, qs0, s.tq, tid);
        fa_load<T, D, BQ, 128>(Gs, ge, qs0, s.tq, tid);
        fa_commit();
        for (int r = tid; r < BQ; r += 128) {
            const int i = qs0 + r;
            const bool ok = i < s.tq;
            ms[r] = ok ? stats[((i64)e * s.tq + i) * 2] : 0.f;
            invs[r] = ok ? stats[((i64)e * s.tq + i) * 2 + 1] : 0.f;
            dls[r] = ok ? delta[(i64)e * s.tq + i] : 0.f;
        }
        fa_wait<0>();
        __syncthreads();

        // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for the warp's 16 keys × BQ queries.
        float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
        for (int t = 0; t < BQ / 8; ++t)
#pragma unroll
            for (int c = 0; c < 4; ++c) st[t][c] = dpt[t][c] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            u32 ka[4], va[4];
            fa_ldm(ka, Ks + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
            fa_ldm(va, Vs + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
            for (int jp = 0; jp < BQ / 16; ++jp) {
                u32 r[4];
                const int off = (jp * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8;
                fa_ldm(r, Qs + off);
                fa_mma<T>(st[2 * jp], ka, r[0], r[1]);
                fa_mma<T>(st[2 * jp + 1], ka, r[2], r[3]);
                fa_ldm(r, Gs + off);
                fa_mma<T>(dpt[2 * jp], va, r[0], r[1]);
                fa_mma<T>(dpt[2 * jp + 1], va, r[2], r[3]);
            }
        }
        // Pᵀ and dSᵀ (the latter kept in dpt). Blocks inside every limit skip the per-score test.
        const bool check = key_padding != nullptr || k0 + BN > s.tk || qs0 + BQ > s.tq ||
                           fa_key_limit(s, qs0) < k0 + BN;
#pragma unroll
        for (int t = 0; t < BQ / 8; ++t)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int qi = t * 8 + 2 * qd + (c & 1), i = qs0 + qi, j = key0 + 8 * (c >> 1);
                float p = 0.f, ds = 0.f;
                if (ms[qi] != FA_MASKED && (!check || (i < s.tq && j < s.tk && fa_visible(s, key_padding, e, i, j)))) {
                    p = expf(st[t][c] * scale - ms[qi]) * invs[qi];
                    ds = p * (dpt[t][c] - dls[qi]);
                }
                st[t][c] = p;
                dpt[t][c] = ds;
            }
        // dV += Pᵀ·dO, dK += dSᵀ·Q (queries as the reduction dimension).
#pragma unroll
        for (int kk = 0; kk < BQ / 16; ++kk) {
            u32 pa[4], sa[4];
            pa[0] = fa_pack<T>(st[2 * kk][0], st[2 * kk][1]);
            pa[1] = fa_pack<T>(st[2 * kk][2], st[2 * kk][3]);
            pa[2] = fa_pack<T>(st[2 * kk + 1][0], st[2 * kk + 1][1]);
            pa[3] = fa_pack<T>(st[2 * kk + 1][2], st[2 * kk + 1][3]);
            sa[0] = fa_pack<T>(dpt[2 * kk][0], dpt[2 * kk][1]);
            sa[1] = fa_pack<T>(dpt[2 * kk][2], dpt[2 * kk][3]);
            sa[2] = fa_pack<T>(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
            sa[3] = fa_pack<T>(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
            const int rr = lane & 7, mat = lane >> 3;
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                const int off = (kk * 16 + (mat & 1) * 8 + rr) * LD + dp * 16 + (mat >> 1) * 8;
                u32 r[4];
                fa_ldm_t(r, Gs + off);
                fa_mma<T>(dva[2 * dp], pa, r[0], r[1]);
                fa_mma<T>(dva[2 * dp + 1], pa, r[2], r[3]);
                fa_ldm_t(r, Qs + off);
                fa_mma<T>(dka[2 * dp], sa, r[0], r[1]);
                fa_mma<T>(dka[2 * dp + 1], sa, r[2], r[3]);
            }
            // dSᵀ to shared memory for dQ: row = key (warp·16 + g [+8]), column = query.
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                T* srow = Ss + (warp * 16 + g + h * 8) * LDS + kk * 16 + 2 * qd;
                *reinterpret_cast<u32*>(srow) = sa[h];
                *reinterpret_cast<u32*>(srow + 8) = sa[2 + h];
            }
        }
        __syncthreads();
        // dQ (BQ × D) += dS·K: warps split the query tiles, then D.
        constexpr int MT = BQ / 16, NSPLIT = 4 / MT, DN = D / NSPLIT;
        const int mt = warp % MT, ns = warp / MT;
        float dqa[DN / 8][4];
#pragma unroll
        for (int t = 0; t < DN / 8; ++t)
#pragma unroll
            for (int c = 0; c < 4; ++c) dqa[t][c] = 0.f;
        const int rr = lane & 7, mat = lane >> 3;
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
            u32 a[4];
            // A[m = query][k = key] from Ss[key][query] (query-contiguous): transposed load.
            fa_ldm_t(a, Ss + (kk * 16 + (mat >> 1) * 8 + rr) * LDS + mt * 16 + (mat & 1) * 8);
#pragma unroll
            for (int dp = 0; dp < DN / 16; ++dp) {
                u32 r[4];
                fa_ldm_t(r, Ks + (kk * 16 + (mat & 1) * 8 + rr) * LD + ns * DN + dp * 16 + (mat >> 1) * 8);
                fa_mma<T>(dqa[2 * dp], a, r[0], r[1]);
                fa_mma<T>(dqa[2 * dp + 1], a, r[2], r[3]);
            }
        }
#pragma unroll
        for (int t = 0; t < DN / 8; ++t)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int i = qs0 + mt * 16 + g + (c >> 1) * 8;
                const int col = ns * DN + t * 8 + 2 * qd + (c & 1);
                if (i < s.tq && dqa[t][c] != 0.f) atomicAdd(dq_acc + ((i64)e * s.tq + i) * D + col, dqa[t][c] * scale);
            }
        __syncthreads();  // Qs, Gs, Ss are refilled next
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int j = key0 + 8 * h;
        if (j >= s.tk) continue;
#pragma unroll
        for (int t = 0; t < NT; ++t)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const i64 idx = ((i64)e * s.tk + j) * D + t * 8 + 2 * qd + c;
                dk[idx] = from_acc<T>(dka[t][2 * h + c] * scale);
                dv[idx] = from_acc<T>(dva[t][2 * h + c]);
            }
    }
}

// dV[e, j, :] += Σ over the queries of e that see no key of inv_i·dO_i, for every key j.
template <typename T>
__device__ void fa_dv_masked_rows(int tq, int tk, int d, const float* stats, const T* dout, T* dv) {
    const int e = blockIdx.y;
    for (int col = blockIdx.x * blockDim.x + threadIdx.x; col < d; col += gridDim.x * blockDim.x) {
        float sum = 0.f;
        for (int i = 0; i < tq; ++i) {
            const i64 r = (i64)e * tq + i;
            if (stats[r * 2] == FA_MASKED) sum += stats[r * 2 + 1] * to_acc(dout[r * d + col]);
        }
        if (sum == 0.f) continue;
        for (int j = 0; j < tk; ++j) {
            T* x = dv + ((i64)e * tk + j) * d + col;
            *x = from_acc<T>(to_acc(*x) + sum);
        }
    }
}

}  // namespace ptm

#define PTM_FA(T, S, D, BQ)                                                                                  \
    extern "C" __global__ void __launch_bounds__(128, 2)                                                     \
        attention_fwd_mma_d##D##_##S(ptm::FaShape s, const float* kp, float scale, const T* q, const T* k,   \
                                     const T* v, T* o, float* stats) {                                       \
        ptm::fa_fwd<T, D>(s, kp, scale, q, k, v, o, stats);                                                  \
    }                                                                                                        \
    extern "C" __global__ void __launch_bounds__(128, 2)                                                     \
        attention_bwd_mma_d##D##_##S(ptm::FaShape s, const float* kp, float scale, const T* q, const T* k,   \
                                     const T* v, const float* stats, const float* delta, const T* dout,      \
                                     float* dq_acc, T* dk, T* dv) {                                           \
        ptm::fa_bwd<T, D, BQ>(s, kp, scale, q, k, v, stats, delta, dout, dq_acc, dk, dv);                    \
    }

PTM_FA(bf16, bf16, 32, 64)
PTM_FA(bf16, bf16, 64, 64)
PTM_FA(bf16, bf16, 128, 32)
PTM_FA(f16, f16, 32, 64)
PTM_FA(f16, f16, 64, 64)
PTM_FA(f16, f16, 128, 32)

#define PTM_FA_MASKED(T, S)                                                                                  \
    extern "C" __global__ void attention_dv_masked_rows_##S(int tq, int tk, int d, const float* stats,       \
                                                             const T* dout, T* dv) {                        \
        ptm::fa_dv_masked_rows<T>(tq, tk, d, stats, dout, dv);                                               \
    }
PTM_FA_MASKED(bf16, bf16)
PTM_FA_MASKED(f16, f16)
