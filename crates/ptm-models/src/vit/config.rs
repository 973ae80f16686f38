//! ViT's `config.json`, with transformers' defaults for absent keys.

use crate::config::{config_err, require_multiple, require_positive};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// ViT hyper-parameters, named and defaulted as `transformers.ViTConfig`. Keys ptm does not use
/// are kept in `extra` so that a saved config round-trips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VitConfig {
    /// Model width (768).
    pub hidden_size: usize,
    /// Encoder layers (12).
    pub num_hidden_layers: usize,
    /// Attention heads (12).
    pub num_attention_heads: usize,
    /// Feed-forward width (3072).
    pub intermediate_size: usize,
    /// Feed-forward activation (`gelu`).
    pub hidden_act: String,
    /// Dropout after embeddings and sub-layers (0.0).
    pub hidden_dropout_prob: f64,
    /// Dropout on attention weights (0.0).
    pub attention_probs_dropout_prob: f64,
    /// Std of the normal initialiser (0.02).
    pub initializer_range: f64,
    /// Layer-norm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// Input side in pixels (224).
    pub image_size: usize,
    /// Patch side in pixels (16).
    pub patch_size: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Biases on query/key/value (true).
    pub qkv_bias: bool,
    /// Label names by id; its size is the number of classes of the classification head.
    pub id2label: Option<std::collections::BTreeMap<String, String>>,
    /// Always `"vit"`.
    pub model_type: String,
    /// Class names, e.g. `["ViTForImageClassification"]`.
    pub architectures: Option<Vec<String>>,
    /// Keys ptm does not read, kept for saving.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for VitConfig {
    fn default() -> Self {
        VitConfig {
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            qkv_bias: true,
            id2label: None,
            model_type: "vit".into(),
            architectures: None,
            extra: Default::default(),
        }
    }
}

impl VitConfig {
    /// Reads and validates `config.json` at `path`.
    pub fn from_file(path: &Path) -> Result<VitConfig> {
        let cfg: VitConfig = crate::config::read_config(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks the values make a model; `path` names the source in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |msg: String| Err(config_err(path, msg));
        if self.model_type != "vit" {
            return err(format!("model_type is '{}', not 'vit'", self.model_type));
        }
        require_positive(
            path,
            &[
                ("hidden_size", self.hidden_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("intermediate_size", self.intermediate_size),
                ("image_size", self.image_size),
                ("patch_size", self.patch_size),
                ("num_channels", self.num_channels),
            ],
        )?;
        require_multiple(
            path,
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
        )?;
        require_multiple(
            path,
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
        )?;
        ptm_nn::Activation::from_hf(&self.hidden_act, "hidden_act")
            .map_err(|e| config_err(path, e.to_string()))?;
        Ok(())
    }

    /// Patches per image.
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Classes of the classification head (`id2label`'s size; 2 when absent, as transformers).
    pub fn num_labels(&self) -> usize {
        self.id2label.as_ref().map_or(2, |m| m.len().max(1))
    }
}
