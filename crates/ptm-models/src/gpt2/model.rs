//! GPT-2: `GPT2Model` (the transformer) and `GPT2LMHeadModel` (plus the tied output layer).
//!
//! Parameter names are Hugging Face's, so the store saves a file transformers loads:
//! `transformer.wte.weight`, `transformer.h.{i}.attn.c_attn.weight` (`[in, out]`, Conv1D), … The
//! language-model head shares `wte` and is not stored.

use super::config::Gpt2Config;
use crate::error::{input_err, Result};
use ptm_nn::attention::{attend, merge_heads, split_heads, AttentionInputs};
use ptm_nn::{
    after_sublayer, linear, Activation, Dropout, Embedding, Hooks, Init, LayerNorm, Linear, Module,
    SubLayer, VarBuilder, WeightLayout,
};
use ptm_tensor::{DType, Device, Tensor};
use std::sync::Arc;

/// Keys and values of earlier positions, per block, `[B, H, T, D]`: generation feeds one new token
/// at a time and attends to these.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dims()[2])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn layer(&mut self, i: usize) -> &mut Option<(Tensor, Tensor)> {
        if self.layers.len() <= i {
            self.layers.resize(i + 1, None);
        }
        &mut self.layers[i]
    }
}

struct Attention {
    c_attn: Box<dyn Module>,
    c_proj: Box<dyn Module>,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    heads: usize,
    width: usize,
    scale: f64,
}

struct Mlp {
    c_fc: Box<dyn Module>,
    act: Activation,
    c_proj: Box<dyn Module>,
    dropout: Dropout,
}

struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    after_attn: Option<Box<dyn Module>>,
    ln_2: LayerNorm,
    mlp: Mlp,
    after_mlp: Option<Box<dyn Module>>,
}

/// What one forward pass reads besides the ids.
#[derive(Default)]
pub struct Gpt2Inputs<'a> {
    /// `[B, cached + T]`: 1 for tokens, 0 for padding (Hugging Face's `attention_mask`).
    pub attention_mask: Option<&'a Tensor>,
    /// Keys/values of earlier positions, extended in place.
    pub cache: Option<&'a mut KvCache>,
    /// Dropout on.
    pub train: bool,
}

/// The GPT-2 transformer: embeddings, blocks, final layer norm.
pub struct Gpt2Model {
    cfg: Gpt2Config,
    wte: Embedding,
    wpe: Embedding,
    drop: Dropout,
    h: Vec<Block>,
    ln_f: LayerNorm,
    hooks: Option<Arc<dyn Hooks>>,
}

fn conv1d(vb: &VarBuilder, n_in: usize, n_out: usize, std: f64) -> Result<Box<dyn Module>> {
    Ok(linear(
        vb,
        n_in,
        n_out,
        true,
        WeightLayout::InOut,
        Init::Normal { mean: 0.0, std },
    )?)
}

