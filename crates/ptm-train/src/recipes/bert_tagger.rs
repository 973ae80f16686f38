//! `bert-tagger`: part-of-speech tagging with `BertForTokenClassification` (the seed's cross-task
//! example), all-MiniLM-L6-v2 fine-tuned on OANC sentences tagged with Penn Treebank tags
//! (`cargo xtask fetch oanc-pos`), against the most-frequent-tag baseline.
//!
//! Data: the first 4,000 sentences of the corpus (`--set max_examples=` is not a setting; use
//! `--data` for another file), split as every ptm classification recipe splits (a permutation
//! seeded by 42, its first 20 % the test set, `split.json`). Sub-words are aligned as transformers
//! does it: a word's tag on its first piece, -100 on the rest. The baseline tags each test word
//! with the tag it had most often in the training sentences (ties: the tag first in code-point
//! order), unknown words with the most frequent tag overall. Both are scored on every test word.

use super::bert_features::write_json;
use super::bert_finetune::classifier_args;
use super::BertOptions;
use crate::args::TrainingArguments;
use crate::data::{read_tagged, split_indices, TagData, Tagged, TrainData};
use crate::error::{data, Result};
use crate::fetch;
use crate::plot::{loss_png, series_of, Series};
use crate::trainer::Trainer;
use ptm_models::bert::{BertConfig, BertForTokenClassification, BertInputs};
use ptm_models::tokenizer::Tokenizer;
use ptm_models::{Architecture, Checkpoint};
use ptm_tensor::DType;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// Sentences of the corpus the recipe uses by default (the rest keeps the run under 10 minutes).
pub const SENTENCES: usize = 4000;

/// Default settings: 1.5 epochs of 32 sentences (150 steps: the run stays under 10 minutes on 2
/// cores), lr 1.5e-4, linear decay after 10 % warm-up.
pub fn default_args(smoke: bool, output_dir: &Path) -> TrainingArguments {
    classifier_args(smoke, output_dir, 1.5, 1.5e-4)
}

/// The figures of a run (`metrics.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct BertTaggerMetrics {
    /// Accuracy of the fine-tuned tagger on the test words.
    pub token_accuracy: f64,
    /// Accuracy of the most-frequent-tag baseline on the same words.
    pub baseline_accuracy: f64,
    /// Test words that never occur in the training sentences, and the tagger's and the
    /// baseline's accuracy on them.
    pub unknown_words: usize,
    /// Tagger accuracy on unknown words.
    pub unknown_accuracy: f64,
    /// Baseline accuracy on unknown words.
    pub unknown_baseline_accuracy: f64,
    /// Test words scored.
    pub test_words: usize,
    /// Training and test sentences.
    pub n_train: usize,
    /// Test sentences.
    pub n_test: usize,
    /// The tag set.
    pub tags: Vec<String>,
    /// Seconds in the training loop.
    pub train_s: f64,
    /// Seconds of the whole recipe.
    pub total_s: f64,
    /// The encoder.
    pub model: String,
    /// The data.
    pub data: String,
}

/// The most frequent tag of each training word, and of all training words.
fn most_frequent_tags(train: &[&Tagged]) -> (BTreeMap<String, String>, String) {
    let mut per_word: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut overall: BTreeMap<&str, usize> = BTreeMap::new();
    for s in train {
        for (w, t) in s.words.iter().zip(&s.tags) {
            *per_word.entry(w).or_default().entry(t).or_default() += 1;
            *overall.entry(t).or_default() += 1;
        }
    }
    // Highest count; ties to the first tag in code-point order (BTreeMap iterates in order and
    // max_by_key keeps the last maximum, so iterate in reverse).
    let best = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .rev()
            .max_by_key(|(_, c)| **c)
            .map(|(t, _)| t.to_string())
            .unwrap_or_default()
    };
    let words = per_word
        .iter()
        .map(|(w, m)| (w.to_string(), best(m)))
        .collect();
    (words, best(&overall))
}

