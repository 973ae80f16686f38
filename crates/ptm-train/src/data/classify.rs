//! Tokenised, labelled sentences for sequence classification, batched with padding to the
//! longest sentence of each batch.

use super::{TrainBatch, TrainData};
use crate::error::{data, Result};
use ptm_models::tokenizer::Tokenizer;
use ptm_tensor::{Device, Tensor};

/// Sentences as token ids (special tokens included, truncated) with their classes.
#[derive(Clone, Debug)]
pub struct ClassifyData {
    ids: Vec<Vec<u32>>,
    labels: Vec<usize>,
    pad_id: u32,
}

/// One padded batch.
#[derive(Clone, Debug)]
pub struct ClassifyBatch {
    /// `[B, T]` i64 token ids.
    pub input_ids: Tensor,
    /// `[B, T]` i64: 1 for tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// `[B]` i64 classes.
    pub labels: Tensor,
    /// Examples in the batch.
    pub examples: usize,
}

impl TrainBatch for ClassifyBatch {
    fn count(&self) -> usize {
        self.examples
    }
}

impl ClassifyData {
    /// Tokenises `texts` (with the model's special tokens), keeping at most `max_len` tokens
    /// (the last one kept is the closing special token), labels `labels`.
    pub fn new(
        tok: &Tokenizer,
        texts: &[String],
        labels: &[usize],
        max_len: usize,
        pad_id: u32,
    ) -> Result<ClassifyData> {
        if texts.len() != labels.len() {
            return Err(data(
                "classification data",
                format!("{} texts but {} labels", texts.len(), labels.len()),
            ));
        }
        let mut ids = tok.encode_many(texts, true)?;
        for s in &mut ids {
            if s.len() > max_len && max_len >= 2 {
                let last = s[s.len() - 1];
                s.truncate(max_len - 1);
                s.push(last);
            }
        }
        Ok(ClassifyData {
            ids,
            labels: labels.to_vec(),
            pad_id,
        })
    }

    /// The classes, in order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }
}

impl TrainData for ClassifyData {
    type Batch = ClassifyBatch;

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn batch(&self, idx: &[usize]) -> Result<ClassifyBatch> {
        let t = idx.iter().map(|&i| self.ids[i].len()).max().unwrap_or(0);
        let (mut ids, mut mask) = (vec![], vec![]);
        for &i in idx {
            let s = &self.ids[i];
            ids.extend(s.iter().map(|&x| x as i64));
            ids.extend(std::iter::repeat_n(self.pad_id as i64, t - s.len()));
            mask.extend(std::iter::repeat_n(1i64, s.len()));
            mask.extend(std::iter::repeat_n(0i64, t - s.len()));
        }
        let b = idx.len();
        let labels: Vec<i64> = idx.iter().map(|&i| self.labels[i] as i64).collect();
        Ok(ClassifyBatch {
            input_ids: Tensor::from_vec(ids, [b, t], &Device::Cpu)?,
            attention_mask: Tensor::from_vec(mask, [b, t], &Device::Cpu)?,
            labels: Tensor::from_vec(labels, [b], &Device::Cpu)?,
            examples: b,
        })
    }
}
