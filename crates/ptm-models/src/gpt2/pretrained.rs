//! Loading GPT-2 from a Hugging Face model directory and saving it back in the same format.

use super::config::Gpt2Config;
use super::model::{Gpt2LmHeadModel, Gpt2Model};
use crate::config::write_json;
use crate::error::{io_err, Result};
use crate::pretrained::weights_file;
use ptm_nn::{Hooks, LoadOptions, LoadReport, ParamStore, SharedRng, VarBuilder};
use ptm_tensor::DType;
use std::path::Path;
use std::sync::Arc;

/// The naming variants GPT-2 checkpoints carry: with or without `transformer.`, and the
/// `attn.bias` / `attn.masked_bias` mask buffers of older files, which are not parameters.
pub fn load_options() -> LoadOptions {
    LoadOptions {
        optional_prefixes: vec!["transformer.".into()],
        ignore_suffixes: vec![".attn.bias".into(), ".attn.masked_bias".into()],
        allow_missing: vec![],
    }
}

/// A GPT-2 model loaded or built by ptm, with its parameters and configuration.
pub struct Gpt2Checkpoint<M> {
    /// The model.
    pub model: M,
    /// Its parameters by Hugging Face name.
    pub params: ParamStore,
    /// Its dropout stream.
    pub dropout_rng: SharedRng,
    /// Its configuration.
    pub config: Gpt2Config,
    /// Tensors of the file the model did not use (empty when built from scratch).
    pub report: LoadReport,
}

macro_rules! checkpoint_impl {
    ($model:ty, $arch:literal) => {
        impl Gpt2Checkpoint<$model> {
            /// Loads `config.json` + `model.safetensors` from `dir`, parameters cast to `dtype`.
            pub fn from_pretrained(
                dir: impl AsRef<Path>,
                dtype: DType,
                hooks: Option<Arc<dyn Hooks>>,
            ) -> Result<Self> {
                let dir = dir.as_ref();
                let config = Gpt2Config::from_file(&dir.join("config.json"))?;
                let weights = weights_file(dir)?;
                let loaded = VarBuilder::load(&weights, dtype, load_options(), 0, hooks, |vb| {
                    <$model>::new(&config, vb)
                })?;
                Ok(Gpt2Checkpoint {
                    model: loaded.model,
                    params: loaded.params,
                    dropout_rng: loaded.dropout_rng,
                    config,
                    report: loaded.report,
                })
            }

            /// A freshly initialised model (transformers' initialisation), seeded.
            pub fn from_config(
                config: Gpt2Config,
                dtype: DType,
                seed: u64,
                hooks: Option<Arc<dyn Hooks>>,
            ) -> Result<Self> {
                let vb = VarBuilder::from_init_with_hooks(dtype, seed, hooks);
                Ok(Gpt2Checkpoint {
                    model: <$model>::new(&config, &vb)?,
                    params: vb.store(),
                    dropout_rng: vb.dropout_rng(),
                    config,
                    report: LoadReport::default(),
                })
            }

            /// Writes `config.json` and `model.safetensors` into `dir` (created if needed), as
            /// transformers' `save_pretrained` does: each file appears whole or not at all.
            pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
                let dir = dir.as_ref();
                std::fs::create_dir_all(dir).map_err(io_err(dir))?;
                let mut config = self.config.clone();
                config.architectures = Some(vec![$arch.to_string()]);
                let json = serde_json::to_value(&config)
                    .map_err(|e| crate::config::config_err(dir, e.to_string()))?;
                write_json(&json, &dir.join("config.json"))?;
                self.params.save(dir.join("model.safetensors"))?;
                Ok(())
            }
        }
    };
}

checkpoint_impl!(Gpt2Model, "GPT2Model");
checkpoint_impl!(Gpt2LmHeadModel, "GPT2LMHeadModel");
