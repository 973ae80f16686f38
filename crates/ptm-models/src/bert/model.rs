//! BERT (Devlin et al., 2019) as transformers implements it: `BertModel` and the masked-LM,
//! sequence-classification and token-classification heads.
//!
//! Parameter names are Hugging Face's (`bert.encoder.layer.{i}.attention.self.query.weight`, …),
//! so the store saves a file transformers loads. The masked-LM decoder shares the word embedding.

use super::config::BertConfig;
use crate::error::{input_err, Result};
use ptm_nn::attention::{AttentionInputs, MultiHeadAttention};
use ptm_nn::{
    after_sublayer, linear, Activation, Dropout, Embedding, Hooks, Init, LayerNorm, Module, Param,
    SubLayer, VarBuilder, WeightLayout,
};
use ptm_tensor::{DType, Device, Tensor};
use std::sync::Arc;

/// What one forward pass reads besides the ids.
#[derive(Clone, Copy, Default)]
pub struct BertInputs<'a> {
    /// `[B, T]`: 1 for tokens, 0 for padding.
    pub attention_mask: Option<&'a Tensor>,
    /// `[B, T]` segment ids (zeros when absent).
    pub token_type_ids: Option<&'a Tensor>,
    /// Dropout on.
    pub train: bool,
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    ln: LayerNorm,
    dropout: Dropout,
}

struct Layer {
    attention: MultiHeadAttention,
    after_attn: Option<Box<dyn Module>>,
    attn_ln: LayerNorm,
    intermediate: Box<dyn Module>,
    act: Activation,
    output: Box<dyn Module>,
    after_ffn: Option<Box<dyn Module>>,
    out_ln: LayerNorm,
    hidden_dropout: Dropout,
}

/// The BERT encoder: embeddings, layers, and (optionally) the pooler.
pub struct BertModel {
    cfg: BertConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Box<dyn Module>>,
    hooks: Option<Arc<dyn Hooks>>,
}

fn dense(vb: &VarBuilder, n_in: usize, n_out: usize, std: f64) -> Result<Box<dyn Module>> {
    Ok(linear(
        vb,
        n_in,
        n_out,
        true,
        WeightLayout::OutIn,
        Init::Normal { mean: 0.0, std },
    )?)
}

