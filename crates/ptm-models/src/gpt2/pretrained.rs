//! GPT-2's classes as [`Architecture`]s: how their checkpoints are named and built.

use super::config::Gpt2Config;
use super::model::{Gpt2LmHeadModel, Gpt2Model};
use crate::error::Result;
use crate::pretrained::{Architecture, Checkpoint};
use ptm_nn::{LoadOptions, VarBuilder};
use std::path::Path;

/// A GPT-2 model loaded or built by ptm (`Gpt2Checkpoint::<Gpt2LmHeadModel>::from_pretrained`).
pub type Gpt2Checkpoint<M> = Checkpoint<M>;

/// The naming variants GPT-2 checkpoints carry: with or without `transformer.`, and the
/// `attn.bias` / `attn.masked_bias` mask buffers of older files, which are not parameters.
pub fn load_options() -> LoadOptions {
    LoadOptions {
        optional_prefixes: vec!["transformer.".into()],
        ignore_suffixes: vec![".attn.bias".into(), ".attn.masked_bias".into()],
        allow_missing: vec![],
    }
}

macro_rules! gpt2_architecture {
    ($model:ty, $class:literal) => {
        impl Architecture for $model {
            type Config = Gpt2Config;
            const CLASS: &'static str = $class;
            const MODEL_TYPE: &'static str = "gpt2";
            fn read_config(path: &Path) -> Result<Gpt2Config> {
                Gpt2Config::from_file(path)
            }
            fn set_class(cfg: &mut Gpt2Config) {
                cfg.architectures = Some(vec![$class.to_string()]);
            }
            fn load_options() -> LoadOptions {
                load_options()
            }
            fn build(cfg: &Gpt2Config, vb: &VarBuilder) -> Result<Self> {
                <$model>::new(cfg, vb)
            }
            fn attention_shape(cfg: &Gpt2Config) -> (usize, usize, usize) {
                (cfg.n_layer, cfg.n_head, cfg.n_embd)
            }
        }
    };
}

gpt2_architecture!(Gpt2Model, "GPT2Model");
gpt2_architecture!(Gpt2LmHeadModel, "GPT2LMHeadModel");
