//! GPT-2's `config.json`, with transformers' defaults for absent keys.

use crate::config::{config_err, require_multiple, require_positive, require_probabilities};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// GPT-2 hyper-parameters, named and defaulted as `transformers.GPT2Config`. Keys ptm does not use
/// are kept in `extra` so that a saved config round-trips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gpt2Config {
    /// Vocabulary size (50257).
    pub vocab_size: usize,
    /// Longest sequence (1024).
    pub n_positions: usize,
    /// Model width (768).
    pub n_embd: usize,
    /// Blocks (12).
    pub n_layer: usize,
    /// Attention heads (12).
    pub n_head: usize,
    /// Feed-forward width; `None` means `4·n_embd`.
    pub n_inner: Option<usize>,
    /// Feed-forward activation (`gelu_new`).
    pub activation_function: String,
    /// Dropout after each sub-layer (0.1).
    pub resid_pdrop: f64,
    /// Dropout on embeddings (0.1).
    pub embd_pdrop: f64,
    /// Dropout on attention weights (0.1).
    pub attn_pdrop: f64,
    /// Layer-norm epsilon (1e-5).
    pub layer_norm_epsilon: f64,
    /// Std of the normal initialiser (0.02).
    pub initializer_range: f64,
    /// Scale scores by 1/sqrt(head_dim) (true).
    pub scale_attn_weights: bool,
    /// Also scale scores by 1/(layer index + 1) (false).
    pub scale_attn_by_inverse_layer_idx: bool,
    /// The output layer shares the token embedding (true).
    pub tie_word_embeddings: bool,
    /// Beginning-of-text id (50256).
    pub bos_token_id: Option<u32>,
    /// End-of-text id (50256).
    pub eos_token_id: Option<u32>,
    /// Always `"gpt2"`.
    pub model_type: String,
    /// Class names, e.g. `["GPT2LMHeadModel"]`.
    pub architectures: Option<Vec<String>>,
    /// Keys ptm does not read, kept for saving.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for Gpt2Config {
    fn default() -> Self {
        Gpt2Config {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            n_inner: None,
            activation_function: "gelu_new".into(),
            resid_pdrop: 0.1,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            layer_norm_epsilon: 1e-5,
            initializer_range: 0.02,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            tie_word_embeddings: true,
            bos_token_id: Some(50256),
            eos_token_id: Some(50256),
            model_type: "gpt2".into(),
            architectures: None,
            extra: Default::default(),
        }
    }
}

impl Gpt2Config {
    /// Reads and validates `config.json` at `path`.
    pub fn from_file(path: &Path) -> Result<Gpt2Config> {
        let cfg: Gpt2Config = crate::config::read_config(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks the values make a model; `path` names the source in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |msg: String| Err(config_err(path, msg));
        if self.model_type != "gpt2" {
            return err(format!("model_type is '{}', not 'gpt2'", self.model_type));
        }
        require_positive(
            path,
            &[
                ("vocab_size", self.vocab_size),
                ("n_positions", self.n_positions),
                ("n_embd", self.n_embd),
                ("n_layer", self.n_layer),
                ("n_head", self.n_head),
            ],
        )?;
        require_multiple(path, ("n_embd", self.n_embd), ("n_head", self.n_head))?;
        require_probabilities(
            path,
            &[
                ("resid_pdrop", self.resid_pdrop),
                ("embd_pdrop", self.embd_pdrop),
                ("attn_pdrop", self.attn_pdrop),
            ],
        )?;
        ptm_nn::Activation::from_hf(&self.activation_function, "activation_function")
            .map_err(|e| config_err(path, e.to_string()))?;
        Ok(())
    }

    /// Feed-forward width.
    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}
