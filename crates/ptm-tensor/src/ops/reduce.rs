//! Reductions over any set of dims: sum, mean, max, min, variance, argmax.

use crate::dtype::WithDType;
use crate::error::{Error, Result};
use crate::op::{Op, ReduceOp};
use crate::storage::{CpuStorage, IntoStorage};
use crate::{DType, Dim, Shape, Tensor};
use ptm_cpu::Element;

/// A set of dims: one dim, or a list (negative values count from the back).
pub trait Dims {
    /// Resolves and checks against a shape: in range and no repeats.
    fn resolve_all(&self, shape: &Shape, op: &'static str) -> Result<Vec<usize>>;
}

fn unique(mut dims: Vec<usize>, shape: &Shape, op: &'static str) -> Result<Vec<usize>> {
    let n = dims.len();
    dims.sort_unstable();
    dims.dedup();
    if dims.len() != n {
        return Err(Error::BadShape {
            op,
            shape: shape.clone(),
            msg: "a dim is listed twice".into(),
        });
    }
    Ok(dims)
}

macro_rules! dims_impl {
    ($($t:ty),*) => {$(
        impl Dims for $t {
            fn resolve_all(&self, shape: &Shape, op: &'static str) -> Result<Vec<usize>> {
                Ok(vec![self.resolve(shape, op)?])
            }
        }
        impl Dims for &[$t] {
            fn resolve_all(&self, shape: &Shape, op: &'static str) -> Result<Vec<usize>> {
                unique(self.iter().map(|d| d.resolve(shape, op)).collect::<Result<_>>()?, shape, op)
            }
        }
        impl<const N: usize> Dims for [$t; N] {
            fn resolve_all(&self, shape: &Shape, op: &'static str) -> Result<Vec<usize>> {
                self.as_slice().resolve_all(shape, op)
            }
        }
        impl Dims for Vec<$t> {
            fn resolve_all(&self, shape: &Shape, op: &'static str) -> Result<Vec<usize>> {
                self.as_slice().resolve_all(shape, op)
            }
        }
    )*};
}
dims_impl!(usize, i32, i64);

/// Views `t` with the reduced dims moved last, returning the contiguous rows to reduce and the
/// length of each row.
fn rows_to_reduce<T: WithDType>(t: &Tensor, dims: &[usize]) -> Result<(Vec<T>, usize)> {
    let kept = (0..t.rank()).filter(|d| !dims.contains(d));
    let perm: Vec<usize> = kept.chain(dims.iter().copied()).collect();
    let layout = t.layout().permuted(&perm);
    let row: usize = dims.iter().map(|&d| t.dims()[d]).product();
    Ok((t.cpu("reduce")?.gather_as::<T>(&layout), row))
}

fn reduce_rows<T: Element>(v: &[T], row: usize, op: ReduceOp) -> Vec<T> {
    if row == 0 {
        // Only sums reach here with empty rows (max/min of nothing are rejected).
        return vec![T::ZERO; v.len()];
    }
    v.chunks(row)
        .map(|r| match op {
            ReduceOp::Sum => r.iter().fold(T::ZERO, |s, &x| s.add(x)),
            ReduceOp::Max => r[1..].iter().fold(r[0], |m, &x| m.max_of(x)),
            ReduceOp::Min => r[1..].iter().fold(r[0], |m, &x| m.min_of(x)),
        })
        .collect()
}

/// Index of the first maximum of a non-empty row; the first NaN wins over every number.
fn first_max(r: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in r.iter().enumerate().skip(1) {
        let b = r[best];
        if !b.is_nan() && (x.is_nan() || x > b) {
            best = i;
        }
    }
    best
}

impl Tensor {
    /// Reduces `dims`, keeping them as size 1.
    fn reduce(&self, op: ReduceOp, dims: &[usize], name: &'static str) -> Result<Tensor> {
        let mut out_dims = self.dims().to_vec();
        for &d in dims {
            if out_dims[d] == 0 && op != ReduceOp::Sum {
                return Err(Error::BadShape {
                    op: name,
                    shape: self.shape().clone(),
                    msg: format!("dim {d} is empty"),
                });
            }
            out_dims[d] = 1;
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::reduce(self, op, dims, name);
        }
        let storage = match self.dtype() {
            DType::F32 | DType::F16 | DType::BF16 => {
                let (v, row) = rows_to_reduce::<f32>(self, dims)?;
                crate::storage::Compute::write(reduce_rows(&v, row, op), self.dtype())
            }
            DType::F64 => {
                let (v, row) = rows_to_reduce::<f64>(self, dims)?;
                reduce_rows(&v, row, op).into_storage()
            }
            DType::U32 => {
                let (v, row) = rows_to_reduce::<u32>(self, dims)?;
                reduce_rows(&v, row, op).into_storage()
            }
            DType::I64 => {
                let (v, row) = rows_to_reduce::<i64>(self, dims)?;
                reduce_rows(&v, row, op).into_storage()
            }
        };
        Ok(Tensor::from_storage(
            storage,
            out_dims.into(),
            Some(Op::Reduce(self.clone(), op, dims.to_vec())),
        ))
    }

