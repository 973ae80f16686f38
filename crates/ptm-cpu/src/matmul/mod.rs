//! Matrix multiplication `C = A·B + beta·C` on strided operands.
//!
//! `A` is `m×k`, `B` is `k×n`, each given as a [`MatRef`] with a row and a column stride, so a
//! transposed view (`Bᵀ` for the backward pass) needs no copy by the caller. `C` is a contiguous
//! row-major `m×n` slice. `beta = 0` never reads `C` (it may hold garbage), `beta = 1` accumulates.
//!
//! Paths, chosen per call by [`Isa::selected`] (or explicitly with [`matmul_isa`]):
//! - f32 on AVX-512 or AVX2+FMA: operands packed into panels, a register-blocked micro-kernel
//!   (`x86.rs`) driven by the BLIS loop nest in `pack.rs`, blocks of C spread over rayon's threads;
//! - f64, and f32 on the scalar path: a portable 4-row register block the compiler vectorises;
//! - bf16 operands with f32 accumulation ([`matmul_bf16`]): pairs along k packed into u32 for the
//!   AVX-512 BF16 `vdpbf16ps` kernel, or widened to f32 where the CPU lacks it.
//!
//! [`matmul_naive`] is the f64-accumulating triple loop every path is tested against.

use crate::element::Float;
use crate::isa::Isa;
use crate::parallel::MIN_PARALLEL_WORK;
use rayon::prelude::*;

mod bf16;
// The packed driver serves the x86 micro-kernels; other targets take the portable path for now.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) mod pack;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use bf16::{bf16_dot_available, matmul_bf16, matmul_bf16_widened};

/// A read-only strided matrix view: element `(i, j)` is `data[offset + i*row_stride + j*col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// The buffer the view reads from.
    pub data: &'a [T],
    /// Index of element (0, 0).
    pub offset: usize,
    /// Distance between consecutive rows, in elements.
    pub row_stride: usize,
    /// Distance between consecutive columns, in elements.
    pub col_stride: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A contiguous row-major matrix with `cols` columns.
    pub fn row_major(data: &'a [T], cols: usize) -> Self {
        MatRef {
            data,
            offset: 0,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// Element `(i, j)`.
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> T {
        self.data[self.offset + i * self.row_stride + j * self.col_stride]
    }

    /// The view as a contiguous row-major slice, when it already is one.
    fn as_row_major(&self, rows: usize, cols: usize) -> Option<&'a [T]> {
        let contiguous =
            (self.col_stride == 1 || cols <= 1) && (self.row_stride == cols || rows <= 1);
        contiguous.then(|| &self.data[self.offset..self.offset + rows * cols])
    }

    /// A row-major copy of the `rows×cols` matrix (borrowed when no copy is needed).
    fn packed(&self, rows: usize, cols: usize) -> std::borrow::Cow<'a, [T]> {
        match self.as_row_major(rows, cols) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => {
                let mut v = Vec::with_capacity(rows * cols);
                for i in 0..rows {
                    for j in 0..cols {
                        v.push(self.at(i, j));
                    }
                }
                std::borrow::Cow::Owned(v)
            }
        }
    }
}

/// The reference: a triple loop accumulating in f64. Slow, obviously right.
#[allow(clippy::too_many_arguments)]
pub fn matmul_naive<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    beta: T,
) {
    assert_eq!(c.len(), m * n, "matmul_naive: C must hold m*n elements");
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += a.at(i, p).to_f64() * b.at(p, j).to_f64();
            }
            let prev = if beta == T::ZERO {
                0.0
            } else {
                beta.to_f64() * c[i * n + j].to_f64()
            };
            c[i * n + j] = T::from_f64(acc + prev);
        }
    }
}

/// `C = A·B + beta·C` on the path [`Isa::selected`] picks (see the module docs).
pub fn matmul<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    beta: T,
) {
    matmul_isa(Isa::selected(), m, n, k, a, b, c, beta)
}

/// [`matmul`] on an explicit path, for tests and benchmarks that compare paths.
///
/// # Panics
/// If this CPU cannot run `isa` (see [`Isa::available`]), or `C` does not hold `m·n` elements.
#[allow(clippy::too_many_arguments)]
pub fn matmul_isa<T: Float>(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    beta: T,
) {
    assert!(
        isa.is_available(),
        "matmul: this CPU cannot run the {} path",
        isa.name()
    );
    assert_eq!(c.len(), m * n, "matmul: C must hold m*n elements");
    let overwrite = beta == T::ZERO;
    if !overwrite && beta != T::ONE {
        c.iter_mut().for_each(|x| *x *= beta);
    }
    T::gemm(isa, m, n, k, &a, &b, c, overwrite);
}

/// Products below this many multiply-adds (about 100³) run whole on one thread: the packed
/// driver splits larger ones into parallel blocks, and batches of smaller ones run in parallel
/// across entries. Below it, rayon's hand-off costs more than it saves.
pub(crate) const SMALL_PRODUCT: usize = 1 << 20;

