//! Elementwise ops of two tensors with numpy broadcasting, comparisons to masks, and `where`.

use super::dispatch_dtype;
use crate::dtype::WithDType;
use crate::error::{Error, Result};
use crate::op::{BinaryOp, Op};
use crate::storage::{Compute, CpuStorage, IntoStorage};
use crate::{broadcast_shape, Layout, Tensor};
use ptm_cpu::strided::Runs2;
use ptm_cpu::Element;

/// Comparison ops; the result is a `u32` mask of 0/1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `f(a[i], b[i])` over two views broadcast to the same shape, into a contiguous vector.
fn zip_map<T: Copy, U>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    mut f: impl FnMut(T, T) -> U,
) -> Vec<U> {
    let n = la.shape().elem_count();
    if la.is_contiguous() && lb.is_contiguous() {
        let (a, b) = (
            &a[la.offset()..la.offset() + n],
            &b[lb.offset()..lb.offset() + n],
        );
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    // A run at a time: slices the compiler vectorises where a run is contiguous in both views
    // (or broadcasts one value), the strided walk otherwise.
    let runs = Runs2::new(la.dims(), la.strides(), lb.strides());
    let (len, sa, sb) = (runs.len, runs.stride_a, runs.stride_b);
    let mut out = Vec::with_capacity(n);
    runs.for_each(la.offset(), lb.offset(), |oa, ob| match (sa, sb) {
        (1, 1) => out.extend(
            a[oa..oa + len]
                .iter()
                .zip(&b[ob..ob + len])
                .map(|(&x, &y)| f(x, y)),
        ),
        (1, 0) => {
            let y = b[ob];
            out.extend(a[oa..oa + len].iter().map(|&x| f(x, y)));
        }
        (0, 1) => {
            let x = a[oa];
            out.extend(b[ob..ob + len].iter().map(|&y| f(x, y)));
        }
        _ => out.extend((0..len).map(|i| f(a[oa + i * sa], b[ob + i * sb]))),
    });
    out
}

fn binary_typed<T: Element + WithDType>(
    op: BinaryOp,
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
) -> Vec<T> {
    match op {
        BinaryOp::Add => zip_map(a, la, b, lb, T::add),
        BinaryOp::Sub => zip_map(a, la, b, lb, T::sub),
        BinaryOp::Mul => zip_map(a, la, b, lb, T::mul),
        // Integer division by zero was ruled out by the caller.
        BinaryOp::Div => zip_map(a, la, b, lb, |x, y| x.div(y).unwrap_or_default()),
        BinaryOp::Maximum => zip_map(a, la, b, lb, T::max_of),
        BinaryOp::Minimum => zip_map(a, la, b, lb, T::min_of),
    }
}

fn cmp_typed<T: Copy + PartialOrd>(
    op: CmpOp,
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
) -> Vec<u32> {
    let f = move |x: T, y: T| -> u32 {
        let r = match op {
            CmpOp::Eq => x == y,
            CmpOp::Ne => x != y,
            CmpOp::Lt => x < y,
            CmpOp::Le => x <= y,
            CmpOp::Gt => x > y,
            CmpOp::Ge => x >= y,
        };
        r as u32
    };
    zip_map(a, la, b, lb, f)
}

fn op_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Maximum => "maximum",
        BinaryOp::Minimum => "minimum",
    }
}

/// Both operands' layouts broadcast to their common shape.
fn broadcast_pair(op: &'static str, a: &Tensor, b: &Tensor) -> Result<(Layout, Layout)> {
    a.check_same_dtype(b, op)?;
    let shape = broadcast_shape(op, a.shape(), b.shape())?;
    Ok((
        a.layout().broadcast_to(op, &shape)?,
        b.layout().broadcast_to(op, &shape)?,
    ))
}

/// The view `l` of half-precision storage widened to f32 (contiguous, so no larger than the
/// output); `None` for the other dtypes, which the kernels read in place.
fn widen(s: &CpuStorage, l: &Layout) -> Option<Vec<f32>> {
    matches!(s, CpuStorage::F16(_) | CpuStorage::BF16(_))
        .then(|| <f32 as Compute>::read_owned(s, l))
}

impl Tensor {
    fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let name = op_name(op);
        let (la, lb) = broadcast_pair(name, self, rhs)?;
        let dtype = self.dtype();
        if op == BinaryOp::Div && !dtype.is_float() && rhs.to_f64_vec()?.contains(&0.0) {
            return Err(crate::error::invalid(
                "div",
                format!(
                    "integer division by zero ({dtype:?} divisor of shape {})",
                    rhs.shape()
                ),
            ));
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() || rhs.device().is_cuda() {
            self.check_same_dtype(rhs, name)?;
            return crate::cuda::binary(self, &la, rhs, &lb, op, name);
        }
        let storage = match (
            widen(self.cpu(op_name(op))?, &la),
            widen(rhs.cpu(op_name(op))?, &lb),
        ) {
            (Some(a), Some(b)) => {
                let contiguous = Layout::contiguous(la.shape().clone());
                <f32 as Compute>::write(binary_typed(op, &a, &contiguous, &b, &contiguous), dtype)
            }
            _ => match (self.cpu(op_name(op))?, rhs.cpu(op_name(op))?) {
                (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                    binary_typed(op, a, &la, b, &lb).into_storage()
                }
                (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                    binary_typed(op, a, &la, b, &lb).into_storage()
                }
                (CpuStorage::U32(a), CpuStorage::U32(b)) => {
                    binary_typed(op, a, &la, b, &lb).into_storage()
                }
                (CpuStorage::I64(a), CpuStorage::I64(b)) => {
                    binary_typed(op, a, &la, b, &lb).into_storage()
                }
                _ => {
                    return Err(Error::DTypeMismatch {
                        op: name,
                        lhs: dtype,
                        rhs: rhs.dtype(),
                    })
                }
            },
        };
        Ok(Tensor::from_storage(
            storage,
            la.shape().clone(),
            Some(Op::Binary(self.clone(), rhs.clone(), op)),
        ))
    }

