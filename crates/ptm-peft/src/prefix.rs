//! Prefix-tuning's prompt encoder: trained keys and values for every attention layer, as PEFT's
//! `PrefixEncoder` makes them.
//!
//! The table `[num_virtual_tokens, layers·2·width]` holds, for layer `i`, the keys at columns
//! `[2i·width, (2i+1)·width)` and the values at the next `width` columns, each split into heads.
//! With `prefix_projection` the table is computed as `Linear(tanh(Linear(embedding)))` while
//! training; PEFT saves (and ptm saves) the computed table as `prompt_embeddings`.

use ptm_nn::{Linear, Module, Param};
use ptm_tensor::{Tensor, TensorId};
use std::sync::Mutex;

/// How the table is produced.
pub(crate) enum PrefixSource {
    /// The table is the parameter.
    Table(Param),
    /// `fc2(tanh(fc1(embedding)))`, embedding `[tokens, width]`.
    Projected {
        embedding: Param,
        fc1: Linear,
        fc2: Linear,
    },
}

/// One prefix-tuning adapter.
pub(crate) struct Prefix {
    pub source: PrefixSource,
    pub tokens: usize,
    pub layers: usize,
    pub heads: usize,
    pub width: usize,
    /// The last computed table and the parameter tensors it came from: every layer of one forward
    /// reads one table (one node of the graph) instead of recomputing the projection per layer.
    /// Keyed by whether gradients were recorded too: a table computed under `no_grad` (an
    /// evaluation) has no graph and must not be reused by a training step.
    cache: Mutex<Option<(Vec<TensorId>, bool, Tensor)>>,
}

impl Prefix {
    pub(crate) fn new(
        source: PrefixSource,
        tokens: usize,
        layers: usize,
        heads: usize,
        width: usize,
    ) -> Prefix {
        Prefix {
            source,
            tokens,
            layers,
            heads,
            width,
            cache: Mutex::new(None),
        }
    }

    fn param_ids(&self) -> Vec<TensorId> {
        match &self.source {
            PrefixSource::Table(p) => vec![p.tensor().id()],
            PrefixSource::Projected {
                embedding,
                fc1,
                fc2,
            } => {
                let mut ids = vec![embedding.tensor().id()];
                for l in [fc1, fc2] {
                    ids.push(l.weight().tensor().id());
                    ids.extend(l.bias().map(|b| b.tensor().id()));
                }
                ids
            }
        }
    }

    /// The table `[tokens, layers·2·width]`.
    pub(crate) fn table(&self) -> ptm_nn::Result<Tensor> {
        let ids = self.param_ids();
        let grad = ptm_tensor::is_grad_enabled();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((have, with_grad, t)) = cache.as_ref() {
            if *have == ids && *with_grad == grad {
                return Ok(t.clone());
            }
        }
        let t = match &self.source {
            PrefixSource::Table(p) => p.tensor(),
            PrefixSource::Projected {
                embedding,
                fc1,
                fc2,
            } => {
                let h = fc1.forward(&embedding.tensor(), false)?.tanh()?;
                fc2.forward(&h, false)?
            }
        };
        *cache = Some((ids, grad, t.clone()));
        Ok(t)
    }

    /// Keys and values of layer `i`, each `[1, heads, tokens, head_dim]`.
    pub(crate) fn layer_kv(&self, i: usize) -> ptm_nn::Result<(Tensor, Tensor)> {
        let (n, h, c) = (self.tokens, self.heads, self.width);
        let t = self.table()?;
        let part = |j: usize| -> ptm_nn::Result<Tensor> {
            Ok(t.narrow(1, j * c, c)?
                .reshape([n, h, c / h])?
                .transpose(0, 1)?
                .unsqueeze(0)?)
        };
        Ok((part(2 * i)?, part(2 * i + 1)?))
    }
}