/// `C_i = A_i·B_i + beta·C_i` for every entry `i` of a batch: `a` and `b` hold one view per
/// entry, `c` the entries' `m×n` outputs one after another. Large products split their own blocks
/// over threads; small ones (attention heads, say) run in parallel across entries instead.
///
/// # Panics
/// If `a` and `b` differ in length or `c` does not hold `a.len()·m·n` elements.
#[allow(clippy::too_many_arguments)]
pub fn matmul_batched<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[MatRef<T>],
    b: &[MatRef<T>],
    c: &mut [T],
    beta: T,
) {
    assert_eq!(a.len(), b.len(), "matmul_batched: as many A as B views");
    assert_eq!(
        c.len(),
        a.len() * m * n,
        "matmul_batched: C must hold batch*m*n elements"
    );
    if m * n == 0 {
        return;
    }
    let isa = Isa::selected();
    let one = |((c, a), b): ((&mut [T], &MatRef<T>), &MatRef<T>)| {
        matmul_isa(isa, m, n, k, *a, *b, c, beta)
    };
    let work = m.saturating_mul(n).saturating_mul(k);
    if a.len() > 1 && work < SMALL_PRODUCT && work.saturating_mul(a.len()) >= MIN_PARALLEL_WORK * 2
    {
        c.par_chunks_mut(m * n)
            .zip(a.par_iter())
            .zip(b.par_iter())
            .for_each(one);
    } else {
        c.chunks_mut(m * n).zip(a).zip(b).for_each(one);
    }
}

/// `C (+)= A·B` for f32 on `isa`; `overwrite` never reads C.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef<f32>,
    b: &MatRef<f32>,
    c: &mut [f32],
    overwrite: bool,
) {
    match isa {
        // SAFETY: `matmul_isa` checked `isa.is_available()`, the kernels' only extra requirement.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { pack::gemm::<x86::Avx512>(m, n, k, a, b, c, overwrite) },
        // SAFETY: as above (AVX2 and FMA detected).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { pack::gemm::<x86::Avx2>(m, n, k, a, b, c, overwrite) },
        _ => gemm_portable(m, n, k, a, b, c, overwrite),
    }
}

/// [`gemm_acc_portable`], zeroing C first when overwriting.
pub(crate) fn gemm_portable<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef<T>,
    b: &MatRef<T>,
    c: &mut [T],
    overwrite: bool,
) {
    if overwrite {
        c.fill(T::ZERO);
    }
    gemm_acc_portable(m, n, k, a, b, c)
}

/// Rows of `C` computed together: each loaded row of `B` is used four times.
const ROW_BLOCK: usize = 4;
/// Columns of `C` per block: four rows of this many f32 stay in L1 together with a row of `B`.
const COL_BLOCK: usize = 512;

/// `C += A·B`, portable: operands packed row-major, then a 4-row register block streaming `B` in
/// cache-sized column blocks, which the compiler vectorises for the baseline target.
pub(crate) fn gemm_acc_portable<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef<T>,
    b: &MatRef<T>,
    c: &mut [T],
) {
    if m == 0 || n == 0 {
        return;
    }
    let a = a.packed(m, k);
    let b = b.packed(k, n);
    let (a, b) = (&a[..], &b[..]);
    let block = |bi: usize, c_block: &mut [T]| {
        let rows = c_block.len() / n;
        let i0 = bi * ROW_BLOCK;
        for j0 in (0..n).step_by(COL_BLOCK) {
            let j1 = (j0 + COL_BLOCK).min(n);
            for p in 0..k {
                let b_row = &b[p * n + j0..p * n + j1];
                for r in 0..rows {
                    let a_rp = a[(i0 + r) * k + p];
                    let c_row = &mut c_block[r * n + j0..r * n + j1];
                    for (cv, &bv) in c_row.iter_mut().zip(b_row) {
                        *cv += a_rp * bv;
                    }
                }
            }
        }
    };
    if m.saturating_mul(n).saturating_mul(k) < MIN_PARALLEL_WORK * 4 {
        c.chunks_mut(ROW_BLOCK * n)
            .enumerate()
            .for_each(|(bi, cb)| block(bi, cb));
    } else {
        c.par_chunks_mut(ROW_BLOCK * n)
            .enumerate()
            .for_each(|(bi, cb)| block(bi, cb));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_zero_ignores_garbage_and_beta_one_accumulates_on_every_path() {
        for isa in Isa::available() {
            let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
            let bt = [1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0]; // B stored column-major: columns [1,0,0] and [1,1,1]
            let b = MatRef {
                data: &bt,
                offset: 0,
                row_stride: 1,
                col_stride: 3,
            };
            let mut c = [f64::NAN; 4];
            matmul_isa(isa, 2, 2, 3, MatRef::row_major(&a, 3), b, &mut c, 0.0);
            assert_eq!(c, [1.0, 6.0, 4.0, 15.0]);
            matmul_isa(isa, 2, 2, 3, MatRef::row_major(&a, 3), b, &mut c, 1.0);
            assert_eq!(c, [2.0, 12.0, 8.0, 30.0]);
            let (a32, bt32): (Vec<f32>, Vec<f32>) = (
                a.iter().map(|&x| x as f32).collect(),
                bt.iter().map(|&x| x as f32).collect(),
            );
            let b32 = MatRef {
                data: &bt32[..],
                offset: 0,
                row_stride: 1,
                col_stride: 3,
            };
            let mut c32 = [f32::NAN; 4];
            matmul_isa(isa, 2, 2, 3, MatRef::row_major(&a32, 3), b32, &mut c32, 0.0);
            assert_eq!(c32, [1.0, 6.0, 4.0, 15.0], "{isa:?}");
        }
    }
}
