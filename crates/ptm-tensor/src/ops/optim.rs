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
            if t.dtype() != DType::F32 {
                return Err(Error::UnsupportedDType {
                    op: "adamw_update",
                    dtype: t.dtype(),
                    note: format!("the {what} must be f32"),
                });
            }
            if t.dims() != self.dims() {
                return Err(Error::ShapeMismatch {
                    op: "adamw_update",
                    lhs: self.shape().clone(),
                    rhs: t.shape().clone(),
                    note: format!("the {what} must have the parameter's shape"),
                });
            }
            if t.device() != self.device() {
                return Err(Error::DeviceMismatch {
                    op: "adamw_update",
                    lhs: self.device().to_string(),
                    rhs: t.device().to_string(),
                });
            }
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
