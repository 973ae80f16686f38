//! Joining, splitting and indexing: cat, stack, chunk, split, index_select, gather, embedding.

use super::dispatch_dtype;
use crate::dtype::WithDType;
use crate::error::{Error, Result};
use crate::op::Op;
use crate::storage::{CpuStorage, IntoStorage};
use crate::{DType, Dim, Tensor};
use ptm_cpu::Element;

/// Reads an index tensor (u32 or i64) and checks every value lies in `0..size`.
fn read_indices(ids: &Tensor, size: usize, op: &'static str, what: &str) -> Result<Vec<usize>> {
    if !matches!(ids.dtype(), DType::U32 | DType::I64) {
        return Err(Error::UnsupportedDType {
            op,
            dtype: ids.dtype(),
            note: format!("{what} must be u32 or i64"),
        });
    }
    // Checked on the host whatever the device: a bad index must never reach a kernel.
    let v = ids
        .to_device(&crate::Device::Cpu)?
        .to_dtype(DType::I64)?
        .to_vec::<i64>()?;
    v.into_iter()
        .map(|i| {
            if i < 0 || i as usize >= size {
                Err(Error::IndexOutOfRange {
                    op,
                    index: i,
                    size,
                    note: what.to_string(),
                })
            } else {
                Ok(i as usize)
            }
        })
        .collect()
}

/// Sizes of (dims before `dim`, `dim`, dims after `dim`).
fn split_at(dims: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        dims[..dim].iter().product(),
        dims[dim],
        dims[dim + 1..].iter().product(),
    )
}

fn cat_typed<T: WithDType>(
    parts: &[std::borrow::Cow<'_, CpuStorage>],
    sizes: &[usize],
    outer: usize,
    inner: usize,
) -> Vec<T> {
    let total: usize = sizes.iter().sum();
    let mut out = Vec::with_capacity(outer * total * inner);
    let slices: Vec<&[T]> = parts.iter().map(|p| T::slice(p).unwrap_or(&[])).collect();
    for o in 0..outer {
        for (s, &n) in slices.iter().zip(sizes) {
            out.extend_from_slice(&s[o * n * inner..(o + 1) * n * inner]);
        }
    }
    out
}

fn index_select_typed<T: WithDType>(
    src: &[T],
    ids: &[usize],
    outer: usize,
    size: usize,
    inner: usize,
) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * ids.len() * inner);
    for o in 0..outer {
        for &i in ids {
            out.extend_from_slice(&src[(o * size + i) * inner..][..inner]);
        }
    }
    out
}

/// For each element of a contiguous `index` tensor, the flat offset it reads in a contiguous
/// `src` of shape `src_dims`, replacing coordinate `dim` with the index value.
fn gather_offsets(
    index_dims: &[usize],
    ids: &[usize],
    src_dims: &[usize],
    dim: usize,
) -> Vec<usize> {
    let src_strides = ptm_cpu::strided::contiguous_strides(src_dims);
    let idx_strides = ptm_cpu::strided::contiguous_strides(index_dims);
    ids.iter()
        .enumerate()
        .map(|(flat, &i)| {
            let mut off = 0;
            for d in 0..index_dims.len() {
                let coord = if d == dim {
                    i
                } else {
                    flat / idx_strides[d] % index_dims[d]
                };
                off += coord * src_strides[d];
            }
            off
        })
        .collect()
}

