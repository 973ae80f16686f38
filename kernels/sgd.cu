// Fused SGD step with momentum and L2 weight decay, in f32 as ptm-cpu's `sgd_step`:
//
//   d ← g + wd·p;   buf ← first ? d : momentum·buf + d  (with momentum);   p ← p − lr·d'
//
// where d' is buf with momentum and d without. `buf` is untouched when momentum is 0.

template <typename T>
__device__ void sgd(i64 n, T* p, const T* g, float* buf, float lr, float momentum, float wd, int first) {
    PTM_GRID_STRIDE(i, n) {
        const float pi = ptm::to_acc(p[i]);
        float d = ptm::to_acc(g[i]);
        if (wd != 0.0f) d += wd * pi;
        if (momentum != 0.0f) {
            buf[i] = first ? d : momentum * buf[i] + d;
            d = buf[i];
        }
        p[i] = ptm::from_acc<T>(pi - lr * d);
    }
}

#define PTM_SGD(T, S)                                                                                 \
    extern "C" __global__ void sgd_##S(i64 n, T* p, const T* g, float* buf, float lr, float momentum, \
                                       float wd, int first) {                                        \
        sgd<T>(n, p, g, buf, lr, momentum, wd, first);                                                \
    }

PTM_SGD(float, f32)
PTM_SGD(f16, f16)
PTM_SGD(bf16, bf16)