    /// Removes the (size-1) `dims` of a keepdim result.
    fn drop_dims(&self, dims: &[usize]) -> Result<Tensor> {
        let shape: Vec<usize> = self
            .dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !dims.contains(i))
            .map(|(_, &d)| d)
            .collect();
        self.reshape(shape)
    }

    /// Sum over `dims`, keeping them as size 1.
    pub fn sum_keepdim(&self, dims: impl Dims) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "sum")?;
        self.reduce(ReduceOp::Sum, &dims, "sum")
    }
    /// Sum over `dims`, removing them.
    pub fn sum(&self, dims: impl Dims) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "sum")?;
        self.reduce(ReduceOp::Sum, &dims, "sum")?.drop_dims(&dims)
    }
    /// Sum of every element, as a scalar.
    pub fn sum_all(&self) -> Result<Tensor> {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.sum(all)
    }
    /// Mean over `dims`, keeping them as size 1.
    pub fn mean_keepdim(&self, dims: impl Dims) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "mean")?;
        self.check_float("mean")?;
        let n: usize = dims.iter().map(|&d| self.dims()[d]).product();
        self.reduce(ReduceOp::Sum, &dims, "mean")?
            .mul_scalar(1.0 / n as f64)
    }
    /// Mean over `dims`, removing them.
    pub fn mean(&self, dims: impl Dims) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "mean")?;
        self.mean_keepdim(dims.clone())?.drop_dims(&dims)
    }
    /// Mean of every element, as a scalar.
    pub fn mean_all(&self) -> Result<Tensor> {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.mean(all)
    }
    /// Maximum over `dims`, keeping them as size 1.
    pub fn max_keepdim(&self, dims: impl Dims) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "max")?;
        self.reduce(ReduceOp::Max, &dims, "max")
    }
    /// Maximum over `dims`, removing them.
    pub fn max(&self, dims: impl Dims) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "max")?;
        self.reduce(ReduceOp::Max, &dims, "max")?.drop_dims(&dims)
    }
    /// Minimum over `dims`, keeping them as size 1.
    pub fn min_keepdim(&self, dims: impl Dims) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "min")?;
        self.reduce(ReduceOp::Min, &dims, "min")
    }
    /// Minimum over `dims`, removing them.
    pub fn min(&self, dims: impl Dims) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "min")?;
        self.reduce(ReduceOp::Min, &dims, "min")?.drop_dims(&dims)
    }
    /// Variance over `dims` with `correction` (1 = unbiased, PyTorch's default; 0 = biased),
    /// keeping them as size 1.
    pub fn var_keepdim(&self, dims: impl Dims, correction: usize) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "var")?;
        let n: usize = dims.iter().map(|&d| self.dims()[d]).product();
        if n <= correction {
            return Err(Error::BadShape {
                op: "var",
                shape: self.shape().clone(),
                msg: format!("{n} elements per group with correction {correction}"),
            });
        }
        let centered = self.sub(&self.mean_keepdim(dims.clone())?)?;
        centered
            .mul(&centered)?
            .sum_keepdim(dims)?
            .mul_scalar(1.0 / (n - correction) as f64)
    }
    /// Variance over `dims`, removing them. See [`Tensor::var_keepdim`].
    pub fn var(&self, dims: impl Dims, correction: usize) -> Result<Tensor> {
        let dims = dims.resolve_all(self.shape(), "var")?;
        self.var_keepdim(dims.clone(), correction)?.drop_dims(&dims)
    }

    /// Index of the largest entry along `dim` (the first on ties; a NaN counts as the largest, as
    /// in PyTorch), as i64; not differentiable.
    pub fn argmax(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve(self.shape(), "argmax")?;
        if self.dims()[d] == 0 {
            return Err(Error::BadShape {
                op: "argmax",
                shape: self.shape().clone(),
                msg: format!("dim {d} is empty"),
            });
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::argmax(self, d);
        }
        let (v, row) = rows_to_reduce::<f64>(self, &[d])?;
        let idx: Vec<i64> = v.chunks(row).map(|r| first_max(r) as i64).collect();
        let mut dims = self.dims().to_vec();
        dims.remove(d);
        Ok(Tensor::from_storage(
            CpuStorage::I64(idx),
            dims.into(),
            None,
        ))
    }
}
