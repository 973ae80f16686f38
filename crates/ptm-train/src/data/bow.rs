//! Bag-of-words features: the baseline a pretrained encoder has to beat.
//!
//! Tokens are the lower-cased text split on whitespace (the Rotten Tomatoes sentences come
//! tokenised, punctuation separated); the vocabulary is every token seen at least `min_count` times
//! in the training texts, in code-point order; a text's feature vector marks which vocabulary tokens
//! it contains (1.0) — binary presence, the usual strong baseline for short texts. Simple enough to
//! replay exactly in any language (`tests/fixtures/replay_bert_features.py`).

use ptm_tensor::{Device, Tensor};
use std::collections::{BTreeMap, HashMap};

/// A vocabulary and the map from token to column.
#[derive(Clone, Debug)]
pub struct BagOfWords {
    /// Tokens by column.
    pub vocab: Vec<String>,
    index: HashMap<String, usize>,
}

fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split_whitespace().map(|t| t.to_lowercase())
}

impl BagOfWords {
    /// The vocabulary of `texts`: tokens occurring at least `min_count` times.
    pub fn fit<'a>(texts: impl IntoIterator<Item = &'a String>, min_count: usize) -> BagOfWords {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for t in texts {
            for tok in tokens(t) {
                *counts.entry(tok).or_default() += 1;
            }
        }
        let vocab: Vec<String> = counts
            .into_iter()
            .filter(|(_, c)| *c >= min_count)
            .map(|(t, _)| t)
            .collect();
        let index = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        BagOfWords { vocab, index }
    }

    /// `[texts, vocab]` f32 presence features.
    pub fn features<'a>(
        &self,
        texts: impl IntoIterator<Item = &'a String>,
    ) -> ptm_tensor::Result<Tensor> {
        let v = self.vocab.len();
        let mut out = vec![];
        let mut rows = 0;
        for t in texts {
            let mut row = vec![0f32; v];
            for tok in tokens(t) {
                if let Some(&i) = self.index.get(&tok) {
                    row[i] = 1.0;
                }
            }
            out.extend(row);
            rows += 1;
        }
        Tensor::from_vec(out, [rows, v], &Device::Cpu)
    }
}
