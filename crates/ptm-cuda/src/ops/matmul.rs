//! Matrix products (`kernels/matmul_mma.cu` on tensor cores for f16/bf16, `kernels/matmul_simt.cu`
//! for everything else): `C[b] = alpha·A[b]·B[b] + beta·C[b] (+ bias)`, operands read through
//! strides so that transposed views cost nothing.

use super::{launched, FloatType};
use crate::device::Buffer;
use crate::error::{Error, Result};
use crate::memory::Layout;
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// One operand: `rows × cols` per batch entry, element `(r, c)` of entry `b` at
/// `offset + b·batch_stride + r·row_stride + c·col_stride` (strides in elements, never negative).
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a, T: FloatType> {
    /// The buffer.
    pub buf: &'a Buffer<T>,
    /// Element offset of entry 0's (0, 0).
    pub offset: usize,
    /// Stride between rows.
    pub row_stride: usize,
    /// Stride between columns.
    pub col_stride: usize,
    /// Stride between batch entries (0 shares one matrix across the batch).
    pub batch_stride: usize,
}

impl<'a, T: FloatType> Operand<'a, T> {
    /// A contiguous row-major `rows × cols` matrix per entry, entries back to back.
    pub fn row_major(buf: &'a Buffer<T>, rows: usize, cols: usize) -> Self {
        Operand {
            buf,
            offset: 0,
            row_stride: cols,
            col_stride: 1,
            batch_stride: rows * cols,
        }
    }

    /// The transposed view of the same memory (`cols × rows`).
    pub fn t(self) -> Self {
        Operand {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn check(&self, what: &str, batch: usize, rows: usize, cols: usize) -> Result<()> {
        // Even an empty view's base must lie in the buffer: the launcher takes its address.
        if self.offset > self.buf.len() {
            return Err(Error::Invalid(format!(
                "{what}: offset {} is past a buffer of {}",
                self.offset,
                self.buf.len()
            )));
        }
        let l = Layout::strided(
            &[batch, rows, cols],
            &[
                self.batch_stride as isize,
                self.row_stride as isize,
                self.col_stride as isize,
            ],
            self.offset,
        )?;
        l.check_within(self.buf.len(), what)
    }

    /// `Some(ld)` when the operand suits the tensor-core kernel with K along `k_is_col`'s side:
    /// returns (K-major?, leading stride).
    fn mma_form(&self, k_is_col: bool) -> Option<(bool, usize)> {
        let (k_stride, mn_stride) = if k_is_col {
            (self.col_stride, self.row_stride)
        } else {
            (self.row_stride, self.col_stride)
        };
        let aligned = |v: usize| v.is_multiple_of(8);
        let base_ok = self.buf.ptr_at(self.offset).is_multiple_of(16) && aligned(self.batch_stride);
        if !base_ok {
            return None;
        }
        if k_stride == 1 && aligned(mn_stride) {
            Some((true, mn_stride))
        } else if mn_stride == 1 && aligned(k_stride) {
            Some((false, k_stride))
        } else {
            None
        }
    }
}

/// The product's sizes and scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    /// Batch entries.
    pub batch: usize,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Scale of the product.
    pub alpha: f64,
    /// Scale of C's old value (0: C is not read, and may hold anything).
    pub beta: f64,
}

/// Which kernel [`gemm`] ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmPath {
    /// The tensor-core kernel; the two flags say A and B were K-major.
    TensorCore(bool, bool),
    /// The CUDA-core kernel.
    Simt,
}

const MMA_SMEM_BYTES: u32 = 3 * 2 * 128 * 40 * 2;

