// Fused AdamW step (decoupled weight decay), one read and one write of p, g, m, v per element.
// The scalar factors are computed on the host exactly as ptm-cpu's `adamw_step` computes them, so
// the two paths differ only by the rounding of fused multiply-adds.
//
//   p ← p·decay − step_size · m / (sqrt(v) / bc2_sqrt + eps)
//   m ← m + (1 − β1)(g − m),   v ← β2 v + (1 − β2) g²

template <typename T>
__device__ void adamw(i64 n, T* p, const T* g, float* m, float* v, float decay, float step_size, float w1,
                      float b2, float w2, float bc2_sqrt, float eps) {
    PTM_GRID_STRIDE(i, n) {
        const float gi = ptm::to_acc(g[i]);
        const float pi = ptm::to_acc(p[i]) * decay;
        const float mi = m[i] + w1 * (gi - m[i]);
        const float vi = v[i] * b2 + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = ptm::from_acc<T>(pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps)));
    }
}

#define PTM_ADAMW(T, S)                                                                               \
    extern "C" __global__ void adamw_##S(i64 n, T* p, const T* g, float* m, float* v, float decay,    \
                                         float step_size, float w1, float b2, float w2,              \
                                         float bc2_sqrt, float eps) {                                \
        adamw<T>(n, p, g, m, v, decay, step_size, w1, b2, w2, bc2_sqrt, eps);                        \
    }

PTM_ADAMW(float, f32)
PTM_ADAMW(f16, f16)
PTM_ADAMW(bf16, bf16)
