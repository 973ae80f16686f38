//! 2-D convolution as unfold (im2col) + matmul, enough for ViT's patch embedding and small CNNs.

use crate::error::{Error, Result};
use crate::op::Op;
use crate::storage::{float_dispatch, Compute};
use crate::{DType, Tensor};
use ptm_cpu::conv::{col2im, im2col, Conv2dGeometry};
use ptm_cpu::Element;

impl Tensor {
    /// Unfolds `[n, c, h, w]` into patches `[n, c·kh·kw, oh·ow]` (PyTorch's `F.unfold`).
    pub fn unfold(&self, kernel: (usize, usize), stride: usize, padding: usize) -> Result<Tensor> {
        let (n, c, h, w) = self.shape().dims4("unfold")?;
        let g = Conv2dGeometry {
            n,
            c,
            h,
            w,
            kh: kernel.0,
            kw: kernel.1,
            stride,
            padding,
        };
        let (oh, ow) = match (g.out_h(), g.out_w()) {
            (Some(oh), Some(ow)) => (oh, ow),
            _ => {
                return Err(crate::error::invalid(
                    "unfold",
                    format!("kernel {kernel:?} with stride {stride} and padding {padding} does not fit input {}", self.shape()),
                ))
            }
        };
        let dtype = self.dtype();
        let rows = c * g.kh * g.kw;
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::unfold(self, &g, vec![n, rows, oh * ow].into());
        }
        let storage = float_dispatch!(dtype, "unfold", T => {
            let x = T::read(self.cpu("unfold")?, self.layout());
            let mut cols = vec![T::ZERO; n * rows * oh * ow];
            im2col(&x, &g, &mut cols);
            T::write(cols, dtype)
        });
        Ok(Tensor::from_storage(
            storage,
            vec![n, rows, oh * ow].into(),
            Some(Op::Unfold(self.clone(), g)),
        ))
    }

    /// 2-D convolution: input `[n, c, h, w]`, weight `[out, c, kh, kw]`, optional bias `[out]`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        let (n, c, _, _) = self.shape().dims4("conv2d (input)")?;
        let (o, wc, kh, kw) = weight.shape().dims4("conv2d (weight)")?;
        self.check_same_dtype(weight, "conv2d")?;
        if wc != c {
            return Err(Error::ShapeMismatch {
                op: "conv2d",
                lhs: self.shape().clone(),
                rhs: weight.shape().clone(),
                note: format!("input has {c} channels, weight expects {wc}"),
            });
        }
        let cols = self.unfold((kh, kw), stride, padding)?;
        let g = Conv2dGeometry {
            n,
            c,
            h: self.dims()[2],
            w: self.dims()[3],
            kh,
            kw,
            stride,
            padding,
        };
        let (oh, ow) = (g.out_h().unwrap_or(0), g.out_w().unwrap_or(0));
        let y = weight
            .reshape([o, c * kh * kw])?
            .matmul(&cols)?
            .reshape([n, o, oh, ow])?;
        match bias {
            Some(b) => {
                if b.dims() != [o] {
                    return Err(Error::ShapeMismatch {
                        op: "conv2d",
                        lhs: weight.shape().clone(),
                        rhs: b.shape().clone(),
                        note: format!("bias must be [{o}]"),
                    });
                }
                y.add(&b.reshape([1, o, 1, 1])?)
            }
            None => Ok(y),
        }
    }
}

/// Gradient of [`Tensor::unfold`]: folds the patch gradients back (col2im).
pub(crate) fn unfold_backward(g: &Tensor, geom: &Conv2dGeometry, dtype: DType) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if g.device().is_cuda() {
        return crate::cuda::unfold_backward(g, geom);
    }
    let storage = float_dispatch!(dtype, "unfold", T => {
        let cols = T::read(g.cpu("unfold_backward")?, g.layout());
        let mut dx = vec![T::ZERO; geom.n * geom.c * geom.h * geom.w];
        col2im(&cols, geom, &mut dx);
        T::write(dx, dtype)
    });
    Ok(Tensor::from_storage(
        storage,
        vec![geom.n, geom.c, geom.h, geom.w].into(),
        None,
    ))
}
