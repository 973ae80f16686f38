// Scaled-dot-product attention on the CUDA cores, forward and backward, for every element type and
// head dimensions up to 256: the reference GPU path (f32, f64) and the fallback of the tensor-core
// flash attention (attention_mma.cu).
//
// Shapes and masking are ptm-cpu's `attention` module's: q is [bh, tq, d], k and v [bh, tk, d] with
// `prefix` keys first that every query sees. Causal: query i sees main key j when
// j ≤ i + (main − min(tq, main)). Padding: key_padding[batch][main] == 0 hides a main key. A hidden
// score is f32's most negative finite value (as in ptm-tensor's composition), so a query that sees
// no key at all gets uniform weights over all tk keys. stats[bh, tq, 2] (f32, f64 for f64) holds each
// query's score maximum and 1/Σ exp, which the backward uses to rebuild the weights.
//
// One warp per query row (forward, dQ) or per key row (dK, dV); each lane holds d/32 of the row.

namespace ptm {

#define ATT_MAX_D 256
#define ATT_PER_LANE (ATT_MAX_D / 32)
#define ATT_MASKED (-3.4028234663852886e38)  // f32::MIN

struct AttShape {
    int bh, heads, tq, tk, prefix, d, causal;
    int pad_;
};

// Whether query i of entry e sees key j (prefix included in j).
__device__ __forceinline__ bool att_visible(const AttShape& s, const float* key_padding, int e, int i, int j) {
    if (j < s.prefix) return true;
    const int main = s.tk - s.prefix, jm = j - s.prefix;
    if (s.causal) {
        const int shift = main - min(s.tq, main);
        if (jm > i + shift) return false;
    }
    if (key_padding && key_padding[(i64)(e / s.heads) * main + jm] == 0.0f) return false;
    return true;
}

template <typename T, typename A>
__device__ __forceinline__ A att_dot(const T* x, const A* reg, int d, int lane) {
    A s = A(0);
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; ++c) {
        const int col = lane + 32 * c;
        if (col < d) s += reg[c] * to_acc(x[col]);
    }
    return warp_sum(s);
}

template <typename T>
__device__ void att_fwd_simt(AttShape s, const float* key_padding, double scale_d, const T* q, const T* k, const T* v,
                             T* o, typename Acc<T>::type* stats) {
    typedef typename Acc<T>::type A;
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int e = blockIdx.y;
    if (i >= s.tq) return;
    const int d = s.d;
    const A scale = A(scale_d);
    const T* qi = q + ((i64)e * s.tq + i) * d;
    const T* ke = k + (i64)e * s.tk * d;
    const T* ve = v + (i64)e * s.tk * d;
    T* oi = o + ((i64)e * s.tq + i) * d;
    A qr[ATT_PER_LANE], acc[ATT_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; ++c) {
        const int col = lane + 32 * c;
        qr[c] = col < d ? to_acc(qi[col]) : A(0);
        acc[c] = A(0);
    }
    A m = A(-INFINITY), l = A(0);
    int last = s.tk;  // keys past the causal limit are hidden for this query: skip them
    if (s.causal) {
        const int main = s.tk - s.prefix;
        last = s.prefix + min(main, i + (main - min(s.tq, main)) + 1);
    }
    for (int j = 0; j < last; ++j) {
        A sc = att_dot(ke + (i64)j * d, qr, d, lane) * scale;
        if (!att_visible(s, key_padding, e, i, j)) sc = A(ATT_MASKED);
        const A mn = sc > m ? sc : m;
        const A corr = mexp(m - mn), p = mexp(sc - mn);
        l = l * corr + p;
        const T* vj = ve + (i64)j * d;
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; ++c) {
            const int col = lane + 32 * c;
            if (col < d) acc[c] = acc[c] * corr + p * to_acc(vj[col]);
        }
        m = mn;
    }
    if (s.tk == 0) {
        m = A(0);
        l = A(1);
    } else if (m == A(ATT_MASKED)) {
        // Sees no key: every score is the mask value, so the weights are uniform over all keys.
        l = A(s.tk);
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; ++c) acc[c] = A(0);
        for (int j = 0; j < s.tk; ++j) {
            const T* vj = ve + (i64)j * d;
#pragma unroll
            for (int c = 0; c < ATT_PER_LANE; ++c) {
                const int col = lane + 32 * c;
                if (col < d) acc[c] += to_acc(vj[col]);
            }
        }
    }
    const A inv = s.tk == 0 ? A(0) : A(1) / l;
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; ++c) {
        const int col = lane + 32 * c;
        if (col < d) oi[col] = from_acc<T>(acc[c] * inv);
    }
    if (lane == 0) {
        stats[((i64)e * s.tq + i) * 2] = m;
        stats[((i64)e * s.tq + i) * 2 + 1] = inv;
    }
}

