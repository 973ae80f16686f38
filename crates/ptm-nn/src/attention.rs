//! The parts of multi-head attention that every architecture shares: splitting the model width
//! into heads, the attention itself (masks, prefix, dropout on the weights), merging heads back.

use crate::dropout::Dropout;
use crate::error::{invalid, Result};
use ptm_tensor::{scaled_dot_product_attention, AttentionOptions, Tensor};

/// `[B, T, H·D]` → `[B, H, T, D]`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let [b, t, c] = dims[..] else {
        return Err(invalid(
            "split_heads",
            format!("expected [batch, seq, width], got {dims:?}"),
        ));
    };
    if heads == 0 || !c.is_multiple_of(heads) {
        return Err(invalid(
            "split_heads",
            format!("width {c} is not divisible by {heads} heads"),
        ));
    }
    Ok(x.reshape([b, t, heads, c / heads])?.transpose(1, 2)?)
}

/// `[B, H, T, D]` → `[B, T, H·D]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let [b, h, t, d] = dims[..] else {
        return Err(invalid(
            "merge_heads",
            format!("expected [batch, heads, seq, head_dim], got {dims:?}"),
        ));
    };
    Ok(x.transpose(1, 2)?.reshape([b, t, h * d])?)
}

/// What one attention call needs besides q, k, v.
#[derive(Clone, Copy, Default)]
pub struct AttentionInputs<'a> {
    /// Queries see only earlier keys (GPT-2).
    pub causal: bool,
    /// `[B, keys]`: 1 for tokens, 0 for padding.
    pub key_padding_mask: Option<&'a Tensor>,
    /// Prefix keys and values (prefix-tuning).
    pub prefix: Option<(&'a Tensor, &'a Tensor)>,
    /// Score scale; `1/sqrt(head_dim)` when `None`.
    pub scale: Option<f64>,
}

/// `softmax(q·kᵀ·scale + masks)·v` on `[B, H, T, D]` heads, with dropout on the weights while
/// training (its mask seeded from the model's stream).
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    inputs: AttentionInputs,
    dropout: &Dropout,
    train: bool,
) -> Result<Tensor> {
    let dropout = (train && dropout.p() > 0.0).then(|| (dropout.p(), dropout.next_seed()));
    let opts = AttentionOptions {
        causal: inputs.causal,
        key_padding_mask: inputs.key_padding_mask,
        prefix: inputs.prefix,
        scale: inputs.scale,
        dropout,
    };
    Ok(scaled_dot_product_attention(q, k, v, opts)?)
}
