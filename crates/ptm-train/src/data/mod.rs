//! Training data: language-model texts (files, directories or JSONL, tokenized, packed into
//! blocks, split and shuffled with a seed), labelled texts for classification with a fixed seeded
//! split, and bag-of-words features.

mod bow;
mod classify;
mod corpus;
mod images;
mod labelled;
pub(crate) mod lm;
mod mlm;
mod tagging;

pub use bow::BagOfWords;
pub use classify::{ClassifyBatch, ClassifyData};
pub use corpus::read_texts;
pub use images::{idx_bytes, read_idx, ImageBatch, Images};
pub use labelled::{read_labelled, split_indices, LabelledTexts};
pub use lm::{permutation, LmBatch, LmData};
pub use mlm::{MlmBatch, MlmData, MlmSpecial};
pub use tagging::{align, read_tagged, TagBatch, TagData, Tagged};

/// A batch the trainer can weigh: its loss is a mean over `count()` items (counted tokens for a
/// language model, examples for a classifier), which weights it in evaluation averages and
/// throughput figures.
pub trait TrainBatch {
    /// The items the batch's mean loss is over.
    fn count(&self) -> usize;
}

/// A random stream for the batch of the examples `idx`: `seed` and the indices mixed (FNV-1a).
/// Random choices made per batch (masks, augmentations) come from it, so a reshuffled epoch draws
/// afresh while a batch drawn again (a resumed run, an evaluation) is drawn the same way.
pub(crate) fn batch_rng(seed: u64, idx: &[usize]) -> ptm_tensor::Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &i in idx {
        for b in (i as u64).to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    ptm_tensor::Rng::new(h)
}

/// A training set the trainer draws batches from by index.
pub trait TrainData {
    /// What one batch is.
    type Batch: TrainBatch;
    /// Examples (blocks, sentences) held.
    fn len(&self) -> usize;
    /// Whether it holds nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The batch of the examples at `idx`.
    fn batch(&self, idx: &[usize]) -> crate::Result<Self::Batch>;
}

impl TrainBatch for LmBatch {
    fn count(&self) -> usize {
        self.tokens
    }
}

impl TrainData for LmData {
    type Batch = LmBatch;
    fn len(&self) -> usize {
        LmData::len(self)
    }
    fn batch(&self, idx: &[usize]) -> crate::Result<LmBatch> {
        LmData::batch(self, idx)
    }
}
