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

/// transformers 5 names ViT's layers differently in memory than its checkpoints do (and than
/// ptm builds them): `encoder.layer.3.attention.attention.query` is `layers.3.attention.q_proj`,
/// `intermediate.dense` is `mlp.fc1`, `output.dense` is `mlp.fc2`. PEFT run with transformers 5
/// targets and saves adapters under those names.
pub fn transformers5_name(path: &str) -> Option<String> {
    let (head, rest) = match path.find("encoder.layer.") {
        Some(i) => (&path[..i], &path[i + "encoder.layer.".len()..]),
        None => return None,
    };
    let (index, module) = rest.split_once('.')?;
    index.parse::<usize>().ok()?;
    let renamed = match module {
        "attention.attention.query" => "attention.q_proj",
        "attention.attention.key" => "attention.k_proj",
        "attention.attention.value" => "attention.v_proj",
        "attention.output.dense" => "attention.o_proj",
        "intermediate.dense" => "mlp.fc1",
        "output.dense" => "mlp.fc2",
        _ => return None,
    };
    Some(format!("{head}layers.{index}.{renamed}"))
}

fn vit_with_pooler(cfg: &VitConfig, vb: &VarBuilder) -> Result<VitModel> {
    VitModel::new(cfg, vb, true)
}

macro_rules! vit_architecture {
    ($model:ty, $class:literal, $heads:expr, $build:path) => {
        impl Architecture for $model {
            type Config = VitConfig;
            const CLASS: &'static str = $class;
            const MODEL_TYPE: &'static str = "vit";
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
            fn attention_shape(cfg: &VitConfig) -> (usize, usize, usize) {
                (
                    cfg.num_hidden_layers,
                    cfg.num_attention_heads,
                    cfg.hidden_size,
                )
            }
            fn module_alias(path: &str) -> Option<String> {
                transformers5_name(path)
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