impl Gpt2Model {
    /// Builds the transformer at `vb`'s scope (the root for `GPT2Model`, `transformer` inside
    /// `GPT2LMHeadModel`), initialised as transformers initialises it when not loading.
    pub fn new(cfg: &Gpt2Config, vb: &VarBuilder) -> Result<Gpt2Model> {
        cfg.validate(std::path::Path::new("<config>"))?;
        let (c, std) = (cfg.n_embd, cfg.initializer_range);
        // transformers scales the residual projections by 1/sqrt(2·n_layer) at init.
        let proj_std = std / (2.0 * cfg.n_layer as f64).sqrt();
        let rng = vb.dropout_rng();
        let normal = Init::Normal { mean: 0.0, std };
        let wte = Embedding::new(&vb.pp("wte"), cfg.vocab_size, c, normal)?;
        let wpe = Embedding::new(&vb.pp("wpe"), cfg.n_positions, c, normal)?;
        let act = Activation::from_hf(&cfg.activation_function, "activation_function")?;
        let mut h = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let vb = vb.pp("h").pp(i);
            let mut scale = if cfg.scale_attn_weights {
                1.0 / (cfg.head_dim() as f64).sqrt()
            } else {
                1.0
            };
            if cfg.scale_attn_by_inverse_layer_idx {
                scale /= (i + 1) as f64;
            }
            let attn = Attention {
                c_attn: conv1d(&vb.pp("attn").pp("c_attn"), c, 3 * c, std)?,
                c_proj: conv1d(&vb.pp("attn").pp("c_proj"), c, c, proj_std)?,
                attn_dropout: Dropout::new(cfg.attn_pdrop, rng.clone())?,
                resid_dropout: Dropout::new(cfg.resid_pdrop, rng.clone())?,
                heads: cfg.n_head,
                width: c,
                scale,
            };
            let mlp = Mlp {
                c_fc: conv1d(&vb.pp("mlp").pp("c_fc"), c, cfg.inner_dim(), std)?,
                act,
                c_proj: conv1d(&vb.pp("mlp").pp("c_proj"), cfg.inner_dim(), c, proj_std)?,
                dropout: Dropout::new(cfg.resid_pdrop, rng.clone())?,
            };
            h.push(Block {
                ln_1: LayerNorm::new(&vb.pp("ln_1"), c, cfg.layer_norm_epsilon)?,
                attn,
                after_attn: after_sublayer(&vb, SubLayer::Attention, c)?,
                ln_2: LayerNorm::new(&vb.pp("ln_2"), c, cfg.layer_norm_epsilon)?,
                mlp,
                after_mlp: after_sublayer(&vb, SubLayer::FeedForward, c)?,
            });
        }
        Ok(Gpt2Model {
            cfg: cfg.clone(),
            wte,
            wpe,
            drop: Dropout::new(cfg.embd_pdrop, rng)?,
            h,
            ln_f: LayerNorm::new(&vb.pp("ln_f"), c, cfg.layer_norm_epsilon)?,
            hooks: vb.hooks().cloned(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    /// The token embedding (the tied output layer reads it).
    pub fn wte(&self) -> &Embedding {
        &self.wte
    }

    /// Hidden states `[B, T, n_embd]` after the final layer norm, for ids `[B, T]` (u32 or i64).
    pub fn forward(&self, ids: &Tensor, inputs: Gpt2Inputs) -> Result<Tensor> {
        let Gpt2Inputs {
            attention_mask,
            mut cache,
            train,
        } = inputs;
        let dims = ids.dims().to_vec();
        let [b, t] = dims[..] else {
            return Err(input_err(
                "input_ids",
                format!("expected [batch, seq], got {dims:?}"),
            ));
        };
        let past = cache.as_ref().map_or(0, |c| c.len());
        let prefix = self.hooks.as_ref().map_or(0, |h| h.num_prefix_tokens());
        let start = past + prefix;
        if start + t > self.cfg.n_positions {
            return Err(input_err(
                "input_ids",
                format!(
                    "{} positions ({past} cached + {prefix} prefix + {t} new) exceed n_positions {}",
                    start + t,
                    self.cfg.n_positions
                ),
            ));
        }
        if let Some(m) = attention_mask {
            if m.dims() != [b, past + t] {
                return Err(input_err(
                    "attention_mask",
                    format!(
                        "shape {:?}, expected [{b}, {}] (cached + new positions)",
                        m.dims(),
                        past + t
                    ),
                ));
            }
        }
        let positions = Tensor::arange(start as f64, (start + t) as f64, DType::U32, &Device::Cpu)?;
        let x = self
            .wte
            .forward(ids, train)
            .map_err(|e| input_err("input_ids", e.to_string()))?;
        let mut x = self
            .drop
            .forward(&x.add(&self.wpe.forward(&positions, train)?)?, train)?;
        for (i, block) in self.h.iter().enumerate() {
            let prefix_kv = match &self.hooks {
                Some(h) => h.prefix_kv(i, train)?,
                None => None,
            };
            let layer_cache = cache.as_deref_mut().map(|c| c.layer(i));
            x = block.forward(&x, attention_mask, layer_cache, prefix_kv.as_ref(), train)?;
        }
        Ok(self.ln_f.forward(&x, train)?)
    }
}

impl Block {
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        prefix: Option<&(Tensor, Tensor)>,
        train: bool,
    ) -> Result<Tensor> {
        let mut a = self
            .attn
            .forward(&self.ln_1.forward(x, train)?, mask, cache, prefix, train)?;
        if let Some(m) = &self.after_attn {
            a = m.forward(&a, train)?;
        }
        let x = x.add(&a)?;
        let h = self
            .mlp
            .c_fc
            .forward(&self.ln_2.forward(&x, train)?, train)?;
        let h = self
            .mlp
            .c_proj
            .forward(&self.mlp.act.forward(&h, train)?, train)?;
        let mut m = self.mlp.dropout.forward(&h, train)?;
        if let Some(f) = &self.after_mlp {
            m = f.forward(&m, train)?;
        }
        Ok(x.add(&m)?)
    }
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        prefix: Option<&(Tensor, Tensor)>,
        train: bool,
    ) -> Result<Tensor> {
        let c = self.width;
        let qkv = self.c_attn.forward(x, train)?;
        let q = split_heads(&qkv.narrow(2, 0, c)?, self.heads)?;
        let mut k = split_heads(&qkv.narrow(2, c, c)?, self.heads)?;
        let mut v = split_heads(&qkv.narrow(2, 2 * c, c)?, self.heads)?;
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk.clone(), k], 2)?;
                v = Tensor::cat(&[pv.clone(), v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let inputs = AttentionInputs {
            causal: true,
            key_padding_mask: mask,
            prefix: prefix.map(|(k, v)| (k, v)),
            scale: Some(self.scale),
        };
        let y = merge_heads(&attend(&q, &k, &v, inputs, &self.attn_dropout, train)?)?;
        let y = self.c_proj.forward(&y, train)?;
        Ok(self.resid_dropout.forward(&y, train)?)
    }
}

/// GPT-2 with its language-model head (tied to `wte` unless the config unties it).
pub struct Gpt2LmHeadModel {
    transformer: Gpt2Model,
    lm_head: Linear,
}

impl Gpt2LmHeadModel {
    /// Builds the model at `vb`'s root: the transformer under `transformer.`, the head as `wte`
    /// (tied) or `lm_head.weight`.
    pub fn new(cfg: &Gpt2Config, vb: &VarBuilder) -> Result<Gpt2LmHeadModel> {
        let transformer = Gpt2Model::new(cfg, &vb.pp("transformer"))?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::from_params(
                transformer.wte().weight().clone(),
                None,
                WeightLayout::OutIn,
            )?
        } else {
            let init = Init::Normal {
                mean: 0.0,
                std: cfg.initializer_range,
            };
            Linear::new(
                &vb.pp("lm_head"),
                cfg.n_embd,
                cfg.vocab_size,
                false,
                WeightLayout::OutIn,
                init,
            )?
        };
        Ok(Gpt2LmHeadModel {
            transformer,
            lm_head,
        })
    }