    /// `a + b`, broadcasting.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Add)
    }
    /// `a - b`, broadcasting.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Sub)
    }
    /// `a * b`, broadcasting.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Mul)
    }
    /// `a / b`, broadcasting. Integer division by zero is an error.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Div)
    }
    /// Elementwise maximum, broadcasting.
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Maximum)
    }
    /// Elementwise minimum, broadcasting.
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Minimum)
    }
    /// Clamps every element into `[lo, hi]`.
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        let lo = Tensor::scalar(lo, self.dtype(), &self.device())?;
        let hi = Tensor::scalar(hi, self.dtype(), &self.device())?;
        self.maximum(&lo)?.minimum(&hi)
    }

    fn cmp(&self, rhs: &Tensor, op: CmpOp) -> Result<Tensor> {
        let (la, lb) = broadcast_pair("compare", self, rhs)?;
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() || rhs.device().is_cuda() {
            let code = match op {
                CmpOp::Eq => 0,
                CmpOp::Ne => 1,
                CmpOp::Lt => 2,
                CmpOp::Le => 3,
                CmpOp::Gt => 4,
                CmpOp::Ge => 5,
            };
            return crate::cuda::compare(self, &la, rhs, &lb, code);
        }
        let (a, b) = (self.cpu("compare")?, rhs.cpu("compare")?);
        let mask = dispatch_dtype!(self.dtype(), T => {
            let (a, b) = (T::slice(a).unwrap_or(&[]), T::slice(b).unwrap_or(&[]));
            cmp_typed(op, a, &la, b, &lb)
        });
        Ok(Tensor::from_storage(
            mask.into_storage(),
            la.shape().clone(),
            None,
        ))
    }

    fn cmp_scalar(&self, value: f64, op: CmpOp) -> Result<Tensor> {
        self.cmp(&Tensor::scalar(value, self.dtype(), &self.device())?, op)
    }

    /// `a == b` as a u32 0/1 mask, broadcasting.
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.cmp(rhs, CmpOp::Eq)
    }
    /// `a != b` as a mask.
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.cmp(rhs, CmpOp::Ne)
    }
    /// `a < b` as a mask.
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.cmp(rhs, CmpOp::Lt)
    }
    /// `a <= b` as a mask.
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.cmp(rhs, CmpOp::Le)
    }
    /// `a > b` as a mask.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.cmp(rhs, CmpOp::Gt)
    }
    /// `a >= b` as a mask.
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.cmp(rhs, CmpOp::Ge)
    }
    /// `a == c` as a mask.
    pub fn eq_scalar(&self, c: f64) -> Result<Tensor> {
        self.cmp_scalar(c, CmpOp::Eq)
    }
    /// `a != c` as a mask.
    pub fn ne_scalar(&self, c: f64) -> Result<Tensor> {
        self.cmp_scalar(c, CmpOp::Ne)
    }
    /// `a < c` as a mask.
    pub fn lt_scalar(&self, c: f64) -> Result<Tensor> {
        self.cmp_scalar(c, CmpOp::Lt)
    }
    /// `a > c` as a mask.
    pub fn gt_scalar(&self, c: f64) -> Result<Tensor> {
        self.cmp_scalar(c, CmpOp::Gt)
    }
    /// `a >= c` as a mask.
    pub fn ge_scalar(&self, c: f64) -> Result<Tensor> {
        self.cmp_scalar(c, CmpOp::Ge)
    }

    /// With `self` as a mask (u32 or i64; nonzero is true): `on_true` where set, `on_false`
    /// elsewhere; all three broadcast together. Gradients flow to both branches, not the mask.
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        if self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: "where_cond",
                dtype: self.dtype(),
                note: "the mask must be u32 or i64".into(),
            });
        }
        on_true.check_same_dtype(on_false, "where_cond")?;
        let shape = broadcast_shape(
            "where_cond",
            &broadcast_shape("where_cond", self.shape(), on_true.shape())?,
            on_false.shape(),
        )?;
        let (lt, lf) = (
            on_true.layout().broadcast_to("where_cond", &shape)?,
            on_false.layout().broadcast_to("where_cond", &shape)?,
        );
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() || on_true.device().is_cuda() || on_false.device().is_cuda() {
            let lm = self.layout().broadcast_to("where_cond", &shape)?;
            let op = Op::WhereCond(self.clone(), on_true.clone(), on_false.clone());
            return crate::cuda::where_mask(self, &lm, on_true, &lt, on_false, &lf, shape, op);
        }
        let mask = self.broadcast_as(&shape)?.to_f64_vec()?;
        let storage = dispatch_dtype!(on_true.dtype(), T => {
            let (a, b) = (T::slice(on_true.cpu("where_cond")?).unwrap_or(&[]), T::slice(on_false.cpu("where_cond")?).unwrap_or(&[]));
            let mut i = 0;
            zip_map(a, &lt, b, &lf, |x, y| {
                let pick = if mask[i] != 0.0 { x } else { y };
                i += 1;
                pick
            })
            .into_storage()
        });
        Ok(Tensor::from_storage(
            storage,
            shape,
            Some(Op::WhereCond(
                self.clone(),
                on_true.clone(),
                on_false.clone(),
            )),
        ))
    }

    /// `value` where `mask` is set, this tensor elsewhere (mask broadcasts).
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        mask.where_cond(&Tensor::scalar(value, self.dtype(), &self.device())?, self)
    }
}