impl BertModel {
    /// Builds the encoder at `vb`'s scope (the root for `BertModel`, `bert` inside the heads).
    pub fn new(cfg: &BertConfig, vb: &VarBuilder, add_pooler: bool) -> Result<BertModel> {
        cfg.validate(std::path::Path::new("<config>"))?;
        let (h, std, eps) = (cfg.hidden_size, cfg.initializer_range, cfg.layer_norm_eps);
        let normal = Init::Normal { mean: 0.0, std };
        let rng = vb.dropout_rng();
        let e = vb.pp("embeddings");
        let embeddings = Embeddings {
            word: Embedding::new(&e.pp("word_embeddings"), cfg.vocab_size, h, normal)?
                .with_padding_idx(cfg.pad_token_id),
            position: Embedding::new(
                &e.pp("position_embeddings"),
                cfg.max_position_embeddings,
                h,
                normal,
            )?,
            token_type: Embedding::new(
                &e.pp("token_type_embeddings"),
                cfg.type_vocab_size,
                h,
                normal,
            )?,
            ln: LayerNorm::new(&e.pp("LayerNorm"), h, eps)?,
            dropout: Dropout::new(cfg.hidden_dropout_prob, rng.clone())?,
        };
        if !vb.is_loading() {
            embeddings.word.zero_padding_row()?;
        }
        let act = Activation::from_hf(&cfg.hidden_act, "hidden_act")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp("encoder").pp("layer").pp(i);
            let (a, s) = (l.pp("attention"), l.pp("attention").pp("self"));
            let attn_dropout = Dropout::new(cfg.attention_probs_dropout_prob, rng.clone())?;
            layers.push(Layer {
                attention: MultiHeadAttention::new(
                    &s,
                    &a.pp("output").pp("dense"),
                    h,
                    cfg.num_attention_heads,
                    true,
                    normal,
                    attn_dropout,
                )?,
                after_attn: after_sublayer(&l, SubLayer::Attention, h)?,
                attn_ln: LayerNorm::new(&a.pp("output").pp("LayerNorm"), h, eps)?,
                intermediate: dense(
                    &l.pp("intermediate").pp("dense"),
                    h,
                    cfg.intermediate_size,
                    std,
                )?,
                act,
                output: dense(&l.pp("output").pp("dense"), cfg.intermediate_size, h, std)?,
                after_ffn: after_sublayer(&l, SubLayer::FeedForward, h)?,
                out_ln: LayerNorm::new(&l.pp("output").pp("LayerNorm"), h, eps)?,
                hidden_dropout: Dropout::new(cfg.hidden_dropout_prob, rng.clone())?,
            });
        }
        let pooler = if add_pooler {
            Some(dense(&vb.pp("pooler").pp("dense"), h, h, std)?)
        } else {
            None
        };
        Ok(BertModel {
            cfg: cfg.clone(),
            embeddings,
            layers,
            pooler,
            hooks: vb.hooks().cloned(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// The word embedding (the masked-LM decoder shares it).
    pub fn word_embeddings(&self) -> &Embedding {
        &self.embeddings.word
    }

    /// `last_hidden_state` `[B, T, hidden]`, and the pooled `[CLS]` output `[B, hidden]` when
    /// the model has a pooler.
    pub fn forward(&self, ids: &Tensor, inputs: BertInputs) -> Result<(Tensor, Option<Tensor>)> {
        let train = inputs.train;
        let dims = ids.dims().to_vec();
        let [b, t] = dims[..] else {
            return Err(input_err(
                "input_ids",
                format!("expected [batch, seq], got {dims:?}"),
            ));
        };
        if t > self.cfg.max_position_embeddings {
            return Err(input_err(
                "input_ids",
                format!(
                    "{t} positions exceed max_position_embeddings {}",
                    self.cfg.max_position_embeddings
                ),
            ));
        }
        for (name, m) in [
            ("attention_mask", inputs.attention_mask),
            ("token_type_ids", inputs.token_type_ids),
        ] {
            if let Some(m) = m {
                if m.dims() != [b, t] {
                    return Err(input_err(
                        name,
                        format!("shape {:?}, expected [{b}, {t}]", m.dims()),
                    ));
                }
            }
        }
        let e = &self.embeddings;
        let words = e
            .word
            .forward(ids, train)
            .map_err(|err| input_err("input_ids", err.to_string()))?;
        let positions = Tensor::arange(0.0, t as f64, DType::U32, &Device::Cpu)?;
        let types = match inputs.token_type_ids {
            Some(tt) => e
                .token_type
                .forward(tt, train)
                .map_err(|err| input_err("token_type_ids", err.to_string()))?,
            None => e
                .token_type
                .forward(&Tensor::zeros([b, t], DType::U32, &Device::Cpu)?, train)?,
        };
        let x = words
            .add(&types)?
            .add(&e.position.forward(&positions, train)?)?;
        let mut x = e.dropout.forward(&e.ln.forward(&x, train)?, train)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let prefix = match &self.hooks {
                Some(h) => h.prefix_kv(i, train)?,
                None => None,
            };
            x = layer.forward(&x, inputs.attention_mask, prefix.as_ref(), train)?;
        }
        let pooled = match &self.pooler {
            Some(p) => {
                let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
                Some(p.forward(&cls, train)?.tanh()?)
            }
            None => None,
        };
        Ok((x, pooled))
    }
}

impl Layer {
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        prefix: Option<&(Tensor, Tensor)>,
        train: bool,
    ) -> Result<Tensor> {
        let inputs = AttentionInputs {
            causal: false,
            key_padding_mask: mask,
            prefix: prefix.map(|(k, v)| (k, v)),
            scale: None,
        };
        let mut a = self
            .hidden_dropout
            .forward(&self.attention.forward(x, inputs, train)?, train)?;
        if let Some(m) = &self.after_attn {
            a = m.forward(&a, train)?;
        }
        let x = self.attn_ln.forward(&a.add(x)?, train)?;
        let h = self
            .act
            .forward(&self.intermediate.forward(&x, train)?, train)?;
        let mut o = self
            .hidden_dropout
            .forward(&self.output.forward(&h, train)?, train)?;
        if let Some(m) = &self.after_ffn {
            o = m.forward(&o, train)?;
        }
        Ok(self.out_ln.forward(&o.add(&x)?, train)?)
    }
}

/// BERT with the masked-language-model head (`cls.predictions`), decoder tied to the word
/// embedding.
pub struct BertForMaskedLm {
    bert: BertModel,
    transform: Box<dyn Module>,
    act: Activation,
    transform_ln: LayerNorm,
    decoder: Param,
    bias: Param,
}

impl BertForMaskedLm {
    /// Builds the model at `vb`'s root (`bert.…`, `cls.predictions.…`).
    pub fn new(cfg: &BertConfig, vb: &VarBuilder) -> Result<BertForMaskedLm> {
        let bert = BertModel::new(cfg, &vb.pp("bert"), false)?;
        let p = vb.pp("cls").pp("predictions");
        let h = cfg.hidden_size;
        Ok(BertForMaskedLm {
            transform: dense(&p.pp("transform").pp("dense"), h, h, cfg.initializer_range)?,
            act: Activation::from_hf(&cfg.hidden_act, "hidden_act")?,
            transform_ln: LayerNorm::new(
                &p.pp("transform").pp("LayerNorm"),
                h,
                cfg.layer_norm_eps,
            )?,
            decoder: bert.word_embeddings().weight().clone(),
            bias: p.get(&[cfg.vocab_size], "bias", Init::Zeros)?,
            bert,
        })
    }

