//! Tagged sentences for token classification, aligned to sub-word pieces as transformers'
//! token-classification examples do: each word's tag on its first piece, -100 (ignored) on the
//! other pieces and on the special tokens.

use super::{TrainBatch, TrainData};
use crate::error::{data, Result};
use ptm_models::tokenizer::Tokenizer;
use ptm_tensor::{Device, Tensor};
use std::path::Path;

/// A sentence: words and their tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tagged {
    /// The words.
    pub words: Vec<String>,
    /// One tag per word.
    pub tags: Vec<String>,
}

/// Reads a `.jsonl` of `{"words": [...], "tags": [...]}` lines; errors name the file and line.
pub fn read_tagged(path: &Path) -> Result<Vec<Tagged>> {
    let text = std::fs::read_to_string(path).map_err(|e| data(path.display(), e.to_string()))?;
    let mut out = vec![];
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| data(at(), e.to_string()))?;
        let list = |k: &str| -> Result<Vec<String>> {
            v.get(k)
                .and_then(|a| a.as_array())
                .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect())
                .ok_or_else(|| data(at(), format!("no list of strings \"{k}\"")))
        };
        let (words, tags) = (list("words")?, list("tags")?);
        if words.len() != tags.len() || words.is_empty() {
            return Err(data(
                at(),
                format!("{} words but {} tags", words.len(), tags.len()),
            ));
        }
        out.push(Tagged { words, tags });
    }
    Ok(out)
}

/// `[CLS] pieces… [SEP]` ids of `words` and the labels aligned to them: `tag_ids[w]` on word
/// `w`'s first piece, -100 elsewhere; at most `max_len` positions (words cut off at the end are
/// dropped whole).
pub fn align(
    tok: &Tokenizer,
    words: &[String],
    tag_ids: &[i64],
    max_len: usize,
) -> Result<(Vec<u32>, Vec<i64>)> {
    let wrapped = tok.encode("", true)?; // [CLS] [SEP] for BERT
    let (open, close) = match wrapped[..] {
        [a, b] => (vec![a], vec![b]),
        _ => (vec![], vec![]),
    };
    let mut ids = open.clone();
    let mut labels = vec![-100i64; open.len()];
    for (w, &tag) in words.iter().zip(tag_ids) {
        let pieces = tok.encode(w, false)?;
        let pieces = if pieces.is_empty() {
            tok.encode("[UNK]", false)?
        } else {
            pieces
        };
        if ids.len() + pieces.len() + close.len() > max_len {
            break;
        }
        labels.push(tag);
        labels.extend(std::iter::repeat_n(-100, pieces.len() - 1));
        ids.extend(pieces);
    }
    labels.extend(std::iter::repeat_n(-100, close.len()));
    ids.extend(close);
    Ok((ids, labels))
}

/// Sentences as aligned ids and labels.
#[derive(Clone, Debug)]
pub struct TagData {
    ids: Vec<Vec<u32>>,
    labels: Vec<Vec<i64>>,
    pad_id: u32,
}

/// One padded batch.
#[derive(Clone, Debug)]
pub struct TagBatch {
    /// `[B, T]` i64 ids.
    pub input_ids: Tensor,
    /// `[B, T]` i64: 1 for tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// `[B, T]` i64 tag ids, -100 where not scored.
    pub labels: Tensor,
    /// Scored words in the batch.
    pub words: usize,
}

impl TrainBatch for TagBatch {
    fn count(&self) -> usize {
        self.words
    }
}

impl TagData {
    /// Aligns every sentence (`tag_ids` maps a tag to its class).
    pub fn new(
        tok: &Tokenizer,
        sentences: &[&Tagged],
        tag_id: impl Fn(&str) -> i64,
        max_len: usize,
        pad_id: u32,
    ) -> Result<TagData> {
        let (mut ids, mut labels) = (vec![], vec![]);
        for s in sentences {
            let tags: Vec<i64> = s.tags.iter().map(|t| tag_id(t)).collect();
            let (i, l) = align(tok, &s.words, &tags, max_len)?;
            ids.push(i);
            labels.push(l);
        }
        Ok(TagData {
            ids,
            labels,
            pad_id,
        })
    }
}

impl TrainData for TagData {
    type Batch = TagBatch;

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn batch(&self, idx: &[usize]) -> Result<TagBatch> {
        let t = idx.iter().map(|&i| self.ids[i].len()).max().unwrap_or(0);
        let (mut ids, mut mask, mut labels) = (vec![], vec![], vec![]);
        let mut words = 0;
        for &i in idx {
            let (s, l) = (&self.ids[i], &self.labels[i]);
            let pad = t - s.len();
            ids.extend(s.iter().map(|&x| x as i64));
            ids.extend(std::iter::repeat_n(self.pad_id as i64, pad));
            mask.extend(std::iter::repeat_n(1i64, s.len()));
            mask.extend(std::iter::repeat_n(0i64, pad));
            labels.extend(l);
            labels.extend(std::iter::repeat_n(-100i64, pad));
            words += l.iter().filter(|&&x| x != -100).count();
        }
        let b = idx.len();
        Ok(TagBatch {
            input_ids: Tensor::from_vec(ids, [b, t], &Device::Cpu)?,
            attention_mask: Tensor::from_vec(mask, [b, t], &Device::Cpu)?,
            labels: Tensor::from_vec(labels, [b, t], &Device::Cpu)?,
            words,
        })
    }
}
