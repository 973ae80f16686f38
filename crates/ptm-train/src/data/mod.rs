//! Language-model data: texts from files, directories or JSONL, tokenized, packed into blocks,
//! split and shuffled with a seed.

mod corpus;
pub(crate) mod lm;

pub use corpus::read_texts;
pub use lm::{LmBatch, LmData};
