//! Batched matrix multiplication with broadcast batch dims, reading transposed views in place.

use crate::error::{Error, Result};
use crate::op::Op;
use crate::storage::{float_dispatch, Compute, CpuStorage};
use crate::{broadcast_shape, Layout, Shape, Tensor};
use half::bf16;
use ptm_cpu::matmul::{matmul_batched, matmul_bf16, MatRef};
use ptm_cpu::strided::for_each_offset2;
use ptm_cpu::Float;

/// `a @ b` for every batch entry; `la`/`lb` are already broadcast to the common batch dims.
fn batched<T: Float>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<T> {
    let nb = la.dims().len() - 2;
    let batch = &la.dims()[..nb];
    let (sa, sb) = (la.strides(), lb.strides());
    let mut offsets = vec![];
    for_each_offset2(
        batch,
        &sa[..nb],
        la.offset(),
        &sb[..nb],
        lb.offset(),
        |oa, ob| offsets.push((oa, ob)),
    );
    let ma: Vec<MatRef<T>> = offsets
        .iter()
        .map(|&(oa, _)| MatRef {
            data: a,
            offset: oa,
            row_stride: sa[nb],
            col_stride: sa[nb + 1],
        })
        .collect();
    let mb: Vec<MatRef<T>> = offsets
        .iter()
        .map(|&(_, ob)| MatRef {
            data: b,
            offset: ob,
            row_stride: sb[nb],
            col_stride: sb[nb + 1],
        })
        .collect();
    let mut out = vec![T::ZERO; offsets.len() * m * n];
    // beta = 0 stores each tile without reading it first: fresh (calloc'd) pages are then
    // written before being read, which spares a copy-on-write fault and a TLB shootdown per
    // page that read-then-write costs on large outputs.
    matmul_batched(m, n, k, &ma, &mb, &mut out, T::ZERO);
    out
}

/// [`batched`] for bf16 operands: bf16 × bf16 products summed in f32 (`matmul_bf16`, the
/// AVX-512 BF16 kernel where the CPU has it), rounded to bf16 once at the end.
fn batched_bf16(
    a: &[bf16],
    la: &Layout,
    b: &[bf16],
    lb: &Layout,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<bf16> {
    let nb = la.dims().len() - 2;
    let (sa, sb) = (la.strides(), lb.strides());
    let mut offsets = vec![];
    for_each_offset2(
        &la.dims()[..nb],
        &sa[..nb],
        la.offset(),
        &sb[..nb],
        lb.offset(),
        |oa, ob| offsets.push((oa, ob)),
    );
    let mut out = vec![0.0f32; offsets.len() * m * n];
    if m * n > 0 {
        for (c, &(oa, ob)) in out.chunks_mut(m * n).zip(&offsets) {
            let ma = MatRef {
                data: a,
                offset: oa,
                row_stride: sa[nb],
                col_stride: sa[nb + 1],
            };
            let mb = MatRef {
                data: b,
                offset: ob,
                row_stride: sb[nb],
                col_stride: sb[nb + 1],
            };
            matmul_bf16(m, n, k, ma, mb, c, 0.0);
        }
    }
    out.into_iter().map(bf16::from_f32).collect()
}

impl Tensor {
    /// Matrix product over the last two dims, broadcasting the batch dims, as `torch.matmul`.
    /// A rank-1 operand is treated as a row (left) or a column (right) vector. Transposed views
    /// are read in place.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.check_same_dtype(rhs, "matmul")?;
        self.check_float("matmul")?;
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
                note: "scalar operand".into(),
            });
        }
        if self.rank() == 1 {
            return self.unsqueeze(0)?.matmul(rhs)?.squeeze(-2);
        }
        if rhs.rank() == 1 {
            return self.matmul(&rhs.unsqueeze(1)?)?.squeeze(-1);
        }
        let (ra, rb) = (self.rank(), rhs.rank());
        let (m, k) = (self.dims()[ra - 2], self.dims()[ra - 1]);
        let (k2, n) = (rhs.dims()[rb - 2], rhs.dims()[rb - 1]);
        if k != k2 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
                note: format!("inner dims {k} and {k2} differ"),
            });
        }
        let batch = broadcast_shape(
            "matmul",
            &self.dims()[..ra - 2].into(),
            &rhs.dims()[..rb - 2].into(),
        )?;
        let with = |x: usize, y: usize| -> Shape {
            batch
                .dims()
                .iter()
                .copied()
                .chain([x, y])
                .collect::<Vec<_>>()
                .into()
        };
        let la = self.layout().broadcast_to("matmul", &with(m, k))?;
        let lb = rhs.layout().broadcast_to("matmul", &with(k, n))?;
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() || rhs.device().is_cuda() {
            return crate::cuda::matmul(self, &la, rhs, &lb, m, n, k, with(m, n));
        }
        let dtype = self.dtype();
        let storage = match (self.cpu("matmul")?, rhs.cpu("matmul")?) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                CpuStorage::F32(batched(a, &la, b, &lb, m, n, k))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                CpuStorage::F64(batched(a, &la, b, &lb, m, n, k))
            }
            (CpuStorage::BF16(a), CpuStorage::BF16(b)) => {
                CpuStorage::BF16(batched_bf16(a, &la, b, &lb, m, n, k))
            }
            _ => float_dispatch!(dtype, "matmul", T => {
                // f16: widen both operands (contiguous), multiply in f32, narrow back.
                let (a, b) = (T::read(self.cpu("matmul")?, &la), T::read(rhs.cpu("matmul")?, &lb));
                let (ca, cb) = (Layout::contiguous(la.shape().clone()), Layout::contiguous(lb.shape().clone()));
                T::write(batched(&a, &ca, &b, &cb, m, n, k), dtype)
            }),
        };
        Ok(Tensor::from_storage(
            storage,
            with(m, n),
            Some(Op::Matmul(self.clone(), rhs.clone())),
        ))
    }
}