impl Tensor {
    /// Joins tensors along `dim`; all other dims must match.
    pub fn cat(tensors: &[Tensor], dim: impl Dim) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| crate::error::invalid("cat", "no tensors given"))?;
        let d = dim.resolve(first.shape(), "cat")?;
        for t in &tensors[1..] {
            first.check_same_dtype(t, "cat")?;
            let same_rank = t.rank() == first.rank();
            if !same_rank
                || t.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .any(|(i, (a, b))| i != d && a != b)
            {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: first.shape().clone(),
                    rhs: t.shape().clone(),
                    note: format!("all dims but {d} must match"),
                });
            }
        }
        if tensors.len() == 1 {
            return Ok(first.clone());
        }
        #[cfg(feature = "cuda")]
        if tensors.iter().any(|t| t.device().is_cuda()) {
            return crate::cuda::cat(tensors, d);
        }
        let parts: Vec<_> = tensors
            .iter()
            .map(|t| t.storage_view("cat"))
            .collect::<Result<_>>()?;
        let sizes: Vec<usize> = tensors.iter().map(|t| t.dims()[d]).collect();
        let (outer, _, inner) = split_at(first.dims(), d);
        let storage = dispatch_dtype!(first.dtype(), T => cat_typed::<T>(&parts, &sizes, outer, inner).into_storage());
        let mut dims = first.dims().to_vec();
        dims[d] = sizes.iter().sum();
        Ok(Tensor::from_storage(
            storage,
            dims.into(),
            Some(Op::Cat(tensors.to_vec(), d)),
        ))
    }

    /// Stacks same-shaped tensors along a new dim `dim`.
    pub fn stack(tensors: &[Tensor], dim: impl Dim) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| crate::error::invalid("stack", "no tensors given"))?;
        let mut extended = first.dims().to_vec();
        extended.push(1);
        let d = dim.resolve(&extended.into(), "stack")?;
        let parts = tensors
            .iter()
            .map(|t| t.unsqueeze(d))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, d)
    }

    /// Splits `dim` into pieces of the given sizes (views); the sizes must add up to the dim.
    pub fn split(&self, sizes: &[usize], dim: impl Dim) -> Result<Vec<Tensor>> {
        let d = dim.resolve(self.shape(), "split")?;
        if sizes.iter().sum::<usize>() != self.dims()[d] {
            return Err(Error::BadShape {
                op: "split",
                shape: self.shape().clone(),
                msg: format!("sizes {sizes:?} do not add up to dim {d}"),
            });
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                let piece = self.narrow(d, start, n);
                start += n;
                piece
            })
            .collect()
    }

    /// Splits `dim` into `chunks` pieces of equal size (the last may be smaller), as `torch.chunk`.
    pub fn chunk(&self, chunks: usize, dim: impl Dim) -> Result<Vec<Tensor>> {
        let d = dim.resolve(self.shape(), "chunk")?;
        if chunks == 0 {
            return Err(crate::error::invalid("chunk", "chunks must be positive"));
        }
        let size = self.dims()[d];
        let step = size.div_ceil(chunks).max(1);
        let sizes: Vec<usize> = (0..size)
            .step_by(step)
            .map(|s| step.min(size - s))
            .collect();
        self.split(&sizes, d)
    }

    /// The entries `ids` (rank-1, u32 or i64) along `dim`.
    pub fn index_select(&self, dim: impl Dim, ids: &Tensor) -> Result<Tensor> {
        let d = dim.resolve(self.shape(), "index_select")?;
        if ids.rank() != 1 {
            return Err(Error::BadShape {
                op: "index_select",
                shape: ids.shape().clone(),
                msg: "ids must be rank 1".into(),
            });
        }
        let (outer, size, inner) = split_at(self.dims(), d);
        let idx = read_indices(
            ids,
            size,
            "index_select",
            &format!("ids along dim {d} of {}", self.shape()),
        )?;
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
            return crate::cuda::index_select(self, d, &idx, ids);
        }
        let src = self.storage_view("index_select")?;
        let storage = dispatch_dtype!(self.dtype(), T => {
            index_select_typed::<T>(T::slice(&src).unwrap_or(&[]), &idx, outer, size, inner).into_storage()
        });
        let mut dims = self.dims().to_vec();
        dims[d] = idx.len();
        Ok(Tensor::from_storage(
            storage,
            dims.into(),
            Some(Op::IndexSelect(self.clone(), ids.clone(), d)),
        ))
    }

    /// Embedding lookup: rows of this `[vocab, dim]` table for every id of `ids` (any shape);
    /// the result has shape `ids.shape + [dim]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, width) = self.shape().dims2("embedding")?;
        let rows = self.index_select(0, &ids.flatten_all()?)?;
        let mut dims = ids.dims().to_vec();
        dims.push(width);
        rows.reshape(dims)
    }

    /// `out[..i..] = self[.. index[..i..] ..]` along `dim`, as `torch.gather`: `index` has this
    /// tensor's rank and no dim larger than this tensor's (except along `dim`).
    pub fn gather(&self, dim: impl Dim, index: &Tensor) -> Result<Tensor> {
        let d = dim.resolve(self.shape(), "gather")?;
        let fits = index.rank() == self.rank()
            && index
                .dims()
                .iter()
                .zip(self.dims())
                .enumerate()
                .all(|(i, (a, b))| i == d || a <= b);
        if !fits {
            return Err(Error::ShapeMismatch {
                op: "gather",
                lhs: self.shape().clone(),
                rhs: index.shape().clone(),
                note: format!("index must have the same rank and fit outside dim {d}"),
            });
        }
        let ids = read_indices(
            index,
            self.dims()[d],
            "gather",
            &format!("index along dim {d} of {}", self.shape()),
        )?;
        let offsets = gather_offsets(index.dims(), &ids, self.dims(), d);
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            let offsets: Vec<i64> = offsets.iter().map(|&o| o as i64).collect();
            let op = Op::Gather(self.clone(), index.clone(), d);
            return crate::cuda::gather(self, &offsets, index.shape().clone(), op);
        }
        let src = self.storage_view("gather")?;
        let storage = dispatch_dtype!(self.dtype(), T => {
            let s = T::slice(&src).unwrap_or(&[]);
            offsets.iter().map(|&o| s[o]).collect::<Vec<T>>().into_storage()
        });
        Ok(Tensor::from_storage(
            storage,
            index.shape().clone(),
            Some(Op::Gather(self.clone(), index.clone(), d)),
        ))
    }

    /// `self` with `src` added at the rows `ids` along `dim` (backward of index_select; the
    /// indices were validated by the forward).
    pub(crate) fn index_add(&self, dim: usize, ids: &Tensor, src: &Tensor) -> Result<Tensor> {
        let (outer, size, inner) = split_at(self.dims(), dim);
        let idx = read_indices(ids, size, "index_add", "ids")?;
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
            return crate::cuda::index_add(self, dim, &idx, src);
        }
        let src = src.storage_view("index_add")?;
        let mut out = self.contiguous_storage("index_add")?;
        add_at(&mut out, &src, |flat| {
            let (o, rest) = (flat / (idx.len() * inner), flat % (idx.len() * inner));
            (o * size + idx[rest / inner]) * inner + rest % inner
        });
        debug_assert_eq!(outer * idx.len() * inner, src.len());
        Ok(Tensor::from_storage(out, self.shape().clone(), None))
    }

    /// `self` with `src` added at the positions `index` names along `dim` (backward of gather).
    pub(crate) fn scatter_add(&self, dim: usize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        let ids = read_indices(index, self.dims()[dim], "scatter_add", "index")?;
        let offsets = gather_offsets(index.dims(), &ids, self.dims(), dim);
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            let offsets: Vec<i64> = offsets.iter().map(|&o| o as i64).collect();
            return crate::cuda::scatter_add(self, &offsets, src);
        }
        let src = src.storage_view("scatter_add")?;
        let mut out = self.contiguous_storage("scatter_add")?;
        add_at(&mut out, &src, |flat| offsets[flat]);
        Ok(Tensor::from_storage(out, self.shape().clone(), None))
    }
}