// delta[e, i] = Σ_d dO · O, per query (the backward's row correction).
template <typename T>
__device__ void att_delta(int rows, int d, const T* o, const T* dout, typename Acc<T>::type* delta) {
    typedef typename Acc<T>::type A;
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    A sum = A(0);
    for (int c = lane; c < d; c += 32) sum += to_acc(o[(i64)r * d + c]) * to_acc(dout[(i64)r * d + c]);
    sum = warp_sum(sum);
    if (lane == 0) delta[r] = sum;
}

// The weight P and the score gradient dS (before the scale) of (i, j), from the saved statistics.
// A query that sees no key has uniform weights and no score gradient.
template <typename T, typename A>
__device__ __forceinline__ void att_p_ds(const AttShape& s, const float* key_padding, int e, int i, int j, A score,
                                         A dp, A m, A inv, A delta, A& p, A& ds) {
    const bool vis = att_visible(s, key_padding, e, i, j);
    const bool none = m == A(ATT_MASKED);
    if (none) {
        p = inv;
        ds = A(0);
        return;
    }
    p = vis ? mexp(score - m) * inv : A(0);
    ds = vis ? p * (dp - delta) : A(0);
}

// dQ: one warp per query; dq_i = scale Σ_j dS_ij k_j.
template <typename T>
__device__ void att_bwd_dq_simt(AttShape s, const float* key_padding, double scale_d, const T* q, const T* k,
                                const T* v, const typename Acc<T>::type* stats, const typename Acc<T>::type* delta,
                                const T* dout, T* dq) {
    typedef typename Acc<T>::type A;
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int e = blockIdx.y;
    if (i >= s.tq) return;
    const int d = s.d;
    const A scale = A(scale_d);
    const i64 row = (i64)e * s.tq + i;
    A qr[ATT_PER_LANE], gr[ATT_PER_LANE], acc[ATT_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; ++c) {
        const int col = lane + 32 * c;
        qr[c] = col < d ? to_acc(q[row * d + col]) : A(0);
        gr[c] = col < d ? to_acc(dout[row * d + col]) : A(0);
        acc[c] = A(0);
    }
    const A m = A(stats[row * 2]), inv = A(stats[row * 2 + 1]), dl = A(delta[row]);
    for (int j = 0; j < s.tk; ++j) {
        const T* kj = k + ((i64)e * s.tk + j) * d;
        const T* vj = v + ((i64)e * s.tk + j) * d;
        const A score = att_dot(kj, qr, d, lane) * scale;
        const A dp = att_dot(vj, gr, d, lane);
        A p, ds;
        att_p_ds<T, A>(s, key_padding, e, i, j, score, dp, m, inv, dl, p, ds);
        if (ds == A(0)) continue;
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; ++c) {
            const int col = lane + 32 * c;
            if (col < d) acc[c] += ds * to_acc(kj[col]);
        }
    }
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; ++c) {
        const int col = lane + 32 * c;
        if (col < d) dq[row * d + col] = from_acc<T>(acc[c] * scale);
    }
}

