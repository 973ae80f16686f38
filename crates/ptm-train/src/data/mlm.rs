//! Masked-language-model batches (BERT's pre-training objective, transformers'
//! `DataCollatorForLanguageModeling`): texts packed into blocks, `[CLS] block [SEP]`, and 15 % of
//! the block's tokens chosen for prediction; of those, 80 % become `[MASK]`, 10 % a random token
//! of the vocabulary, 10 % stay as they are. Labels hold the original token at chosen positions.
//!
//! Masks are drawn when a batch is made, from a stream seeded by the data's seed and the batch's
//! example indices: a reshuffled epoch masks afresh (dynamic masking, as RoBERTa), while the same
//! batch is masked the same way whenever it is drawn, so a resumed run sees exactly the masks the
//! uninterrupted one saw, and every evaluation scores the same masked tokens.

use super::lm::LmData;
use super::{TrainBatch, TrainData};
use crate::error::{data, Result};
use ptm_tensor::{Device, Rng, Tensor};

/// Token ids the masking needs.
#[derive(Clone, Copy, Debug)]
pub struct MlmSpecial {
    /// `[CLS]`, opening each block.
    pub cls: u32,
    /// `[SEP]`, closing it.
    pub sep: u32,
    /// `[MASK]`.
    pub mask: u32,
    /// Vocabulary size (random replacements are drawn from `0..vocab_size`).
    pub vocab_size: u32,
}

/// Blocks of text, masked per batch.
#[derive(Clone, Debug)]
pub struct MlmData {
    blocks: LmData,
    special: MlmSpecial,
    probability: f64,
    seed: u64,
}

/// One masked batch.
#[derive(Clone, Debug)]
pub struct MlmBatch {
    /// `[B, T]` ids after masking.
    pub input_ids: Tensor,
    /// `[M]` u32 indices of the scored positions in the flattened `[B·T]` tokens.
    pub positions: Tensor,
    /// `[M]` i64 original tokens at those positions.
    pub targets: Tensor,
    /// `[B, T]` i64: the original token where scored, -100 elsewhere (transformers' labels).
    pub labels: Tensor,
}

impl TrainBatch for MlmBatch {
    fn count(&self) -> usize {
        self.targets.elem_count()
    }
}

impl MlmData {
    /// Masked batches of `blocks` (each block `max_len − 2` pieces, without special tokens);
    /// `probability` of each piece is chosen (0.15 for BERT).
    pub fn new(
        blocks: LmData,
        special: MlmSpecial,
        probability: f64,
        seed: u64,
    ) -> Result<MlmData> {
        if !(probability > 0.0 && probability < 1.0) {
            return Err(data(
                "mlm_probability",
                format!("{probability} must be in (0, 1)"),
            ));
        }
        Ok(MlmData {
            blocks,
            special,
            probability,
            seed,
        })
    }

    /// Tokens per example, with `[CLS]` and `[SEP]`.
    pub fn seq_len(&self) -> usize {
        self.blocks.block_size() + 2
    }

    /// The masking stream of the batch `idx`.
    fn rng(&self, idx: &[usize]) -> Rng {
        super::batch_rng(self.seed, idx)
    }
}

