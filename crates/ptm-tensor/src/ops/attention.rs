//! The fused attention op: `scaled_dot_product_attention` without dropout runs ptm-cpu's fused
//! kernel (the score matrix is never stored) and records one graph node whose backward is the
//! kernel's backward.

use crate::error::Result;
use crate::op::Op;
use crate::storage::{float_dispatch, Compute};
use crate::{DType, Layout, Tensor};
use ptm_cpu::attention::{attention_bwd, attention_fwd, AttentionMask, AttentionShape};
use ptm_cpu::Element;
use std::sync::Arc;

/// What the backward needs besides the inputs and the output.
#[derive(Debug)]
pub(crate) struct AttentionSaved {
    /// Per query: the row maximum and `1/Σ exp` of its weights, `[batch·heads, tq, 2]`.
    stats: Tensor,
    shape: AttentionShape,
    causal: bool,
    /// `[batch, keys]` (without the prefix), 0 for padding.
    padding: Option<Vec<f32>>,
    scale: f64,
}

impl AttentionSaved {
    fn mask(&self) -> AttentionMask<'_> {
        AttentionMask {
            causal: self.causal,
            key_padding: self.padding.as_deref(),
        }
    }
}

/// `softmax(q·kᵀ·scale + mask)·v` for `[batch, heads, t, d]` tensors whose `k`, `v` already hold
/// the `prefix` keys first; the caller has checked the shapes.
pub(crate) fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    causal: bool,
    padding: Option<Vec<f32>>,
    prefix: usize,
    scale: f64,
) -> Result<Tensor> {
    let (b, h, tq, d) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
    let shape = AttentionShape {
        bh: b * h,
        heads: h,
        tq,
        tk: k.dims()[2],
        prefix,
        d,
    };
    let mask = AttentionMask {
        causal,
        key_padding: padding.as_deref(),
    };
    #[cfg(feature = "cuda")]
    if q.device().is_cuda() {
        let (o, stats) =
            crate::cuda::attention_fwd(q, k, v, &shape, causal, padding.as_deref(), scale)?;
        let op = Op::Attention {
            q: q.clone(),
            k: k.clone(),
            v: v.clone(),
            saved: Arc::new(AttentionSaved {
                stats,
                shape,
                causal,
                padding,
                scale,
            }),
        };
        return Ok(o.with_op(op));
    }
    let dtype = q.dtype();
    let stats_dtype = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let (o, stats) = float_dispatch!(dtype, "attention", T => {
        let (qv, kv, vv) = (
            T::read(q.cpu("scaled_dot_product_attention")?, q.layout()),
            T::read(k.cpu("scaled_dot_product_attention")?, k.layout()),
            T::read(v.cpu("scaled_dot_product_attention")?, v.layout()),
        );
        let mut o = vec![T::ZERO; qv.len()];
        let mut st = vec![T::ZERO; b * h * tq * 2];
        attention_fwd(&shape, &mask, T::from_f64(scale), &qv, &kv, &vv, &mut o, &mut st);
        // The statistics stay in the compute precision (f32 for the 16-bit types): rounded to
        // bf16, a saved maximum would scale the rebuilt weights by up to ~1 %.
        (T::write(o, dtype), T::write(st, stats_dtype))
    });
    let stats = Tensor::from_storage(stats, vec![b * h, tq, 2].into(), None);
    let op = Op::Attention {
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        saved: Arc::new(AttentionSaved {
            stats,
            shape,
            causal,
            padding,
            scale,
        }),
    };
    Ok(Tensor::from_parts(
        Arc::new(crate::storage::Storage::Cpu(o)),
        Layout::contiguous(q.shape().clone()),
        Some(op),
    ))
}

/// Gradients of q, k and v from the output `out` and its gradient `g`.
pub(crate) fn fused_attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    saved: &AttentionSaved,
    out: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let sh = &saved.shape;
    #[cfg(feature = "cuda")]
    if q.device().is_cuda() {
        return crate::cuda::attention_bwd(
            q,
            k,
            v,
            out,
            &saved.stats,
            g,
            sh,
            saved.causal,
            saved.padding.as_deref(),
            saved.scale,
        );
    }
    let dtype = q.dtype();
    let (dq, dk, dv) = float_dispatch!(dtype, "attention", T => {
        let (qv, kv, vv) = (
            T::read(q.cpu("scaled_dot_product_attention")?, q.layout()),
            T::read(k.cpu("scaled_dot_product_attention")?, k.layout()),
            T::read(v.cpu("scaled_dot_product_attention")?, v.layout()),
        );
        let (ov, gv) = (T::read(out.cpu("scaled_dot_product_attention")?, out.layout()), T::read(g.cpu("scaled_dot_product_attention")?, g.layout()));
        let st = T::read(saved.stats.cpu("scaled_dot_product_attention")?, saved.stats.layout());
        let mut dq = vec![T::ZERO; qv.len()];
        let (mut dk, mut dv) = (vec![T::ZERO; kv.len()], vec![T::ZERO; vv.len()]);
        attention_bwd(
            sh, &saved.mask(), T::from_f64(saved.scale), &qv, &kv, &vv, &ov, &st, &gv,
            &mut dq, &mut dk, &mut dv,
        );
        (T::write(dq, dtype), T::write(dk, dtype), T::write(dv, dtype))
    });
    Ok((
        Tensor::from_storage(dq, q.shape().clone(), None),
        Tensor::from_storage(dk, k.shape().clone(), None),
        Tensor::from_storage(dv, v.shape().clone(), None),
    ))
}
