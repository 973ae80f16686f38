//! Training data: language-model texts (files, directories or JSONL, tokenized, packed into
//! blocks, split and shuffled with a seed), labelled texts for classification with a fixed seeded
//! split, and bag-of-words features.

mod bow;
mod corpus;
mod labelled;
pub(crate) mod lm;

pub use bow::BagOfWords;
pub use corpus::read_texts;
pub use labelled::{read_labelled, split_indices, LabelledTexts};
pub use lm::{permutation, LmBatch, LmData};
