//! The parts of multi-head attention that every architecture shares: splitting the model width
//! into heads, the attention itself (masks, prefix, dropout on the weights), merging heads back.

use crate::dropout::Dropout;
use crate::error::{invalid, Result};
use crate::hooks::linear;
use crate::init::Init;
use crate::linear::WeightLayout;
use crate::module::Module;
use crate::var_builder::VarBuilder;
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

/// Multi-head self-attention with separate query/key/value projections and an output
/// projection (BERT's and ViT's layout), every projection built through the builder's hooks.
pub struct MultiHeadAttention {
    query: Box<dyn Module>,
    key: Box<dyn Module>,
    value: Box<dyn Module>,
    out: Box<dyn Module>,
    dropout: Dropout,
    heads: usize,
}

impl MultiHeadAttention {
    /// Projections `query`, `key`, `value` under `qkv`'s scope and the output projection at
    /// `out`'s scope (`[out, in]` weights drawn from `init`, zero biases); `width` split into
    /// `heads`; `dropout` on the attention weights.
    pub fn new(
        qkv: &VarBuilder,
        out: &VarBuilder,
        width: usize,
        heads: usize,
        qkv_bias: bool,
        init: Init,
        dropout: Dropout,
    ) -> Result<MultiHeadAttention> {
        if heads == 0 || !width.is_multiple_of(heads) {
            return Err(invalid(
                "MultiHeadAttention",
                format!("width {width} is not divisible by {heads} heads"),
            ));
        }
        let proj =
            |vb: &VarBuilder, bias| linear(vb, width, width, bias, WeightLayout::OutIn, init);
        Ok(MultiHeadAttention {
            query: proj(&qkv.pp("query"), qkv_bias)?,
            key: proj(&qkv.pp("key"), qkv_bias)?,
            value: proj(&qkv.pp("value"), qkv_bias)?,
            out: proj(out, true)?,
            dropout,
            heads,
        })
    }

    /// Self-attention of `x` `[B, T, width]` (masks and prefix from `inputs`), then the output
    /// projection.
    pub fn forward(&self, x: &Tensor, inputs: AttentionInputs, train: bool) -> Result<Tensor> {
        let q = split_heads(&self.query.forward(x, train)?, self.heads)?;
        let k = split_heads(&self.key.forward(x, train)?, self.heads)?;
        let v = split_heads(&self.value.forward(x, train)?, self.heads)?;
        let ctx = merge_heads(&attend(&q, &k, &v, inputs, &self.dropout, train)?)?;
        self.out.forward(&ctx, train)
    }
}
