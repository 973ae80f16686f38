//! BERT's classes as [`Architecture`]s: how their checkpoints are named and built.

use super::config::BertConfig;
use super::model::{
    BertForMaskedLm, BertForSequenceClassification, BertForTokenClassification, BertModel,
};
use crate::error::Result;
use crate::pretrained::{Architecture, Checkpoint};
use ptm_nn::{LoadOptions, VarBuilder};
use std::path::Path;

/// A BERT model loaded or built by ptm (`BertCheckpoint::<BertModel>::from_pretrained`).
pub type BertCheckpoint<M> = Checkpoint<M>;

/// The naming variants BERT checkpoints carry: with or without `bert.`, legacy
/// `LayerNorm.gamma/beta` (handled by every load), the `position_ids` buffer, the tied decoder;
/// `new_heads` may be absent and are then initialised (fine-tuning a new task head).
pub fn load_options(new_heads: &[&str]) -> LoadOptions {
    LoadOptions {
        optional_prefixes: vec!["bert.".into()],
        ignore_suffixes: vec![
            "position_ids".into(),
            "cls.predictions.decoder.weight".into(),
            "cls.predictions.decoder.bias".into(),
        ],
        allow_missing: new_heads.iter().map(|s| s.to_string()).collect(),
    }
}

macro_rules! bert_architecture {
    ($model:ty, $class:literal, $heads:expr, $build:path) => {
        impl Architecture for $model {
            type Config = BertConfig;
            const CLASS: &'static str = $class;
            const MODEL_TYPE: &'static str = "bert";
            fn read_config(path: &Path) -> Result<BertConfig> {
                BertConfig::from_file(path)
            }
            fn set_class(cfg: &mut BertConfig) {
                cfg.architectures = Some(vec![$class.to_string()]);
            }
            fn load_options() -> LoadOptions {
                load_options(&$heads)
            }
            fn build(cfg: &BertConfig, vb: &VarBuilder) -> Result<Self> {
                $build(cfg, vb)
            }
            fn attention_shape(cfg: &BertConfig) -> (usize, usize, usize) {
                (
                    cfg.num_hidden_layers,
                    cfg.num_attention_heads,
                    cfg.hidden_size,
                )
            }
        }
    };
}

/// `BertModel` as transformers builds it by default: with the pooler.
fn bert_with_pooler(cfg: &BertConfig, vb: &VarBuilder) -> Result<BertModel> {
    BertModel::new(cfg, vb, true)
}

// A checkpoint without a pooler (a masked-LM one) loads into BertModel with the pooler new.
bert_architecture!(BertModel, "BertModel", ["pooler."], bert_with_pooler);
bert_architecture!(
    BertForMaskedLm,
    "BertForMaskedLM",
    ["cls.predictions."],
    BertForMaskedLm::new
);
bert_architecture!(
    BertForSequenceClassification,
    "BertForSequenceClassification",
    ["classifier.", "bert.pooler."],
    BertForSequenceClassification::new
);
bert_architecture!(
    BertForTokenClassification,
    "BertForTokenClassification",
    ["classifier."],
    BertForTokenClassification::new
);