    /// The transformer.
    pub fn transformer(&self) -> &Gpt2Model {
        &self.transformer
    }

    /// The configuration.
    pub fn config(&self) -> &Gpt2Config {
        self.transformer.config()
    }

    /// Logits `[B, T, vocab]` and the hidden states they came from.
    pub fn forward(&self, ids: &Tensor, inputs: Gpt2Inputs) -> Result<(Tensor, Tensor)> {
        let train = inputs.train;
        let hidden = self.transformer.forward(ids, inputs)?;
        let logits = self.lm_head.forward(&hidden, train)?;
        Ok((logits, hidden))
    }

    /// The next-token loss of `labels` `[B, T]` (i64, -100 = ignore) given `ids`, as
    /// transformers' `GPT2LMHeadModel(labels=...)`, through the fused linear cross-entropy: the
    /// `[B·T, vocab]` logits are never materialised. Use this to train; [`Self::forward`] when the
    /// logits themselves are wanted.
    pub fn loss(&self, ids: &Tensor, labels: &Tensor, inputs: Gpt2Inputs) -> Result<Tensor> {
        let hidden = self.transformer.forward(ids, inputs)?;
        let (b, t, c) = (hidden.dims()[0], hidden.dims()[1], hidden.dims()[2]);
        let targets = shifted_targets(labels, b, t)?;
        let weight = self.lm_head.weight().tensor();
        Ok(hidden
            .reshape([b * t, c])?
            .linear_cross_entropy(&weight, &targets, -100)?)
    }

    /// Next-token cross-entropy of `logits` `[B, T, V]` against `labels` `[B, T]` (i64, -100 =
    /// ignore): position t predicts label t+1, the mean over counted tokens, as transformers.
    pub fn lm_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let dims = logits.dims().to_vec();
        let [b, t, v] = dims[..] else {
            return Err(input_err(
                "logits",
                format!("expected [batch, seq, vocab], got {dims:?}"),
            ));
        };
        let targets = shifted_targets(labels, b, t)?;
        Ok(logits.reshape([b * t, v])?.cross_entropy(&targets, -100)?)
    }
}

/// `labels[:, 1:]` followed by -100, flattened: what position t of `[B, T]` logits is scored
/// against. Shifting the labels rather than the logits keeps the logits one contiguous view, so
/// neither the forward nor the backward copies the vocabulary-wide tensor.
fn shifted_targets(labels: &Tensor, b: usize, t: usize) -> Result<Tensor> {
    if labels.dims() != [b, t] {
        return Err(input_err(
            "labels",
            format!("shape {:?}, expected [{b}, {t}]", labels.dims()),
        ));
    }
    if t < 2 {
        return Err(input_err(
            "labels",
            "need at least 2 positions to predict a next token",
        ));
    }
    let ignore = Tensor::full(-100.0, [b, 1], DType::I64, &labels.device())?;
    let next = labels.to_dtype(DType::I64)?.narrow(1, 1, t - 1)?;
    Ok(Tensor::cat(&[next, ignore], 1)?.reshape([b * t])?)
}