// dK, dV: one warp per key; dv_j = Σ_i P_ij dO_i, dk_j = scale Σ_i dS_ij q_i.
template <typename T>
__device__ void att_bwd_dkv_simt(AttShape s, const float* key_padding, double scale_d, const T* q, const T* k,
                                 const T* v, const typename Acc<T>::type* stats, const typename Acc<T>::type* delta,
                                 const T* dout, T* dk, T* dv) {
    typedef typename Acc<T>::type A;
    const int lane = threadIdx.x & 31;
    const int j = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int e = blockIdx.y;
    if (j >= s.tk) return;
    const int d = s.d;
    const A scale = A(scale_d);
    const i64 krow = (i64)e * s.tk + j;
    A kr[ATT_PER_LANE], vr[ATT_PER_LANE], ak[ATT_PER_LANE], av[ATT_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; ++c) {
        const int col = lane + 32 * c;
        kr[c] = col < d ? to_acc(k[krow * d + col]) : A(0);
        vr[c] = col < d ? to_acc(v[krow * d + col]) : A(0);
        ak[c] = A(0);
        av[c] = A(0);
    }
    for (int i = 0; i < s.tq; ++i) {
        const i64 row = (i64)e * s.tq + i;
        const T* qi = q + row * d;
        const T* gi = dout + row * d;
        const A score = att_dot(qi, kr, d, lane) * scale;
        const A dp = att_dot(gi, vr, d, lane);
        A p, ds;
        att_p_ds<T, A>(s, key_padding, e, i, j, score, dp, A(stats[row * 2]), A(stats[row * 2 + 1]), A(delta[row]), p,
                       ds);
        if (p == A(0) && ds == A(0)) continue;
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; ++c) {
            const int col = lane + 32 * c;
            if (col < d) {
                av[c] += p * to_acc(gi[col]);
                ak[c] += ds * to_acc(qi[col]);
            }
        }
    }
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; ++c) {
        const int col = lane + 32 * c;
        if (col < d) {
            dk[krow * d + col] = from_acc<T>(ak[c] * scale);
            dv[krow * d + col] = from_acc<T>(av[c]);
        }
    }
}

}  // namespace ptm

#define PTM_ATT_SIMT(T, S, A)                                                                              \
    extern "C" __global__ void attention_fwd_simt_##S(ptm::AttShape s, const float* key_padding, double scale, \
                                                      const T* q, const T* k, const T* v, T* o, A* stats) {   \
        ptm::att_fwd_simt<T>(s, key_padding, scale, q, k, v, o, stats);                                   \
    }                                                                                                     \
    extern "C" __global__ void attention_delta_##S(int rows, int d, const T* o, const T* dout, A* delta) {  \
        ptm::att_delta<T>(rows, d, o, dout, delta);                                                       \
    }                                                                                                     \
    extern "C" __global__ void attention_bwd_dq_simt_##S(ptm::AttShape s, const float* key_padding, double scale, \
                                                         const T* q, const T* k, const T* v, const A* stats, \
                                                         const A* delta, const T* dout, T* dq) {          \
        ptm::att_bwd_dq_simt<T>(s, key_padding, scale, q, k, v, stats, delta, dout, dq);                  \
    }                                                                                                     \
    extern "C" __global__ void attention_bwd_dkv_simt_##S(ptm::AttShape s, const float* key_padding,        \
                                                          double scale, const T* q, const T* k, const T* v, \
                                                          const A* stats, const A* delta, const T* dout,  \
                                                          T* dk, T* dv) {                                 \
        ptm::att_bwd_dkv_simt<T>(s, key_padding, scale, q, k, v, stats, delta, dout, dk, dv);             \
    }

PTM_ATT_SIMT(float, f32, float)
PTM_ATT_SIMT(double, f64, double)
PTM_ATT_SIMT(f16, f16, float)
PTM_ATT_SIMT(bf16, bf16, float)