    /// The encoder.
    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    /// Vocabulary logits `[B, T, vocab]` and the hidden states.
    pub fn forward(&self, ids: &Tensor, inputs: BertInputs) -> Result<(Tensor, Tensor)> {
        let train = inputs.train;
        let (hidden, _) = self.bert.forward(ids, inputs)?;
        Ok((self.head(&hidden, train)?, hidden))
    }

    /// Vocabulary logits `[M, vocab]` at `positions` only (`[M]` indices into the flattened
    /// `[B·T]` tokens): masked-LM training scores about 15 % of the tokens, and the head over a
    /// 30k vocabulary at every position would cost more than the encoder.
    pub fn forward_at(
        &self,
        ids: &Tensor,
        inputs: BertInputs,
        positions: &Tensor,
    ) -> Result<Tensor> {
        let train = inputs.train;
        let (hidden, _) = self.bert.forward(ids, inputs)?;
        let dims = hidden.dims().to_vec();
        let rows = hidden
            .reshape([dims[0] * dims[1], dims[2]])?
            .index_select(0, positions)?;
        self.head(&rows, train)
    }

    /// `cls.predictions`: dense, activation, layer norm, then the tied decoder and its bias.
    fn head(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.transform_ln.forward(
            &self
                .act
                .forward(&self.transform.forward(hidden, train)?, train)?,
            train,
        )?;
        Ok(
            ptm_nn::apply_weight(&h, &self.decoder.tensor(), WeightLayout::OutIn)?
                .add(&self.bias.tensor())?,
        )
    }

    /// Mean cross-entropy of `logits` `[B, T, V]` at the positions where `labels` `[B, T]` is not
    /// -100, as transformers.
    pub fn mlm_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        token_loss(logits, labels)
    }
}

fn token_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let dims = logits.dims().to_vec();
    let [b, t, c] = dims[..] else {
        return Err(input_err(
            "logits",
            format!("expected [batch, seq, classes], got {dims:?}"),
        ));
    };
    if labels.dims() != [b, t] {
        return Err(input_err(
            "labels",
            format!("shape {:?}, expected [{b}, {t}]", labels.dims()),
        ));
    }
    Ok(logits
        .reshape([b * t, c])?
        .cross_entropy(&labels.reshape([b * t])?, -100)?)
}

/// A linear classifier after dropout, as transformers' classification heads.
struct Classifier {
    dropout: Dropout,
    dense: Box<dyn Module>,
}

