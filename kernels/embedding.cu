// Embedding lookup and its backward. Ids are i64 and checked against the table on the host.
// The backward adds rows of dy into an accumulation buffer (f32, f64 for f64) with atomics: the
// same id may appear many times in a batch.

namespace ptm {

template <typename T>
__device__ void embedding_fwd(i64 rows, i64 d, const i64* ids, const T* table, T* y) {
    PTM_GRID_STRIDE(i, rows * d) {
        const i64 r = i / d, j = i - r * d;
        y[i] = table[ids[r] * d + j];
    }
}

template <typename T>
__device__ void embedding_bwd(i64 rows, i64 d, const i64* ids, const T* dy, typename Acc<T>::type* dtable) {
    PTM_GRID_STRIDE(i, rows * d) {
        const i64 r = i / d, j = i - r * d;
        atomicAdd(dtable + ids[r] * d + j, to_acc(dy[i]));
    }
}

}  // namespace ptm

#define PTM_EMBEDDING(T, S, A)                                                                         \
    extern "C" __global__ void embedding_fwd_##S(i64 rows, i64 d, const i64* ids, const T* table, T* y) { \
        ptm::embedding_fwd<T>(rows, d, ids, table, y);                                                \
    }                                                                                                 \
    extern "C" __global__ void embedding_bwd_##S(i64 rows, i64 d, const i64* ids, const T* dy, A* dt) { \
        ptm::embedding_bwd<T>(rows, d, ids, dy, dt);                                                  \
    }

PTM_EMBEDDING(float, f32, float)
PTM_EMBEDDING(double, f64, double)
PTM_EMBEDDING(f16, f16, float)
PTM_EMBEDDING(bf16, bf16, float)

// Lookups of integer tables (ptm-tensor's gather and index_select of index tensors).
#define PTM_EMBEDDING_FWD(T, S)                                                                        \
    extern "C" __global__ void embedding_fwd_##S(i64 rows, i64 d, const i64* ids, const T* table, T* y) { \
        ptm::embedding_fwd<T>(rows, d, ids, table, y);                                                \
    }
PTM_EMBEDDING_FWD(u32, u32)
PTM_EMBEDDING_FWD(i64, i64)
