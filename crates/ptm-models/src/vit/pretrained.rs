//! ViT's classes as [`Architecture`]s: how their checkpoints are named and built.

use super::config::VitConfig;
use super::model::{VitForImageClassification, VitModel};
use crate::error::Result;
use crate::pretrained::{Architecture, Checkpoint};
use ptm_nn::{LoadOptions, VarBuilder};
use std::path::Path;

/// A ViT model loaded or built by ptm (`VitCheckpoint::<VitModel>::from_pretrained`).
pub type VitCheckpoint<M> = Checkpoint<M>;

/// Checkpoints with or without the `vit.` prefix; `new_heads` may be absent and initialised.
pub fn load_options(new_heads: &[&str]) -> LoadOptions {
    LoadOptions {
        optional_prefixes: vec!["vit.".into()],
        ignore_suffixes: vec![],
        allow_missing: new_heads.iter().map(|s| s.to_string()).collect(),
    }
}

fn vit_with_pooler(cfg: &VitConfig, vb: &VarBuilder) -> Result<VitModel> {
    VitModel::new(cfg, vb, true)
}

macro_rules! vit_architecture {
    ($model:ty, $class:literal, $heads:expr, $build:path) => {
        impl Architecture for $model {
            type Config = VitConfig;
            const CLASS: &'static str = $class;
            fn read_config(path: &Path) -> Result<VitConfig> {
                VitConfig::from_file(path)
            }
            fn set_class(cfg: &mut VitConfig) {
                cfg.architectures = Some(vec![$class.to_string()]);
            }
            fn load_options() -> LoadOptions {
                load_options(&$heads)
            }
            fn build(cfg: &VitConfig, vb: &VarBuilder) -> Result<Self> {
                $build(cfg, vb)
            }
        }
    };
}

vit_architecture!(VitModel, "ViTModel", ["pooler."], vit_with_pooler);
vit_architecture!(
    VitForImageClassification,
    "ViTForImageClassification",
    ["classifier."],
    VitForImageClassification::new
);
