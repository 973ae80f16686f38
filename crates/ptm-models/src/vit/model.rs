//! ViT (Dosovitskiy et al., 2021) as transformers implements it: `ViTModel` and
//! `ViTForImageClassification`. Pre-norm encoder layers over a `[CLS]` token and image patches.

use super::config::VitConfig;
use crate::error::{input_err, Result};
use ptm_nn::attention::{AttentionInputs, MultiHeadAttention};
use ptm_nn::{
    after_sublayer, linear, Activation, Dropout, Hooks, Init, LayerNorm, Module, Param, SubLayer,
    VarBuilder, WeightLayout,
};
use ptm_tensor::Tensor;
use std::sync::Arc;

struct Layer {
    ln_before: LayerNorm,
    attention: MultiHeadAttention,
    after_attn: Option<Box<dyn Module>>,
    ln_after: LayerNorm,
    intermediate: Box<dyn Module>,
    act: Activation,
    output: Box<dyn Module>,
    after_ffn: Option<Box<dyn Module>>,
    hidden_dropout: Dropout,
}

/// The ViT encoder: patch embedding, `[CLS]`, positions, pre-norm layers, final norm, and
/// (optionally) the pooler.
pub struct VitModel {
    cfg: VitConfig,
    cls_token: Param,
    position_embeddings: Param,
    patch_weight: Param,
    patch_bias: Param,
    dropout: Dropout,
    layers: Vec<Layer>,
    layernorm: LayerNorm,
    pooler: Option<Box<dyn Module>>,
    hooks: Option<Arc<dyn Hooks>>,
}

fn dense(
    vb: &VarBuilder,
    n_in: usize,
    n_out: usize,
    bias: bool,
    std: f64,
) -> Result<Box<dyn Module>> {
    // transformers draws ViT's weights from a normal truncated at ±2 (absolute): with a std of
    // 0.02 the truncation is never reached, so a plain normal is the same distribution.
    Ok(linear(
        vb,
        n_in,
        n_out,
        bias,
        WeightLayout::OutIn,
        Init::Normal { mean: 0.0, std },
    )?)
}

