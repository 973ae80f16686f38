// im2col and its adjoint for 2-D convolution (ptm-tensor's unfold, ViT's patch embedding). The
// input is a contiguous [planes = n·c, h, w] array and the columns a contiguous
// [n, c·kh·kw, oh·ow] one, entry ((plane·kh + ki)·kw + kj, oi·ow + oj) reading input row
// oi·stride + ki − pad, column oj·stride + kj − pad (zero outside the input), as ptm-cpu's im2col.
//
// The adjoint gathers rather than scatters: one thread per input element sums the column entries
// that read it, so it needs no atomics and gives the same sum on every run.

namespace ptm {

struct ConvGeom {
    i64 planes, h, w, kh, kw, stride, pad, oh, ow;
};

template <typename T> __device__ void im2col(ConvGeom g, const T* x, T* cols) {
    const i64 total = g.planes * g.kh * g.kw * g.oh * g.ow;
    PTM_GRID_STRIDE(idx, total) {
        i64 t = idx;
        const i64 oj = t % g.ow; t /= g.ow;
        const i64 oi = t % g.oh; t /= g.oh;
        const i64 kj = t % g.kw; t /= g.kw;
        const i64 ki = t % g.kh;
        const i64 plane = t / g.kh;
        const i64 i = oi * g.stride + ki - g.pad, j = oj * g.stride + kj - g.pad;
        const bool inside = i >= 0 && j >= 0 && i < g.h && j < g.w;
        cols[idx] = inside ? x[(plane * g.h + i) * g.w + j] : from_acc<T>(typename Acc<T>::type(0));
    }
}

template <typename T> __device__ void col2im(ConvGeom g, const T* cols, T* dx) {
    typedef typename Acc<T>::type A;
    const i64 total = g.planes * g.h * g.w, l = g.oh * g.ow;
    PTM_GRID_STRIDE(idx, total) {
        const i64 j = idx % g.w, i = (idx / g.w) % g.h, plane = idx / (g.w * g.h);
        const i64 pi = i + g.pad, pj = j + g.pad;
        A s = A(0);
        // Only kernel rows ki ≡ pi (mod stride) land on an output row: oi = (pi − ki) / stride.
        for (i64 ki = pi % g.stride; ki < g.kh && ki <= pi; ki += g.stride) {
            const i64 oi = (pi - ki) / g.stride;
            if (oi >= g.oh) continue;
            for (i64 kj = pj % g.stride; kj < g.kw && kj <= pj; kj += g.stride) {
                const i64 oj = (pj - kj) / g.stride;
                if (oj >= g.ow) continue;
                s += to_acc(cols[((plane * g.kh + ki) * g.kw + kj) * l + oi * g.ow + oj]);
            }
        }
        dx[idx] = from_acc<T>(s);
    }
}

}  // namespace ptm

#define PTM_CONV(T, S)                                                                                 \
    extern "C" __global__ void im2col_##S(ptm::ConvGeom g, const T* x, T* cols) {                     \
        ptm::im2col<T>(g, x, cols);                                                                   \
    }                                                                                                 \
    extern "C" __global__ void col2im_##S(ptm::ConvGeom g, const T* cols, T* dx) {                    \
        ptm::col2im<T>(g, cols, dx);                                                                  \
    }

PTM_CONV(float, f32)
PTM_CONV(double, f64)
PTM_CONV(f16, f16)
PTM_CONV(bf16, bf16)
