//! Views that share storage: reshape, transpose, permute, narrow, broadcast, squeeze/unsqueeze;
//! and `contiguous`, the one that copies when it must.

use crate::error::{Error, Result};
use crate::op::Op;
use crate::{Dim, Shape, Tensor};

impl Tensor {
    /// The same elements under a new shape (same element count). Shares storage when this view is
    /// contiguous; otherwise copies first, as PyTorch's `reshape`.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                lhs: self.shape().clone(),
                rhs: shape,
                note: "element counts differ".into(),
            });
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let src = self.contiguous()?;
        let layout = src.layout().reshaped(shape);
        Ok(src.view(layout, Op::Reshape(src.clone())))
    }

    /// Flattens to one dim.
    pub fn flatten_all(&self) -> Result<Tensor> {
        self.reshape([self.elem_count()])
    }

    /// Merges dims `start..=end` into one.
    pub fn flatten(&self, start: impl Dim, end: impl Dim) -> Result<Tensor> {
        let (s, e) = (
            start.resolve(self.shape(), "flatten")?,
            end.resolve(self.shape(), "flatten")?,
        );
        if s > e {
            return Err(crate::error::invalid(
                "flatten",
                format!("start dim {s} after end dim {e}"),
            ));
        }
        let d = self.dims();
        let mut dims = d[..s].to_vec();
        dims.push(d[s..=e].iter().product());
        dims.extend_from_slice(&d[e + 1..]);
        self.reshape(dims)
    }

    /// Swaps two dims (a view).
    pub fn transpose(&self, d0: impl Dim, d1: impl Dim) -> Result<Tensor> {
        let (a, b) = (
            d0.resolve(self.shape(), "transpose")?,
            d1.resolve(self.shape(), "transpose")?,
        );
        if a == b {
            return Ok(self.clone());
        }
        Ok(self.view(
            self.layout().transposed(a, b),
            Op::Transpose(self.clone(), a, b),
        ))
    }

    /// Transpose of the last two dims.
    pub fn t(&self) -> Result<Tensor> {
        self.transpose(-2, -1)
    }

    /// Reorders dims: new dim `i` is old dim `perm[i]` (a view).
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        let valid = perm.len() == self.rank()
            && perm
                .iter()
                .all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(Error::BadShape {
                op: "permute",
                shape: self.shape().clone(),
                msg: format!("{perm:?} is not a permutation of the dims"),
            });
        }
        Ok(self.view(
            self.layout().permuted(perm),
            Op::Permute(self.clone(), perm.to_vec()),
        ))
    }

    /// Entries `start..start+len` of dim `dim` (a view).
    pub fn narrow(&self, dim: impl Dim, start: usize, len: usize) -> Result<Tensor> {
        let d = dim.resolve(self.shape(), "narrow")?;
        let size = self.dims()[d];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::IndexOutOfRange {
                op: "narrow",
                index: (start + len.min(usize::MAX - start)) as i64,
                size,
                note: format!(
                    "start {start} + len {len} along dim {d} of {}",
                    self.shape()
                ),
            });
        }
        if start == 0 && len == size {
            return Ok(self.clone());
        }
        Ok(self.view(
            self.layout().narrowed(d, start, len),
            Op::Narrow(self.clone(), d, start),
        ))
    }

    /// Broadcasts to `shape` by numpy's rule (a view with zero strides).
    pub fn broadcast_as(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_to("broadcast_as", &shape)?;
        Ok(self.view(layout, Op::Broadcast(self.clone())))
    }

    /// Inserts a size-1 dim at `dim` (`-1` appends), a view.
    pub fn unsqueeze(&self, dim: impl Dim) -> Result<Tensor> {
        let mut extended = self.dims().to_vec();
        extended.push(1);
        let d = dim.resolve(&extended.into(), "unsqueeze")?;
        Ok(self.view(self.layout().unsqueezed(d), Op::Reshape(self.clone())))
    }

    /// Removes the size-1 dim `dim`, a view. A dim of another size is an error.
    pub fn squeeze(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve(self.shape(), "squeeze")?;
        if self.dims()[d] != 1 {
            return Err(Error::BadShape {
                op: "squeeze",
                shape: self.shape().clone(),
                msg: format!("dim {d} has size {}, not 1", self.dims()[d]),
            });
        }
        Ok(self.view(self.layout().squeezed(d), Op::Reshape(self.clone())))
    }

    /// A contiguous row-major tensor with the same values: this one if it already is, else a copy.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::contiguous(self);
        }
        Ok(Tensor::from_storage(
            self.contiguous_storage("contiguous")?,
            self.shape().clone(),
            Some(Op::Copy(self.clone())),
        ))
    }
}