impl Classifier {
    fn new(cfg: &BertConfig, vb: &VarBuilder) -> Result<Classifier> {
        let p = cfg.classifier_dropout.unwrap_or(cfg.hidden_dropout_prob);
        Ok(Classifier {
            dropout: Dropout::new(p, vb.dropout_rng())?,
            dense: dense(
                &vb.pp("classifier"),
                cfg.hidden_size,
                cfg.num_labels(),
                cfg.initializer_range,
            )?,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self
            .dense
            .forward(&self.dropout.forward(x, train)?, train)?)
    }
}

/// BERT with a classifier on the pooled `[CLS]` output.
pub struct BertForSequenceClassification {
    bert: BertModel,
    head: Classifier,
}

impl BertForSequenceClassification {
    /// Builds the model at `vb`'s root (`bert.…`, `classifier.…`); `id2label` sets the labels.
    pub fn new(cfg: &BertConfig, vb: &VarBuilder) -> Result<BertForSequenceClassification> {
        Ok(BertForSequenceClassification {
            bert: BertModel::new(cfg, &vb.pp("bert"), true)?,
            head: Classifier::new(cfg, vb)?,
        })
    }

    /// The encoder.
    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    /// Logits `[B, num_labels]` and the hidden states.
    pub fn forward(&self, ids: &Tensor, inputs: BertInputs) -> Result<(Tensor, Tensor)> {
        let (hidden, pooled) = self.bert.forward(ids, inputs)?;
        let pooled = pooled.ok_or_else(|| input_err("model", "built without a pooler"))?;
        Ok((self.head.forward(&pooled, inputs.train)?, hidden))
    }

    /// transformers' loss for `labels` `[B]`: mean squared error with one label (regression,
    /// f32 labels), cross-entropy otherwise (integer labels).
    pub fn loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        if logits.dims().get(1) == Some(&1) {
            let diff = logits.squeeze(1)?.sub(&labels.to_dtype(logits.dtype())?)?;
            return Ok(diff.mul(&diff)?.mean_all()?);
        }
        Ok(logits.cross_entropy(labels, -100)?)
    }
}

/// BERT with a classifier on every token.
pub struct BertForTokenClassification {
    bert: BertModel,
    head: Classifier,
}

impl BertForTokenClassification {
    /// Builds the model at `vb`'s root (`bert.…`, `classifier.…`); no pooler, as transformers.
    pub fn new(cfg: &BertConfig, vb: &VarBuilder) -> Result<BertForTokenClassification> {
        Ok(BertForTokenClassification {
            bert: BertModel::new(cfg, &vb.pp("bert"), false)?,
            head: Classifier::new(cfg, vb)?,
        })
    }

    /// The encoder.
    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    /// Logits `[B, T, num_labels]` and the hidden states.
    pub fn forward(&self, ids: &Tensor, inputs: BertInputs) -> Result<(Tensor, Tensor)> {
        let (hidden, _) = self.bert.forward(ids, inputs)?;
        Ok((self.head.forward(&hidden, inputs.train)?, hidden))
    }

    /// Mean cross-entropy over tokens whose label is not -100.
    pub fn loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        token_loss(logits, labels)
    }
}

/// Sentence embeddings as sentence-transformers computes them for mean-pooling models such as
/// all-MiniLM-L6-v2: the mean of the last hidden states over real tokens (attention mask 1), then
/// L2-normalised. `hidden` `[B, T, H]`, `mask` `[B, T]` → `[B, H]`.
pub fn mean_pool_normalized(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(-1)?;
    let summed = hidden.mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.div(&counts)?;
    let norm = mean
        .mul(&mean)?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(mean.div(&norm)?)
}

/// Embeds `texts` with a mean-pooling sentence encoder (one padded batch): token ids from `tok`,
/// `[B, H]` L2-normalised vectors.
pub fn embed_sentences(
    model: &BertModel,
    tok: &crate::tokenizer::Tokenizer,
    texts: &[String],
) -> Result<Tensor> {
    let pad = model.config().pad_token_id.unwrap_or(0);
    let batch = tok.encode_batch(texts, true, pad)?;
    let _guard = ptm_tensor::no_grad();
    let inputs = BertInputs {
        attention_mask: Some(&batch.attention_mask),
        ..Default::default()
    };
    let (hidden, _) = model.forward(&batch.input_ids, inputs)?;
    mean_pool_normalized(&hidden, &batch.attention_mask)
}