/// `out[target(i)] += src[i]` for every element of `src` (same dtype, float or integer).
fn add_at(out: &mut CpuStorage, src: &CpuStorage, target: impl Fn(usize) -> usize) {
    fn go<T: Element>(out: &mut [T], src: &[T], target: impl Fn(usize) -> usize) {
        for (i, &v) in src.iter().enumerate() {
            let t = target(i);
            out[t] = out[t].add(v);
        }
    }
    fn go_half<T: WithDType>(out: &mut [T], src: &[T], target: impl Fn(usize) -> usize) {
        for (i, &v) in src.iter().enumerate() {
            let t = target(i);
            out[t] = T::of_f64(out[t].as_f64() + v.as_f64());
        }
    }
    match (out, src) {
        (CpuStorage::F32(o), CpuStorage::F32(s)) => go(o, s, target),
        (CpuStorage::F64(o), CpuStorage::F64(s)) => go(o, s, target),
        (CpuStorage::U32(o), CpuStorage::U32(s)) => go(o, s, target),
        (CpuStorage::I64(o), CpuStorage::I64(s)) => go(o, s, target),
        (CpuStorage::F16(o), CpuStorage::F16(s)) => go_half(o, s, target),
        (CpuStorage::BF16(o), CpuStorage::BF16(s)) => go_half(o, s, target),
        _ => debug_assert!(false, "add_at: dtypes differ"),
    }
}
