//! Packing token streams into fixed-length blocks for causal language modelling (transformers'
//! `group_texts`): documents are joined with the end-of-text token and cut into `block_size`
//! pieces; labels are the inputs (the model shifts them).

use crate::error::{data, Result};
use ptm_tensor::{Device, Rng, Tensor};

/// Blocks of `block_size` token ids.
#[derive(Clone, Debug)]
pub struct LmData {
    blocks: Vec<Vec<u32>>,
    block_size: usize,
}

/// One batch: `input_ids` `[B, T]` (u32) and `labels` `[B, T]` (i64).
#[derive(Clone, Debug)]
pub struct LmBatch {
    /// Token ids.
    pub input_ids: Tensor,
    /// The same ids as targets (the loss shifts them).
    pub labels: Tensor,
    /// Tokens the loss counts (`B·(T−1)`).
    pub tokens: usize,
}

impl LmData {
    /// Packs tokenized documents, each followed by `eos`, into blocks; the remainder shorter than
    /// a block is dropped (as transformers does). `what` names the data in errors.
    pub fn pack(
        docs: &[Vec<u32>],
        eos: Option<u32>,
        block_size: usize,
        what: &str,
    ) -> Result<LmData> {
        let mut stream = vec![];
        for d in docs {
            stream.extend_from_slice(d);
            stream.extend(eos);
        }
        if stream.len() < block_size {
            return Err(data(
                what,
                format!(
                    "{} tokens, fewer than one block of {block_size}",
                    stream.len()
                ),
            ));
        }
        let blocks = stream
            .chunks_exact(block_size)
            .map(|c| c.to_vec())
            .collect();
        Ok(LmData { blocks, block_size })
    }

    /// Splits off a held-out part: a seeded random `fraction` of the blocks (at least one), so
    /// both parts sample the whole corpus. Returns `(train, held_out)`.
    pub fn split(self, fraction: f64, seed: u64) -> (LmData, LmData) {
        let n = self.blocks.len();
        let held = ((n as f64 * fraction).round() as usize).clamp(1, n.saturating_sub(1).max(1));
        let order = permutation(n, seed);
        let mut is_held = vec![false; n];
        for &i in &order[..held] {
            is_held[i] = true;
        }
        let (mut train, mut eval) = (vec![], vec![]);
        for (i, b) in self.blocks.into_iter().enumerate() {
            if is_held[i] {
                eval.push(b)
            } else {
                train.push(b)
            }
        }
        let bs = self.block_size;
        (
            LmData {
                blocks: train,
                block_size: bs,
            },
            LmData {
                blocks: eval,
                block_size: bs,
            },
        )
    }

    /// Keeps the first `n` blocks (a smaller run on the same data).
    pub fn truncate(&mut self, n: usize) {
        self.blocks.truncate(n);
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The ids of block `i`.
    pub fn block(&self, i: usize) -> &[u32] {
        &self.blocks[i]
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The batch of blocks `idx` (in that order).
    pub fn batch(&self, idx: &[usize]) -> Result<LmBatch> {
        let t = self.block_size;
        let ids: Vec<u32> = idx
            .iter()
            .flat_map(|&i| self.blocks[i].iter().copied())
            .collect();
        let input_ids = Tensor::from_vec(ids, [idx.len(), t], &Device::Cpu)?;
        let labels = input_ids.to_dtype(ptm_tensor::DType::I64)?;
        Ok(LmBatch {
            input_ids,
            labels,
            tokens: idx.len() * t.saturating_sub(1),
        })
    }
}

/// A seeded permutation of `0..n` (Fisher–Yates on ptm's xoshiro stream).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}