/// Runs the recipe; returns the metrics it wrote to `output_dir/metrics.json`.
pub fn run(opts: &BertOptions) -> Result<BertTaggerMetrics> {
    let t_all = Instant::now();
    let args = opts.resolve_args("bert-tagger", default_args)?;
    let out = args.output_dir.clone();
    let data_path = match &opts.data {
        Some(p) => p.clone(),
        None => fetch::fetch("oanc-pos")?.join("tagged.jsonl"),
    };
    let model_dir = opts.model_dir()?;
    let mut all = read_tagged(&data_path)?;
    if opts.data.is_none() {
        all.truncate(if opts.smoke { 200 } else { SENTENCES });
    }
    let (train_idx, test_idx) = split_indices(all.len(), args.eval_fraction, args.seed);
    write_json(
        &out.join("split.json"),
        &serde_json::json!({
            "rule": format!("permutation of the {} sentences seeded by {}; its first {} are the test set", all.len(), args.seed, test_idx.len()),
            "train": train_idx, "test": test_idx,
        }),
    )?;
    let train: Vec<&Tagged> = train_idx.iter().map(|&i| &all[i]).collect();
    let test: Vec<&Tagged> = test_idx.iter().map(|&i| &all[i]).collect();
    let tags: Vec<String> = all
        .iter()
        .flat_map(|s| s.tags.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let tag_id = |t: &str| {
        tags.binary_search_by(|x| x.as_str().cmp(t))
            .map_or(-100, |i| i as i64)
    };
    eprintln!(
        "bert-tagger: {} training and {} test sentences, {} tags, from {}",
        train.len(),
        test.len(),
        tags.len(),
        data_path.display()
    );

    let tok = Tokenizer::from_dir(&model_dir)?;
    let mut cfg: BertConfig =
        BertForTokenClassification::read_config(&model_dir.join("config.json"))?;
    cfg.id2label = Some(
        tags.iter()
            .enumerate()
            .map(|(i, t)| (i.to_string(), t.clone()))
            .collect(),
    );
    let pad = cfg.pad_token_id.unwrap_or(0);
    let max_len = cfg.max_position_embeddings.min(128);
    let train_data = TagData::new(&tok, &train, tag_id, max_len, pad)?;
    let test_data = TagData::new(&tok, &test, tag_id, max_len, pad)?;
    let ck = Checkpoint::<BertForTokenClassification>::from_pretrained_with_config(
        &model_dir,
        cfg,
        DType::F32,
        None,
    )?;
    let trainer = Trainer::new(&args, "bert-tagger");
    let outcome = trainer.train(&ck, &train_data, Some(&test_data))?;
    if outcome.interrupted {
        return Err(data(
            out.display(),
            "interrupted; resume with --set resume_from_checkpoint=latest",
        ));
    }
    ck.save_pretrained(out.join("final"))?;
    tok.save(out.join("final"))?;

    // Predictions on every scored test position, in sentence and word order.
    let predicted = {
        let _g = ptm_tensor::no_grad();
        let idx: Vec<usize> = (0..test_data.len()).collect();
        let mut pred = vec![];
        for chunk in idx.chunks(args.per_device_eval_batch_size.max(1)) {
            let b = test_data.batch(chunk)?;
            let inputs = BertInputs {
                attention_mask: Some(&b.attention_mask),
                token_type_ids: None,
                train: false,
            };
            let (logits, _) = ck.model.forward(&b.input_ids, inputs)?;
            let p = logits.argmax(2)?.to_dtype(DType::I64)?.to_vec2::<i64>()?;
            let l = b.labels.to_vec2::<i64>()?;
            for (pr, lr) in p.iter().zip(&l) {
                pred.push(
                    pr.iter()
                        .zip(lr)
                        .filter(|(_, l)| **l != -100)
                        .map(|(p, _)| *p)
                        .collect::<Vec<i64>>(),
                );
            }
        }
        pred
    };
    let (mft, most) = most_frequent_tags(&train);
    let (mut n, mut ok, mut base_ok) = (0usize, 0usize, 0usize);
    let (mut unk, mut unk_ok, mut unk_base_ok) = (0usize, 0usize, 0usize);
    for (s, p) in test.iter().zip(&predicted) {
        // A sentence cut at max_len scores only the words it kept.
        for ((w, t), &pi) in s.words.iter().zip(&s.tags).zip(p) {
            let gold = tag_id(t);
            let base = mft.get(w).unwrap_or(&most);
            let (hit, base_hit) = (pi == gold, base == t);
            n += 1;
            ok += hit as usize;
            base_ok += base_hit as usize;
            if !mft.contains_key(w) {
                unk += 1;
                unk_ok += hit as usize;
                unk_base_ok += base_hit as usize;
            }
        }
    }
    let frac = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    let metrics = BertTaggerMetrics {
        token_accuracy: frac(ok, n),
        baseline_accuracy: frac(base_ok, n),
        unknown_words: unk,
        unknown_accuracy: frac(unk_ok, unk),
        unknown_baseline_accuracy: frac(unk_base_ok, unk),
        test_words: n,
        n_train: train.len(),
        n_test: test.len(),
        tags,
        train_s: outcome.runtime_s,
        total_s: t_all.elapsed().as_secs_f64(),
        model: model_dir.display().to_string(),
        data: data_path.display().to_string(),
    };
    eprintln!(
        "bert-tagger: token accuracy {:.4}, most-frequent-tag baseline {:.4} ({} test words)",
        metrics.token_accuracy, metrics.baseline_accuracy, n
    );
    let (tr, ev) = series_of(&outcome.log_history);
    loss_png(
        &out.join("loss.png"),
        "bert-tagger: cross-entropy per word (OANC POS)",
        &[
            Series {
                label: "train",
                points: tr,
            },
            Series {
                label: "test",
                points: ev,
            },
        ],
    )?;
    write_json(&out.join("metrics.json"), &metrics)?;
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(words: &[&str], tags: &[&str]) -> Tagged {
        Tagged {
            words: words.iter().map(|w| w.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn most_frequent_tag_counts_and_breaks_ties_by_name() {
        let a = s(&["run", "run", "the"], &["VB", "NN", "DT"]);
        let b = s(&["run", "the"], &["NN", "DT"]);
        let c = s(&["up"], &["RP"]);
        let d = s(&["up"], &["IN"]);
        let (words, most) = most_frequent_tags(&[&a, &b, &c, &d]);
        assert_eq!(words["run"], "NN");
        assert_eq!(words["the"], "DT");
        assert_eq!(words["up"], "IN", "a 1-1 tie goes to the first tag by name");
        assert_eq!(most, "DT", "NN and DT 2 each: the tie goes to DT");
    }
}
