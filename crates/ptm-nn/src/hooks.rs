//! The hook trait through which parameter-efficient fine-tuning changes a model while it is built.
//!
//! Models never know about LoRA or adapters. They build each linear layer through
//! [`linear`], ask for extra modules after each sub-layer, and ask for prefix keys/values per
//! attention layer; a model built with no hooks is the plain model. `ptm-peft` implements
//! [`Hooks`]; `ptm-train` hands it to the model's constructor through the `VarBuilder`.

use crate::error::Result;
use crate::init::Init;
use crate::linear::{Linear, WeightLayout};
use crate::module::Module;
use crate::var_builder::VarBuilder;
use ptm_tensor::Tensor;

/// Which sub-layer of a transformer block a module is placed after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubLayer {
    /// The self-attention output projection (before the residual add).
    Attention,
    /// The feed-forward output projection (before the residual add).
    FeedForward,
}

/// Ways a model can be changed while it is built. Every method defaults to "no change".
pub trait Hooks: Send + Sync {
    /// Called for each linear layer at `path` (e.g. `transformer.h.0.attn.c_attn`); may return
    /// a replacement that wraps it (LoRA). `vb` is scoped to the layer.
    fn wrap_linear(&self, path: &str, linear: Linear, vb: &VarBuilder) -> Result<Box<dyn Module>> {
        let _ = (path, vb);
        Ok(Box::new(linear))
    }

    /// A module applied to the output of sub-layer `which` of the block at `path`, before the
    /// residual add (bottleneck adapters). `hidden` is the model width.
    fn after_sublayer(
        &self,
        path: &str,
        which: SubLayer,
        hidden: usize,
        vb: &VarBuilder,
    ) -> Result<Option<Box<dyn Module>>> {
        let _ = (path, which, hidden, vb);
        Ok(None)
    }

    /// Prefix keys and values `[batch or 1, heads, prefix, head_dim]` for attention layer `layer`
    /// (prefix-tuning), placed before the sequence's keys and visible to every query.
    fn prefix_kv(&self, layer: usize, train: bool) -> Result<Option<(Tensor, Tensor)>> {
        let _ = (layer, train);
        Ok(None)
    }

    /// How many prefix positions [`Hooks::prefix_kv`] adds (0 when none).
    fn num_prefix_tokens(&self) -> usize {
        0
    }
}

/// Builds the linear layer at `vb`'s scope and passes it through the builder's hooks, if any.
pub fn linear(
    vb: &VarBuilder,
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    layout: WeightLayout,
    init: Init,
) -> Result<Box<dyn Module>> {
    let layer = Linear::new(vb, in_dim, out_dim, bias, layout, init)?;
    match vb.hooks() {
        Some(h) => h.clone().wrap_linear(&vb.prefix(), layer, vb),
        None => Ok(Box::new(layer)),
    }
}

/// Asks the builder's hooks for a module after sub-layer `which` of the block at `vb`'s scope.
pub fn after_sublayer(
    vb: &VarBuilder,
    which: SubLayer,
    hidden: usize,
) -> Result<Option<Box<dyn Module>>> {
    match vb.hooks() {
        Some(h) => h.clone().after_sublayer(&vb.prefix(), which, hidden, vb),
        None => Ok(None),
    }
}
