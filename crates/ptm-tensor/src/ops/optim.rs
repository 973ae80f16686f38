//! Fused optimizer updates on tensors of any device (the step itself, not the optimizer's
//! bookkeeping, which lives in ptm-nn).

use crate::error::{Error, Result};
use crate::{DType, Tensor};

impl Tensor {
    /// One AdamW step (PyTorch's decoupled weight decay) of this f32 parameter with gradient
    /// `grad` and moments `m`, `v` (f32, same shape and device): returns the updated
    /// (parameter, m, v) as new tensors, leaving the inputs as they were. `step` counts from 1.
    /// On a GPU it is one fused kernel over the four buffers; on the CPU, ptm-cpu's `adamw_step`.
    /// Not recorded for autograd.
    pub fn adamw_update(
        &self,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        h: &ptm_cpu::optim::AdamW,
        step: u64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        for (t, what) in [(self, "parameter"), (grad, "gradient"), (m, "m"), (v, "v")] {
            check_operand(self, t, what, "adamw_update")?;
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::adamw_update(self, grad, m, v, h, step);
        }
        let (mut p, g) = (self.to_vec::<f32>()?, grad.values::<f32>()?);
        let (mut mv, mut vv) = (m.to_vec::<f32>()?, v.to_vec::<f32>()?);
        ptm_cpu::optim::adamw_step(&mut p, &g, &mut mv, &mut vv, h, step);
        let dev = self.device();
        Ok((
            Tensor::from_vec(p, self.shape(), &dev)?,
            Tensor::from_vec(mv, self.shape(), &dev)?,
            Tensor::from_vec(vv, self.shape(), &dev)?,
        ))
    }
}

impl Tensor {
    /// One SGD step (PyTorch's `SGD`: L2 weight decay added to the gradient, then momentum) of
    /// this f32 parameter with gradient `grad` and, when `h.momentum` is nonzero, the momentum
    /// buffer `buf` (f32, the parameter's shape and device; `first` says it is still empty, so it
    /// becomes the first gradient). Returns the updated parameter and buffer as new tensors,
    /// leaving the inputs as they were. On a GPU one fused kernel; on the CPU, ptm-cpu's
    /// `sgd_step`. Not recorded for autograd.
    pub fn sgd_update(
        &self,
        grad: &Tensor,
        buf: Option<&Tensor>,
        h: &ptm_cpu::optim::Sgd,
        first: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mut operands = vec![(self, "parameter"), (grad, "gradient")];
        match (buf, h.momentum != 0.0) {
            (Some(b), true) => operands.push((b, "momentum buffer")),
            (None, false) => {}
            (Some(_), false) | (None, true) => {
                return Err(Error::InvalidArgument {
                    op: "sgd_update",
                    msg: format!(
                        "momentum {} needs a momentum buffer exactly when it is nonzero",
                        h.momentum
                    ),
                })
            }
        }
        for (t, what) in operands {
            check_operand(self, t, what, "sgd_update")?;
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::sgd_update(self, grad, buf, h, first);
        }
        let (mut p, g) = (self.to_vec::<f32>()?, grad.values::<f32>()?);
        let mut b = match buf {
            Some(b) => b.to_vec::<f32>()?,
            None => vec![0.0; p.len()],
        };
        ptm_cpu::optim::sgd_step(&mut p, &g, &mut b, h, first);
        let dev = self.device();
        let b = buf
            .map(|_| Tensor::from_vec(b, self.shape(), &dev))
            .transpose()?;
        Ok((Tensor::from_vec(p, self.shape(), &dev)?, b))
    }
}

/// An error unless `t` is f32 with the parameter's shape and device.
fn check_operand(p: &Tensor, t: &Tensor, what: &str, op: &'static str) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::UnsupportedDType {
            op,
            dtype: t.dtype(),
            note: format!("the {what} must be f32"),
        });
    }
    if t.dims() != p.dims() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: p.shape().clone(),
            rhs: t.shape().clone(),
            note: format!("the {what} must have the parameter's shape"),
        });
    }
    if t.device() != p.device() {
        return Err(Error::DeviceMismatch {
            op,
            lhs: p.device().to_string(),
            rhs: t.device().to_string(),
        });
    }
    Ok(())
}
