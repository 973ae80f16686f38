//! BERT (Devlin et al., 2019) as transformers implements it.

mod config;
mod model;
mod pretrained;

pub use config::BertConfig;
pub use model::{
    embed_sentences, mean_pool_normalized, BertForMaskedLm, BertForSequenceClassification,
    BertForTokenClassification, BertInputs, BertModel,
};
pub use pretrained::{load_options, BertCheckpoint};
