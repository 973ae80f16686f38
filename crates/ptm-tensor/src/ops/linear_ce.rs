//! Cross-entropy of a linear layer's output, fused: `mean CE(hidden·Wᵀ, targets)` computed over
//! blocks of rows, so the `[rows, vocab]` logits never exist whole.
//!
//! A language model's last layer maps every position to 50 257 logits; materialising them for
//! 1 024 positions is 200 MB written, read back by the loss, written again as its gradient and read
//! by two matmuls. Here each block of `ROWS` positions goes through logits → loss and
//! `dlogits` → `dhidden`, `dW` while it is in cache. The gradients are computed during the forward
//! (the loss is a scalar, so backward only scales them by the upstream gradient); under
//! [`crate::no_grad`] or without tracked inputs that part is skipped.

use crate::backprop::is_grad_enabled;
use crate::error::{Error, Result};
use crate::op::Op;
use crate::ops::nn::read_targets;
use crate::storage::{float_dispatch, Compute};
use crate::Tensor;
use ptm_cpu::cross_entropy::cross_entropy_fwd_bwd;
use ptm_cpu::matmul::{matmul, MatRef};
use ptm_cpu::Element;

/// Positions per block: a block's logits (ROWS × vocab f32, 12.9 MB for GPT-2) fit in L3.
const ROWS: usize = 256;

impl Tensor {
    /// `mean(cross_entropy(self · weightᵀ, targets))` for `self` `[N, C]`, `weight` `[V, C]` (an
    /// `nn.Linear` weight or a tied embedding), `targets` `[N]` (u32/i64; `ignore_index` rows are
    /// skipped), without materialising the `[N, V]` logits. Equal to
    /// `self.matmul(&weight.t()?)?.cross_entropy(targets, ignore_index)` up to rounding.
    pub fn linear_cross_entropy(
        &self,
        weight: &Tensor,
        targets: &Tensor,
        ignore_index: i64,
    ) -> Result<Tensor> {
        let mismatch = |note: &str| Error::ShapeMismatch {
            op: "linear_cross_entropy",
            lhs: self.shape().clone(),
            rhs: weight.shape().clone(),
            note: note.into(),
        };
        let (n, c) = self.shape().dims2("linear_cross_entropy (hidden)")?;
        let (v, cw) = weight.shape().dims2("linear_cross_entropy (weight)")?;
        if cw != c {
            return Err(mismatch("hidden [N, C] and weight [V, C] must share C"));
        }
        if targets.dims() != [n] {
            return Err(Error::ShapeMismatch {
                op: "linear_cross_entropy",
                lhs: self.shape().clone(),
                rhs: targets.shape().clone(),
                note: "targets must be [N] for hidden [N, C]".into(),
            });
        }
        if self.dtype() != weight.dtype() {
            return Err(Error::DTypeMismatch {
                op: "linear_cross_entropy",
                lhs: self.dtype(),
                rhs: weight.dtype(),
            });
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() || weight.device().is_cuda() {
            // On the GPU the logits fit in device memory: the composition, with its own graph.
            return self
                .matmul(&weight.t()?)?
                .cross_entropy(targets, ignore_index);
        }
        let t = read_targets(targets, v, ignore_index)?;
        let want_dh = is_grad_enabled() && self.tracks_grad();
        let want_dw = is_grad_enabled() && weight.tracks_grad();
        let dtype = self.dtype();
        let (loss, grads) = float_dispatch!(dtype, "linear_cross_entropy", T => {
            let h = T::read(self.cpu("linear_cross_entropy")?, self.layout());
            let w = T::read(weight.cpu("linear_cross_entropy")?, weight.layout());
            let (loss, dh, dw) = fused::<T>(&h, &w, &t, (n, c, v), ignore_index, (want_dh, want_dw));
            let dh = dh.map(|d| Tensor::from_storage(T::write(d, dtype), self.shape().clone(), None));
            let dw = dw.map(|d| Tensor::from_storage(T::write(d, dtype), weight.shape().clone(), None));
            let grads = (dh.is_some() || dw.is_some()).then_some((dh, dw));
            (T::write(vec![T::from_f64(loss)], dtype), grads)
        });
        let op = grads.map(|(grad_hidden, grad_weight)| Op::LinearCrossEntropy {
            hidden: self.clone(),
            weight: weight.clone(),
            grad_hidden,
            grad_weight,
        });
        Ok(Tensor::from_storage(loss, ().into(), op))
    }
}

/// The mean loss, and as asked its gradients for `h` `[n, c]` and `w` `[v, c]`.
#[allow(clippy::type_complexity)]
fn fused<T: Compute>(
    h: &[T],
    w: &[T],
    targets: &[i64],
    (n, c, v): (usize, usize, usize),
    ignore_index: i64,
    (want_dh, want_dw): (bool, bool),
) -> (f64, Option<Vec<T>>, Option<Vec<T>>) {
    let count = targets.iter().filter(|&&x| x != ignore_index).count();
    // As PyTorch: the mean over zero counted rows is NaN, and then every gradient is zero.
    let scale = if count == 0 { 0.0 } else { 1.0 / count as f64 };
    let mut dh = want_dh.then(|| vec![T::ZERO; n * c]);
    let mut dw = want_dw.then(|| vec![T::ZERO; v * c]);
    let rows_max = ROWS.min(n.max(1));
    let mut logits = vec![T::ZERO; rows_max * v];
    let mut dlogits = vec![T::ZERO; rows_max * v];
    let mut total = 0.0;
    // Wᵀ read in place: element (k = feature, j = class) of Wᵀ is w[j·c + k].
    let w_t = MatRef {
        data: w,
        offset: 0,
        row_stride: 1,
        col_stride: c,
    };
    let w_rows = MatRef::row_major(w, c);
    for r0 in (0..n).step_by(ROWS) {
        let r = ROWS.min(n - r0);
        let (lg, dl) = (&mut logits[..r * v], &mut dlogits[..r * v]);
        let h_block = MatRef {
            data: h,
            offset: r0 * c,
            row_stride: c,
            col_stride: 1,
        };
        matmul(r, v, c, h_block, w_t, lg, T::ZERO);
        let rows_t = &targets[r0..r0 + r];
        let (sum, _) = cross_entropy_fwd_bwd(lg, rows_t, v, ignore_index, T::from_f64(scale), dl);
        total += sum;
        if let Some(dh) = dh.as_mut() {
            // dhidden[block] = dlogits · W
            let dl_ref = MatRef::row_major(&dl[..], v);
            matmul(
                r,
                c,
                v,
                dl_ref,
                w_rows,
                &mut dh[r0 * c..(r0 + r) * c],
                T::ZERO,
            );
        }
        if let Some(dw) = dw.as_mut() {
            // dW += dlogitsᵀ · hidden[block]
            let dl_t = MatRef {
                data: &dl[..],
                offset: 0,
                row_stride: 1,
                col_stride: v,
            };
            let beta = if r0 == 0 { T::ZERO } else { T::ONE };
            matmul(v, c, r, dl_t, h_block, dw, beta);
        }
    }
    let loss = if count == 0 { f64::NAN } else { total * scale };
    (loss, dh, dw)
}