impl VitModel {
    /// Builds the encoder at `vb`'s scope (the root for `ViTModel`, `vit` inside the classifier).
    pub fn new(cfg: &VitConfig, vb: &VarBuilder, add_pooler: bool) -> Result<VitModel> {
        cfg.validate(std::path::Path::new("<config>"))?;
        let (h, std, eps, p) = (
            cfg.hidden_size,
            cfg.initializer_range,
            cfg.layer_norm_eps,
            cfg.patch_size,
        );
        let rng = vb.dropout_rng();
        let e = vb.pp("embeddings");
        let normal = Init::Normal { mean: 0.0, std };
        let proj = e.pp("patch_embeddings").pp("projection");
        let act = Activation::from_hf(&cfg.hidden_act, "hidden_act")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp("encoder").pp("layer").pp(i);
            let s = l.pp("attention").pp("attention");
            let attn_dropout = Dropout::new(cfg.attention_probs_dropout_prob, rng.clone())?;
            let out = l.pp("attention").pp("output").pp("dense");
            layers.push(Layer {
                ln_before: LayerNorm::new(&l.pp("layernorm_before"), h, eps)?,
                attention: MultiHeadAttention::new(
                    &s,
                    &out,
                    h,
                    cfg.num_attention_heads,
                    cfg.qkv_bias,
                    normal,
                    attn_dropout,
                )?,
                after_attn: after_sublayer(&l, SubLayer::Attention, h)?,
                ln_after: LayerNorm::new(&l.pp("layernorm_after"), h, eps)?,
                intermediate: dense(
                    &l.pp("intermediate").pp("dense"),
                    h,
                    cfg.intermediate_size,
                    true,
                    std,
                )?,
                act,
                output: dense(
                    &l.pp("output").pp("dense"),
                    cfg.intermediate_size,
                    h,
                    true,
                    std,
                )?,
                after_ffn: after_sublayer(&l, SubLayer::FeedForward, h)?,
                hidden_dropout: Dropout::new(cfg.hidden_dropout_prob, rng.clone())?,
            });
        }
        Ok(VitModel {
            cls_token: e.get(&[1, 1, h], "cls_token", normal)?,
            position_embeddings: e.get(
                &[1, cfg.num_patches() + 1, h],
                "position_embeddings",
                normal,
            )?,
            patch_weight: proj.get(&[h, cfg.num_channels, p, p], "weight", normal)?,
            patch_bias: proj.get(&[h], "bias", Init::Zeros)?,
            dropout: Dropout::new(cfg.hidden_dropout_prob, rng)?,
            layers,
            layernorm: LayerNorm::new(&vb.pp("layernorm"), h, eps)?,
            pooler: if add_pooler {
                Some(dense(&vb.pp("pooler").pp("dense"), h, h, true, std)?)
            } else {
                None
            },
            hooks: vb.hooks().cloned(),
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    /// `last_hidden_state` `[B, 1 + patches, hidden]` (after the final layer norm) and, with a
    /// pooler, the pooled `[CLS]` output, for `pixel_values` `[B, channels, size, size]`.
    pub fn forward(&self, pixel_values: &Tensor, train: bool) -> Result<(Tensor, Option<Tensor>)> {
        let c = &self.cfg;
        let want = [c.num_channels, c.image_size, c.image_size];
        if pixel_values.rank() != 4 || pixel_values.dims()[1..] != want {
            return Err(input_err(
                "pixel_values",
                format!(
                    "shape {:?}, expected [batch, {}, {}, {}]",
                    pixel_values.dims(),
                    want[0],
                    want[1],
                    want[2]
                ),
            ));
        }
        let b = pixel_values.dims()[0];
        let patches = pixel_values.conv2d(
            &self.patch_weight.tensor(),
            Some(&self.patch_bias.tensor()),
            c.patch_size,
            0,
        )?;
        // [B, H, g, g] → [B, g·g, H]
        let patches = patches.flatten(2, 3)?.transpose(1, 2)?;
        let cls = self
            .cls_token
            .tensor()
            .broadcast_as([b, 1, c.hidden_size])?;
        let x = Tensor::cat(&[cls, patches], 1)?.add(&self.position_embeddings.tensor())?;
        let mut x = self.dropout.forward(&x, train)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let prefix = match &self.hooks {
                Some(h) => h.prefix_kv(i, train)?,
                None => None,
            };
            x = layer.forward(&x, prefix.as_ref(), train)?;
        }
        let x = self.layernorm.forward(&x, train)?;
        let pooled = match &self.pooler {
            Some(p) => Some(p.forward(&x.narrow(1, 0, 1)?.squeeze(1)?, train)?.tanh()?),
            None => None,
        };
        Ok((x, pooled))
    }
}

impl Layer {
    fn forward(
        &self,
        x: &Tensor,
        prefix: Option<&(Tensor, Tensor)>,
        train: bool,
    ) -> Result<Tensor> {
        let h = self.ln_before.forward(x, train)?;
        let inputs = AttentionInputs {
            prefix: prefix.map(|(k, v)| (k, v)),
            ..Default::default()
        };
        let mut a = self
            .hidden_dropout
            .forward(&self.attention.forward(&h, inputs, train)?, train)?;
        if let Some(m) = &self.after_attn {
            a = m.forward(&a, train)?;
        }
        let x = a.add(x)?;
        let h = self.act.forward(
            &self
                .intermediate
                .forward(&self.ln_after.forward(&x, train)?, train)?,
            train,
        )?;
        let mut o = self
            .hidden_dropout
            .forward(&self.output.forward(&h, train)?, train)?;
        if let Some(m) = &self.after_ffn {
            o = m.forward(&o, train)?;
        }
        Ok(o.add(&x)?)
    }
}

/// ViT with a linear classifier on the final `[CLS]` state.
pub struct VitForImageClassification {
    vit: VitModel,
    classifier: Box<dyn Module>,
}

impl VitForImageClassification {
    /// Builds the model at `vb`'s root (`vit.…`, `classifier.…`); `id2label` sets the classes.
    pub fn new(cfg: &VitConfig, vb: &VarBuilder) -> Result<VitForImageClassification> {
        Ok(VitForImageClassification {
            vit: VitModel::new(cfg, &vb.pp("vit"), false)?,
            classifier: dense(
                &vb.pp("classifier"),
                cfg.hidden_size,
                cfg.num_labels(),
                true,
                cfg.initializer_range,
            )?,
        })
    }

    /// The encoder.
    pub fn vit(&self) -> &VitModel {
        &self.vit
    }

    /// Logits `[B, classes]` and the hidden states.
    pub fn forward(&self, pixel_values: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (hidden, _) = self.vit.forward(pixel_values, train)?;
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        Ok((self.classifier.forward(&cls, train)?, hidden))
    }

    /// Mean cross-entropy against integer `labels` `[B]`.
    pub fn loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        Ok(logits.cross_entropy(labels, -100)?)
    }
}