/// A uniform draw in [0, 1) from the stream's top 53 bits.
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl TrainData for MlmData {
    type Batch = MlmBatch;

    fn len(&self) -> usize {
        self.blocks.len()
    }

    fn batch(&self, idx: &[usize]) -> Result<MlmBatch> {
        let sp = self.special;
        let t = self.seq_len();
        let mut rng = self.rng(idx);
        let (mut ids, mut labels) = (vec![], vec![]);
        let (mut positions, mut targets) = (vec![], vec![]);
        for &i in idx {
            let row = ids.len();
            ids.push(sp.cls as i64);
            labels.push(-100i64);
            for &tok in self.blocks.block(i) {
                // The [SEP] between joined texts is not a word to predict.
                let special = tok == sp.sep || tok == sp.cls;
                let chosen = !special && unit(&mut rng) < self.probability;
                if !chosen {
                    ids.push(tok as i64);
                    labels.push(-100);
                    continue;
                }
                let r = unit(&mut rng);
                let shown = if r < 0.8 {
                    sp.mask
                } else if r < 0.9 {
                    (rng.next_u64() % sp.vocab_size as u64) as u32
                } else {
                    tok
                };
                positions.push(ids.len() as u32);
                targets.push(tok as i64);
                ids.push(shown as i64);
                labels.push(tok as i64);
            }
            ids.push(sp.sep as i64);
            labels.push(-100);
            debug_assert_eq!(ids.len() - row, t);
        }
        // A batch with nothing chosen (tiny blocks, low probability) would have no loss: score
        // its first token unmasked rather than divide by zero.
        if positions.is_empty() {
            positions.push(1);
            targets.push(ids[1]);
            labels[1] = ids[1];
        }
        let (b, m) = (idx.len(), positions.len());
        let cpu = Device::Cpu;
        Ok(MlmBatch {
            input_ids: Tensor::from_vec(ids, [b, t], &cpu)?,
            positions: Tensor::from_vec(positions, [m], &cpu)?,
            targets: Tensor::from_vec(targets, [m], &cpu)?,
            labels: Tensor::from_vec(labels, [b, t], &cpu)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: MlmSpecial = MlmSpecial {
        cls: 1,
        sep: 2,
        mask: 3,
        vocab_size: 1000,
    };

    fn data(n_blocks: usize, block: usize) -> MlmData {
        let docs: Vec<Vec<u32>> = (0..n_blocks)
            .map(|d| {
                (0..block as u32)
                    .map(|i| 100 + (d as u32 * 7 + i) % 800)
                    .collect()
            })
            .collect();
        let lm = LmData::pack(&docs, None, block, "test").unwrap();
        MlmData::new(lm, SP, 0.15, 7).unwrap()
    }

    #[test]
    fn masking_follows_the_80_10_10_rule_and_labels_the_originals() {
        let d = data(400, 62);
        let idx: Vec<usize> = (0..400).collect();
        let b = d.batch(&idx).unwrap();
        let plain = d
            .blocks
            .batch(&idx)
            .unwrap()
            .input_ids
            .to_vec2::<u32>()
            .unwrap();
        let ids = b.input_ids.to_vec2::<i64>().unwrap();
        let labels = b.labels.to_vec2::<i64>().unwrap();
        let (mut chosen, mut masked, mut same, mut random) = (0, 0, 0, 0);
        for ((row, lab), orig) in ids.iter().zip(&labels).zip(&plain) {
            assert_eq!((row[0], row[63]), (1, 2), "[CLS] … [SEP]");
            assert_eq!((lab[0], lab[63]), (-100, -100), "specials never scored");
            for j in 0..62 {
                let (shown, label, o) = (row[j + 1], lab[j + 1], orig[j] as i64);
                if label == -100 {
                    assert_eq!(shown, o, "unchosen tokens are left alone");
                    continue;
                }
                assert_eq!(label, o, "the label is the original token");
                chosen += 1;
                match shown {
                    3 => masked += 1,
                    s if s == o => same += 1,
                    _ => random += 1,
                }
            }
        }
        let n = (400 * 62) as f64;
        let c = chosen as f64;
        // 24,800 tokens: the binomial standard deviation of the chosen share is 0.0023, of the
        // three shares among ~3,700 chosen tokens at most 0.0066; 4 sigma each.
        assert!((c / n - 0.15).abs() < 0.01, "chosen {}", c / n);
        assert!(
            (masked as f64 / c - 0.8).abs() < 0.027,
            "[MASK] {}",
            masked as f64 / c
        );
        assert!(
            (same as f64 / c - 0.1).abs() < 0.02,
            "kept {}",
            same as f64 / c
        );
        assert!(
            (random as f64 / c - 0.1).abs() < 0.02,
            "random {}",
            random as f64 / c
        );
        // positions/targets are the labelled entries, in order.
        let flat: Vec<i64> = labels.concat();
        let want: Vec<(u32, i64)> = flat
            .iter()
            .enumerate()
            .filter(|(_, &l)| l != -100)
            .map(|(i, &l)| (i as u32, l))
            .collect();
        let got: Vec<(u32, i64)> = b
            .positions
            .to_vec::<u32>()
            .unwrap()
            .into_iter()
            .zip(b.targets.to_vec::<i64>().unwrap())
            .collect();
        assert_eq!(got, want);
        assert_eq!(b.count(), chosen);
    }

    #[test]
    fn a_batch_masks_the_same_way_every_time_and_another_batch_differently() {
        let d = data(20, 30);
        let a = d
            .batch(&[3, 5, 7])
            .unwrap()
            .labels
            .to_vec2::<i64>()
            .unwrap();
        let again = d
            .batch(&[3, 5, 7])
            .unwrap()
            .labels
            .to_vec2::<i64>()
            .unwrap();
        let other = d
            .batch(&[5, 3, 7])
            .unwrap()
            .labels
            .to_vec2::<i64>()
            .unwrap();
        assert_eq!(a, again);
        // Block 3 is row 0 of the first draw and row 1 of the other.
        assert_ne!(
            a[0], other[1],
            "another draw of the same block is masked afresh"
        );
    }

    #[test]
    fn a_bad_probability_is_refused() {
        let lm = LmData::pack(&[vec![5; 10]], None, 5, "t").unwrap();
        let e = MlmData::new(lm, SP, 1.5, 0).unwrap_err().to_string();
        assert!(e.contains("mlm_probability"), "{e}");
    }
}
