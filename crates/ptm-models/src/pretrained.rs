//! Loading any architecture from a Hugging Face model directory and saving it back in the same
//! format: what every model class shares.

use crate::config::{config_err, write_json};
use crate::error::{input_err, io_err, Result};
use ptm_nn::{Hooks, LoadOptions, LoadReport, ParamStore, SharedRng, VarBuilder};
use ptm_tensor::DType;
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A model class that can be built from its configuration through a `VarBuilder`.
pub trait Architecture: Sized {
    /// Its `config.json` type.
    type Config: Clone + Serialize + DeserializeOwned;
    /// The transformers class name written into `architectures` (`"GPT2LMHeadModel"`).
    const CLASS: &'static str;
    /// transformers' `model_type` (`"gpt2"`); PEFT picks its default target modules by it.
    const MODEL_TYPE: &'static str;
    /// Reads and validates `config.json`.
    fn read_config(path: &Path) -> Result<Self::Config>;
    /// Sets the config's `architectures`.
    fn set_class(cfg: &mut Self::Config);
    /// The naming variants and buffers its checkpoints carry, and which parameters may be new.
    fn load_options() -> LoadOptions;
    /// Builds the model at the builder's root.
    fn build(cfg: &Self::Config, vb: &VarBuilder) -> Result<Self>;
    /// `(attention layers, heads per layer, model width)`: what prefix-tuning sizes its
    /// prefixes by.
    fn attention_shape(cfg: &Self::Config) -> (usize, usize, usize);
    /// The name transformers gives the module at `path` in memory, where it differs from the
    /// checkpoint's naming ptm builds with (ViT in transformers 5); adapters match and save either.
    fn module_alias(path: &str) -> Option<String> {
        let _ = path;
        None
    }
}

/// A model loaded or built by ptm, with its parameters and configuration.
pub struct Checkpoint<M: Architecture> {
    /// The model.
    pub model: M,
    /// Its parameters by Hugging Face name.
    pub params: ParamStore,
    /// Its dropout stream.
    pub dropout_rng: SharedRng,
    /// Its configuration.
    pub config: M::Config,
    /// Tensors of the file the model did not use and parameters it initialised (empty when built
    /// from scratch).
    pub report: LoadReport,
}

impl<M: Architecture> Checkpoint<M> {
    /// Loads `config.json` + `model.safetensors` from `dir`, parameters cast to `dtype`; `hooks`
    /// may change layers while the model is built (PEFT).
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        dtype: DType,
        hooks: Option<Arc<dyn Hooks>>,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let config = M::read_config(&dir.join("config.json"))?;
        Self::from_pretrained_with_config(dir, config, dtype, hooks)
    }

    /// As [`Checkpoint::from_pretrained`] with `config` instead of the directory's `config.json`
    /// (a new number of labels for a classifier head, other dropout): the weights come from
    /// `dir/model.safetensors`.
    pub fn from_pretrained_with_config(
        dir: impl AsRef<Path>,
        config: M::Config,
        dtype: DType,
        hooks: Option<Arc<dyn Hooks>>,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let weights = weights_file(dir)?;
        let loaded = VarBuilder::load(&weights, dtype, M::load_options(), 0, hooks, |vb| {
            M::build(&config, vb)
        })?;
        Ok(Checkpoint {
            model: loaded.model,
            params: loaded.params,
            dropout_rng: loaded.dropout_rng,
            config,
            report: loaded.report,
        })
    }

    /// A freshly initialised model (transformers' initialisation), seeded.
    pub fn from_config(
        config: M::Config,
        dtype: DType,
        seed: u64,
        hooks: Option<Arc<dyn Hooks>>,
    ) -> Result<Self> {
        let vb = VarBuilder::from_init_with_hooks(dtype, seed, hooks);
        Ok(Checkpoint {
            model: M::build(&config, &vb)?,
            params: vb.store(),
            dropout_rng: vb.dropout_rng(),
            config,
            report: LoadReport::default(),
        })
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed), as
    /// transformers' `save_pretrained` does; each file appears whole or not at all.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut config = self.config.clone();
        M::set_class(&mut config);
        let json = serde_json::to_value(&config).map_err(|e| config_err(dir, e.to_string()))?;
        write_json(&json, &dir.join("config.json"))?;
        self.params.save(dir.join("model.safetensors"))?;
        Ok(())
    }
}

/// `dir/model.safetensors`, or an error that says what the directory holds instead.
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(input_err(
            dir.display().to_string(),
            "no such model directory",
        ));
    }
    let file = dir.join("model.safetensors");
    if file.is_file() {
        return Ok(file);
    }
    let hint = if dir.join("pytorch_model.bin").exists() {
        " (it has pytorch_model.bin: ptm reads safetensors only; convert with transformers' \
         save_pretrained(..., safe_serialization=True))"
    } else if dir.join("model.safetensors.index.json").exists() {
        " (sharded checkpoints are not read yet)"
    } else {
        ""
    };
    Err(input_err(
        file.display().to_string(),
        format!("missing{hint}"),
    ))
}