/// `C[b] = alpha·A[b]·B[b] + beta·C[b] + bias` with C row-major (`ldc`, `c_batch_stride`) at
/// `c_offset` in `c`, and `bias` (length n) added to every row when given. Half types with suitable
/// layouts run on tensor cores, everything else on the CUDA-core kernel; `force_simt` picks the
/// latter always (for tests and comparisons).
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: FloatType>(
    g: &Gemm,
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    c: &mut Buffer<T>,
    c_offset: usize,
    ldc: usize,
    c_batch_stride: usize,
    bias: Option<&Buffer<T>>,
    force_simt: bool,
) -> Result<GemmPath> {
    let name = format!("gemm_{}", T::NAME);
    for v in [g.m, g.n, g.k, g.batch] {
        if v > i32::MAX as usize {
            return Err(Error::Invalid(format!(
                "{name}: size {v} is over the kernels' i32 range"
            )));
        }
    }
    if g.batch > 65_535 {
        return Err(Error::Invalid(format!(
            "{name}: batch {} is over 65 535",
            g.batch
        )));
    }
    a.check(&format!("{name} A"), g.batch, g.m, g.k)?;
    b.check(&format!("{name} B"), g.batch, g.k, g.n)?;
    let lc = Layout::strided(
        &[g.batch, g.m, g.n],
        &[c_batch_stride as isize, ldc as isize, 1],
        c_offset,
    )?;
    lc.check_within(c.len(), &format!("{name} C"))?;
    if let Some(bias) = bias {
        super::expect_len(&name, "bias", bias.len(), g.n)?;
    }
    if g.batch == 0 || g.m == 0 || g.n == 0 {
        return Ok(GemmPath::Simt);
    }
    let dev = c.device().clone();
    let half = T::NAME == "f16" || T::NAME == "bf16";
    let c_ptr = c.ptr_at(c_offset);
    let bias_ptr = bias.map_or(0, Buffer::ptr);
    let (m, n, k) = (g.m as i32, g.n as i32, g.k as i32);
    let (ldc, c_bs) = (ldc as i64, c_batch_stride as i64);
    let grid = |bm: usize, bn: usize| {
        (
            g.n.div_ceil(bn) as u32,
            g.m.div_ceil(bm) as u32,
            g.batch as u32,
        )
    };
    if half && !force_simt && g.k > 0 {
        if let (Some((ak, lda)), Some((bk, ldb))) = (a.mma_form(true), b.mma_form(false)) {
            let kname = format!(
                "gemm_mma_{}{}_{}",
                if ak { 'k' } else { 'm' },
                if bk { 'k' } else { 'm' },
                T::NAME
            );
            let f = dev.function("matmul_mma.cu", &kname)?;
            f.set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                MMA_SMEM_BYTES as i32,
            )
            .map_err(crate::error::driver(format!("raising {kname}'s shared memory")))?;
            let (ap, bp) = (a.buf.ptr_at(a.offset), b.buf.ptr_at(b.offset));
            let (lda, ldb) = (lda as i64, ldb as i64);
            let (a_bs, b_bs) = (a.batch_stride as i64, b.batch_stride as i64);
            let (alpha, beta) = (g.alpha as f32, g.beta as f32);
            let cfg = LaunchConfig {
                grid_dim: grid(128, 128),
                block_dim: (256, 1, 1),
                shared_mem_bytes: MMA_SMEM_BYTES,
            };
            let mut l = dev.launcher(&f);
            l.arg(&m)
                .arg(&n)
                .arg(&k)
                .arg(&ap)
                .arg(&lda)
                .arg(&a_bs)
                .arg(&bp)
                .arg(&ldb)
                .arg(&b_bs);
            l.arg(&c_ptr)
                .arg(&ldc)
                .arg(&c_bs)
                .arg(&alpha)
                .arg(&beta)
                .arg(&bias_ptr);
            // SAFETY: arguments match `gemm_mma_XY_T(int, int, int, const T*, i64, i64, const T*,
            // i64, i64, T*, i64, i64, float, float, const T*)`; every operand's extent lies in its
            // buffer (checked above); alignment and strides meet the kernel's requirements
            // (`mma_form`); 61 440 bytes of dynamic shared memory were allowed just above.
            launched(unsafe { l.launch(cfg) }, &kname)?;
            return Ok(GemmPath::TensorCore(ak, bk));
        }
    }
    let kname = format!("gemm_simt_{}", T::NAME);
    let f = dev.function("matmul_simt.cu", &kname)?;
    let (ap, bp) = (a.buf.ptr_at(a.offset), b.buf.ptr_at(b.offset));
    let (a_rs, a_cs, a_bs) = (
        a.row_stride as i64,
        a.col_stride as i64,
        a.batch_stride as i64,
    );
    let (b_rs, b_cs, b_bs) = (
        b.row_stride as i64,
        b.col_stride as i64,
        b.batch_stride as i64,
    );
    let cfg = LaunchConfig {
        grid_dim: grid(64, 64),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = dev.launcher(&f);
    l.arg(&m).arg(&n).arg(&k);
    l.arg(&ap).arg(&a_rs).arg(&a_cs).arg(&a_bs);
    l.arg(&bp).arg(&b_rs).arg(&b_cs).arg(&b_bs);
    l.arg(&c_ptr)
        .arg(&ldc)
        .arg(&c_bs)
        .arg(&g.alpha)
        .arg(&g.beta)
        .arg(&bias_ptr);
    // SAFETY: arguments match `gemm_simt_T(int, int, int, const T*, i64, i64, i64, const T*, i64,
    // i64, i64, T*, i64, i64, double, double, const T*)`; every operand's extent lies in its buffer.
    launched(unsafe { l.launch(cfg) }, &kname)?;
    Ok(GemmPath::Simt)
}
