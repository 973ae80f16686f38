//! Labelled texts for classification: a `.jsonl` file of `{"text": …, "label": <class index>}`
//! lines, and a fixed, seeded train/test split.

use super::lm::permutation;
use crate::error::{data, Result};
use std::path::Path;

/// Texts with class indices `0..classes`.
#[derive(Clone, Debug)]
pub struct LabelledTexts {
    /// The texts, in file order.
    pub texts: Vec<String>,
    /// Their classes.
    pub labels: Vec<usize>,
    /// Number of classes (largest label + 1).
    pub classes: usize,
}

/// Reads `path`: one JSON object per line with a string `text` and a non-negative integer
/// `label`; errors name the file and line.
pub fn read_labelled(path: &Path) -> Result<LabelledTexts> {
    let text = std::fs::read_to_string(path).map_err(|e| data(path.display(), e.to_string()))?;
    let (mut texts, mut labels) = (vec![], vec![]);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| data(at(), e.to_string()))?;
        let t = v
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| data(at(), "no string field \"text\""))?;
        let l = v
            .get("label")
            .and_then(|l| l.as_u64())
            .ok_or_else(|| data(at(), "no non-negative integer field \"label\""))?;
        texts.push(t.to_string());
        labels.push(l as usize);
    }
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    if classes < 2 {
        return Err(data(
            path.display(),
            format!("{} examples of fewer than 2 classes", texts.len()),
        ));
    }
    Ok(LabelledTexts {
        texts,
        labels,
        classes,
    })
}

/// The split every classification recipe uses: a permutation of `0..n` seeded by `seed`
/// (`ptm_train::data::lm::permutation`); its first `round(n · test_fraction)` indices are the test
/// set, the rest the training set, each sorted ascending. The recipes write it to `split.json`, so
/// an independent reference replays exactly these examples.
pub fn split_indices(n: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let perm = permutation(n, seed);
    let n_test = ((n as f64) * test_fraction).round() as usize;
    let mut test = perm[..n_test.min(n)].to_vec();
    let mut train = perm[n_test.min(n)..].to_vec();
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_is_a_seeded_partition() {
        let (a, b) = super::split_indices(103, 0.2, 5);
        assert_eq!((a.len(), b.len()), (82, 21));
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        assert_eq!(super::split_indices(103, 0.2, 5), (a, b.clone()));
        assert_ne!(super::split_indices(103, 0.2, 6).1, b);
    }
}
