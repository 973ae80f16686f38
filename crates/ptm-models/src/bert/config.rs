//! BERT's `config.json`, with transformers' defaults for absent keys.

use crate::config::{config_err, require_multiple, require_positive, require_probabilities};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// BERT hyper-parameters, named and defaulted as `transformers.BertConfig`. Keys ptm does not use
/// are kept in `extra` so that a saved config round-trips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    /// Vocabulary size (30522).
    pub vocab_size: usize,
    /// Model width (768).
    pub hidden_size: usize,
    /// Encoder layers (12).
    pub num_hidden_layers: usize,
    /// Attention heads (12).
    pub num_attention_heads: usize,
    /// Feed-forward width (3072).
    pub intermediate_size: usize,
    /// Feed-forward activation (`gelu`, the erf form).
    pub hidden_act: String,
    /// Dropout after embeddings and sub-layers (0.1).
    pub hidden_dropout_prob: f64,
    /// Dropout on attention weights (0.1).
    pub attention_probs_dropout_prob: f64,
    /// Longest sequence (512).
    pub max_position_embeddings: usize,
    /// Segment vocabulary (2).
    pub type_vocab_size: usize,
    /// Std of the normal initialiser (0.02).
    pub initializer_range: f64,
    /// Layer-norm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// Padding id (0).
    pub pad_token_id: Option<u32>,
    /// Only `absolute` is implemented.
    pub position_embedding_type: String,
    /// Dropout before a classifier head; `None` uses `hidden_dropout_prob`.
    pub classifier_dropout: Option<f64>,
    /// Label names by id; its size is the number of labels of a classification head.
    pub id2label: Option<std::collections::BTreeMap<String, String>>,
    /// Always `"bert"`.
    pub model_type: String,
    /// Class names, e.g. `["BertForMaskedLM"]`.
    pub architectures: Option<Vec<String>>,
    /// Keys ptm does not read, kept for saving.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for BertConfig {
    fn default() -> Self {
        BertConfig {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: Some(0),
            position_embedding_type: "absolute".into(),
            classifier_dropout: None,
            id2label: None,
            model_type: "bert".into(),
            architectures: None,
            extra: Default::default(),
        }
    }
}

impl BertConfig {
    /// Reads and validates `config.json` at `path`.
    pub fn from_file(path: &Path) -> Result<BertConfig> {
        let cfg: BertConfig = crate::config::read_config(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks the values make a model; `path` names the source in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |msg: String| Err(config_err(path, msg));
        if self.model_type != "bert" {
            return err(format!("model_type is '{}', not 'bert'", self.model_type));
        }
        require_positive(
            path,
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("intermediate_size", self.intermediate_size),
                ("max_position_embeddings", self.max_position_embeddings),
                ("type_vocab_size", self.type_vocab_size),
            ],
        )?;
        require_multiple(
            path,
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
        )?;
        if self.position_embedding_type != "absolute" {
            return err(format!(
                "position_embedding_type '{}' is not supported (only 'absolute')",
                self.position_embedding_type
            ));
        }
        require_probabilities(
            path,
            &[
                ("hidden_dropout_prob", self.hidden_dropout_prob),
                (
                    "attention_probs_dropout_prob",
                    self.attention_probs_dropout_prob,
                ),
                ("classifier_dropout", self.classifier_dropout.unwrap_or(0.0)),
            ],
        )?;
        ptm_nn::Activation::from_hf(&self.hidden_act, "hidden_act")
            .map_err(|e| config_err(path, e.to_string()))?;
        Ok(())
    }

    /// Labels of a classification head (`id2label`'s size; 2 when absent, as transformers).
    pub fn num_labels(&self) -> usize {
        self.id2label.as_ref().map_or(2, |m| m.len().max(1))
    }
}
