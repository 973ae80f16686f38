//! bf16 × bf16 → f32 matrix products: `C = A·B + beta·C` with bf16 operands and f32 accumulation
//! and output (mixed-precision training keeps bf16 weights and activations, f32 sums).
//!
//! On CPUs with AVX-512 BF16 the operands are packed as pairs along k (two bf16 in one u32) and
//! the `vdpbf16ps` micro-kernel (`x86::Avx512Bf16`) runs in the same loop nest as the f32 kernels
//! (`pack::drive`). Elsewhere, or when `PTM_CPU_ISA` selects a lower path, the operands are
//! widened to f32 and the f32 path runs: the same products (bf16 → f32 is exact), summed in a
//! different order.

use super::MatRef;
use crate::isa::Isa;
use half::bf16;
use rayon::prelude::*;

/// Whether [`matmul_bf16`] runs the `vdpbf16ps` kernel here (AVX-512 BF16 present and the AVX-512
/// path selected).
pub fn bf16_dot_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        Isa::selected() == Isa::Avx512 && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `C = A·B + beta·C` for bf16 `A` (`m×k`) and `B` (`k×n`), f32 row-major `C`; the fastest path
/// this CPU has (see the module docs).
///
/// # Panics
/// If `C` does not hold `m·n` elements.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bf16(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<bf16>,
    b: MatRef<bf16>,
    c: &mut [f32],
    beta: f32,
) {
    assert_eq!(c.len(), m * n, "matmul_bf16: C must hold m*n elements");
    if !bf16_dot_available() {
        return matmul_bf16_widened(m, n, k, a, b, c, beta);
    }
    let overwrite = beta == 0.0;
    if !overwrite && beta != 1.0 {
        c.iter_mut().for_each(|x| *x *= beta);
    }
    #[cfg(target_arch = "x86_64")]
    {
        type K = super::x86::Avx512Bf16;
        use super::pack::MicroKernel;
        let steps = k.div_ceil(2);
        let pack_a = |out: &mut Vec<u32>| {
            pack_pairs(
                out,
                m,
                k,
                K::MR,
                |i| (a.col_stride == 1).then(|| &a.data[a.offset + i * a.row_stride..][..k]),
                |i, p, w| {
                    (a.row_stride == 1).then(|| &a.data[a.offset + p * a.col_stride + i..][..w])
                },
                |i, p| a.at(i, p),
            )
        };
        let pack_b = |out: &mut Vec<u32>, (s0, ns): (usize, usize), (p0, kc): (usize, usize)| {
            // Steps are pairs of k; a slice starts at an even k (KC is even).
            let (k0, depth) = (2 * p0, (2 * kc).min(k - 2 * p0));
            let off = b.offset + s0 * b.col_stride + k0 * b.row_stride;
            pack_pairs(
                out,
                ns,
                depth,
                K::NR,
                |j| (b.row_stride == 1).then(|| &b.data[off + j * b.col_stride..][..depth]),
                |j, p, w| (b.col_stride == 1).then(|| &b.data[off + p * b.row_stride + j..][..w]),
                |j, p| b.data[off + p * b.row_stride + j * b.col_stride],
            )
        };
        // SAFETY: `bf16_dot_available` checked AVX-512F and AVX-512 BF16; `pack_pairs` fills
        // `steps·MR` (`steps·NR`) pairs per panel, zero-padded, as the kernel reads them.
        unsafe {
            super::pack::drive::<K>(m, n, steps, (pack_a, None), (pack_b, None), c, overwrite)
        }
    }
}

/// [`matmul_bf16`] through the f32 path: operands widened to f32 (exactly), then `matmul`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bf16_widened(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<bf16>,
    b: MatRef<bf16>,
    c: &mut [f32],
    beta: f32,
) {
    let widen = |v: &MatRef<bf16>, rows: usize, cols: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                out.push(v.at(i, j).to_f32());
            }
        }
        out
    };
    let (a32, b32) = (widen(&a, m, k), widen(&b, k, n));
    super::matmul(
        m,
        n,
        k,
        MatRef::row_major(&a32, k),
        MatRef::row_major(&b32, n),
        c,
        beta,
    )
}

/// Packs a `count × depth` bf16 operand into panels of `ceil(depth/2)` steps × `width` pairs:
/// element `(idx, p)` goes to panel `idx / width`, step `p / 2`, lane `idx % width`, in the low
/// half for even `p`. Padding (past `count`, or the odd last `p`) is zero. Readers: `line(idx)`
/// the `depth` values of `idx` when contiguous, `run(idx, p, w)` `w` consecutive idx at `p` when
/// contiguous, `get(idx, p)` one value.
fn pack_pairs<'a>(
    out: &mut Vec<u32>,
    count: usize,
    depth: usize,
    width: usize,
    line: impl Fn(usize) -> Option<&'a [bf16]> + Sync,
    run: impl Fn(usize, usize, usize) -> Option<&'a [bf16]> + Sync,
    get: impl Fn(usize, usize) -> bf16 + Sync,
) {
    let steps = depth.div_ceil(2);
    let len = count.div_ceil(width) * steps * width;
    if out.len() < len {
        out.resize(len, 0);
    }
    let pair = |lo: bf16, hi: bf16| lo.to_bits() as u32 | (hi.to_bits() as u32) << 16;
    let fill = |(q, panel): (usize, &mut [u32])| {
        let i0 = q * width;
        let w = width.min(count - i0);
        if line(i0).is_some() {
            for i in 0..w {
                let src = line(i0 + i).unwrap_or_default();
                let (pairs, rest) = src.as_chunks::<2>();
                for (s, &[lo, hi]) in pairs.iter().enumerate() {
                    panel[s * width + i] = pair(lo, hi);
                }
                if let [last] = rest {
                    panel[(steps - 1) * width + i] = pair(*last, bf16::ZERO);
                }
            }
        } else {
            for s in 0..steps {
                let dst = &mut panel[s * width..s * width + w];
                let (p0, p1) = (2 * s, 2 * s + 1);
                match (run(i0, p0, w), (p1 < depth).then(|| run(i0, p1, w))) {
                    (Some(r0), Some(Some(r1))) => {
                        for ((d, &lo), &hi) in dst.iter_mut().zip(r0).zip(r1) {
                            *d = pair(lo, hi);
                        }
                    }
                    (Some(r0), None) => {
                        for (d, &lo) in dst.iter_mut().zip(r0) {
                            *d = pair(lo, bf16::ZERO);
                        }
                    }
                    _ => {
                        for (i, d) in dst.iter_mut().enumerate() {
                            let hi = if p1 < depth {
                                get(i0 + i, p1)
                            } else {
                                bf16::ZERO
                            };
                            *d = pair(get(i0 + i, p0), hi);
                        }
                    }
                }
            }
        }
        if w < width {
            for s in 0..steps {
                panel[s * width + w..(s + 1) * width].fill(0);
            }
        }
    };
    let out = &mut out[..len];
    if count * depth >= 1 << 16 {
        out.par_chunks_mut((steps * width).max(1))
            .enumerate()
            .for_each(fill);
    } else {
        out.chunks_mut((steps * width).max(1))
            .enumerate()
            .for_each(fill);
    }
}
