//! `bert-features`: a frozen pretrained BERT as a feature extractor with a new linear head (the
//! seed's first example), against a bag-of-words baseline on the same split.
//!
//! Defaults: the real all-MiniLM-L6-v2 (`cargo xtask fetch minilm`) and the 4,000 Rotten Tomatoes
//! sentences (`cargo xtask fetch rt-polarity`). The split is fixed: a permutation of the examples
//! seeded by `seed` (42), its first 20 % the test set (written to `split.json`). Features: the
//! `[CLS]` hidden state, and the mean of the hidden states over real tokens, L2-normalised (the
//! model's sentence embedding). Each feature set, and binary bag-of-words over the training
//! vocabulary (tokens seen twice or more), trains the same softmax-regression probe (full-batch
//! AdamW from zeros, [`crate::probe`]). `metrics.json` reports test accuracy for all three.

use super::BertOptions;
use crate::args::TrainingArguments;
use crate::data::{read_labelled, split_indices, BagOfWords, LabelledTexts};
use crate::error::{data, setting, Result};
use crate::fetch;
use crate::plot::{loss_png, Series};
use crate::probe::{fit_linear_probe, ProbeResult, ProbeSettings};
use ptm_models::bert::{mean_pool_normalized, BertCheckpoint, BertInputs, BertModel};
use ptm_models::tokenizer::Tokenizer;
use ptm_tensor::{DType, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The recipe's default settings, in TrainingArguments' names: the probe's steps, learning rate
/// and weight decay; the split's seed and test fraction; the feature batch size.
pub fn default_args(smoke: bool, output_dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: output_dir.to_path_buf(),
        max_steps: if smoke { 20 } else { 500 },
        learning_rate: 1e-2,
        weight_decay: 1e-2,
        seed: 42,
        eval_fraction: 0.2,
        per_device_eval_batch_size: 64,
        logging_steps: 25,
        ..Default::default()
    }
}

/// The figures of a run (`metrics.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct BertFeaturesMetrics {
    /// Test accuracy of the probe on the `[CLS]` features.
    pub test_accuracy_cls: f64,
    /// … on the mean-pooled features.
    pub test_accuracy_mean: f64,
    /// … of bag-of-words softmax regression.
    pub test_accuracy_bow: f64,
    /// The share of the larger class in the test set (what always guessing it scores).
    pub majority_baseline: f64,
    /// Every probe in full (accuracies, curve, seconds).
    pub probes: serde_json::Value,
    /// Training and test examples.
    pub n_train: usize,
    /// Test examples.
    pub n_test: usize,
    /// The encoder's features were standardised with the training rows' statistics (the
    /// bag-of-words presence features are not).
    pub standardized_features: bool,
    /// Bag-of-words vocabulary size.
    pub bow_vocabulary: usize,
    /// Feature width of the encoder.
    pub feature_width: usize,
    /// Seconds to compute the encoder's features for every example.
    pub feature_s: f64,
    /// Seconds of the whole recipe.
    pub total_s: f64,
    /// The probe's settings.
    pub settings: ProbeSettings,
    /// How the split was made.
    pub split: String,
    /// The encoder.
    pub model: String,
    /// The data.
    pub data: String,
}

/// `[CLS]` and mean-pooled features of `texts`, `[n, hidden]` each, in batches sorted by length
/// (less padding; results are put back in input order).
pub fn encode_features(
    model: &BertModel,
    tok: &Tokenizer,
    texts: &[String],
    batch: usize,
) -> Result<(Tensor, Tensor)> {
    let _guard = ptm_tensor::no_grad();
    let lens: Vec<usize> = tok
        .encode_many(texts, true)?
        .iter()
        .map(|ids| ids.len())
        .collect();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    let pad = model.config().pad_token_id.unwrap_or(0);
    let (mut cls_parts, mut mean_parts) = (vec![], vec![]);
    for chunk in order.chunks(batch.max(1)) {
        let chunk_texts: Vec<String> = chunk.iter().map(|&i| texts[i].clone()).collect();
        let b = tok.encode_batch(&chunk_texts, true, pad)?;
        let inputs = BertInputs {
            attention_mask: Some(&b.attention_mask),
            ..Default::default()
        };
        let (hidden, _) = model.forward(&b.input_ids, inputs)?;
        cls_parts.push(hidden.narrow(1, 0, 1)?.squeeze(1)?);
        mean_parts.push(mean_pool_normalized(&hidden, &b.attention_mask)?);
    }
    // Rows are in `order`; put them back in input order.
    let mut inverse = vec![0u32; order.len()];
    for (row, &i) in order.iter().enumerate() {
        inverse[i] = row as u32;
    }
    let inverse = Tensor::from_vec(inverse, [order.len()], &ptm_tensor::Device::Cpu)?;
    let cls = Tensor::cat(&cls_parts, 0)?.index_select(0, &inverse)?;
    let mean = Tensor::cat(&mean_parts, 0)?.index_select(0, &inverse)?;
    Ok((cls, mean))
}

/// The labelled examples and the recipe's fixed split of them.
pub(crate) struct Split {
    pub all: LabelledTexts,
    pub train: Vec<usize>,
    pub test: Vec<usize>,
    pub rule: String,
    pub data_path: PathBuf,
}

/// Reads the labelled data (default: the fetched Rotten Tomatoes sentences; every 20th with
/// `smoke`), splits it with `args.seed` and `args.eval_fraction`, and writes `split.json` into
/// `args.output_dir`. Every sentence-classification recipe splits this way, so their figures are
/// on the same test sentences.
pub(crate) fn load_split(
    data_opt: Option<&Path>,
    args: &TrainingArguments,
    smoke: bool,
    label: &str,
) -> Result<Split> {
    let out = &args.output_dir;
    std::fs::create_dir_all(out).map_err(|e| data(out.display(), e.to_string()))?;
    let data_path = match data_opt {
        Some(p) => p.to_path_buf(),
        None => fetch::fetch("rt-polarity")?.join("polarity.jsonl"),
    };
    let mut all = read_labelled(&data_path)?;
    if smoke {
        // Every 20th example: both classes, a few seconds.
        let keep: Vec<usize> = (0..all.texts.len()).step_by(20).collect();
        all.texts = keep.iter().map(|&i| all.texts[i].clone()).collect();
        all.labels = keep.iter().map(|&i| all.labels[i]).collect();
    }
    let (train, test) = split_indices(all.texts.len(), args.eval_fraction, args.seed);
    let rule = format!(
        "permutation of the {} examples seeded by {} (ptm's xoshiro Fisher-Yates); its first {} \
         are the test set; indices in split.json",
        all.texts.len(),
        args.seed,
        test.len()
    );
    write_json(
        &out.join("split.json"),
        &serde_json::json!({ "rule": rule, "train": train, "test": test }),
    )?;
    eprintln!(
        "{label}: {} training and {} test examples of {} classes from {}",
        train.len(),
        test.len(),
        all.classes,
        data_path.display()
    );
    Ok(Split {
        all,
        train,
        test,
        rule,
        data_path,
    })
}

fn pick(t: &Tensor, idx: &[usize]) -> Result<Tensor> {
    let i: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    let i = Tensor::from_vec(i, [idx.len()], &ptm_tensor::Device::Cpu)?;
    Ok(t.index_select(0, &i)?)
}

/// Each column minus its mean over the training rows, divided by its (population) standard
/// deviation there: the encoder's features differ in scale by orders of magnitude (the normalised
/// mean has entries near 0.05, `[CLS]` near 1), and a probe trained with one learning rate for all
/// needs them on one scale. Only training rows set the statistics.
pub(crate) fn standardize(x: &Tensor, train: &[usize]) -> Result<Tensor> {
    let xt = pick(x, train)?;
    let mu = xt.mean_keepdim(0)?;
    let sd = xt.var_keepdim(0, 0)?.sqrt()?.clamp(1e-6, f64::MAX)?;
    Ok(x.sub(&mu)?.div(&sd)?)
}

pub(crate) fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| data(path.display(), e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| data(path.display(), e.to_string()))
}

/// Runs the recipe; returns the metrics it wrote to `output_dir/metrics.json`.
pub fn run(opts: &BertOptions) -> Result<BertFeaturesMetrics> {
    let t_all = Instant::now();
    let args = opts.resolve_args("bert-features", default_args)?;
    let out = args.output_dir.clone();
    let model_dir = opts.model_dir()?;
    let Split {
        all,
        train,
        test,
        rule: split_rule,
        data_path,
    } = load_split(opts.data.as_deref(), &args, opts.smoke, "bert-features")?;
    let y_train: Vec<usize> = train.iter().map(|&i| all.labels[i]).collect();
    let y_test: Vec<usize> = test.iter().map(|&i| all.labels[i]).collect();
    let tok = Tokenizer::from_dir(&model_dir)?;
    let ck = BertCheckpoint::<BertModel>::from_pretrained(&model_dir, DType::F32, None)?;
    let t_feat = Instant::now();
    let (cls, mean) =
        encode_features(&ck.model, &tok, &all.texts, args.per_device_eval_batch_size)?;
    let feature_s = t_feat.elapsed().as_secs_f64();
    eprintln!(
        "bert-features: encoded {} texts in {feature_s:.1} s ({:.0} texts/s)",
        all.texts.len(),
        all.texts.len() as f64 / feature_s
    );
    let settings = ProbeSettings {
        steps: usize::try_from(args.max_steps)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| setting("max_steps", "the probe needs a positive number of steps"))?,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        log_every: args.logging_steps.max(1),
    };
    let probe = |x: &Tensor, what: &str| -> Result<ProbeResult> {
        let r = fit_linear_probe(
            (&pick(x, &train)?, &y_train),
            (&pick(x, &test)?, &y_test),
            all.classes,
            settings,
        )?;
        eprintln!(
            "bert-features: {what}: test accuracy {:.4} (train {:.4})",
            r.test_accuracy, r.train_accuracy
        );
        Ok(r)
    };
    let cls_r = probe(&standardize(&cls, &train)?, "[CLS] features")?;
    let mean_r = probe(&standardize(&mean, &train)?, "mean-pooled features")?;
    let train_texts: Vec<&String> = train.iter().map(|&i| &all.texts[i]).collect();
    let bow = BagOfWords::fit(train_texts.iter().copied(), 2);
    let x_bow = bow.features(all.texts.iter())?;
    let bow_r = probe(&x_bow, "bag of words")?;

    let mut log = String::new();
    for (name, r) in [("cls", &cls_r), ("mean", &mean_r), ("bow", &bow_r)] {
        for p in &r.curve {
            log.push_str(
                &serde_json::json!({"probe": name, "step": p.step, "loss": p.loss, "test_accuracy": p.test_accuracy})
                    .to_string(),
            );
            log.push('\n');
        }
    }
    std::fs::write(out.join("log.jsonl"), log).map_err(|e| data(out.display(), e.to_string()))?;
    let pts = |r: &ProbeResult| r.curve.iter().map(|p| (p.step as f64, p.loss)).collect();
    loss_png(
        &out.join("loss.png"),
        "bert-features: probe training loss (rt-polarity)",
        &[
            Series {
                label: "[CLS] features",
                points: pts(&cls_r),
            },
            Series {
                label: "mean-pooled features",
                points: pts(&mean_r),
            },
            Series {
                label: "bag of words",
                points: pts(&bow_r),
            },
        ],
    )?;
    let ones = y_test.iter().filter(|&&y| y == 1).count() as f64 / y_test.len().max(1) as f64;
    let metrics = BertFeaturesMetrics {
        test_accuracy_cls: cls_r.test_accuracy,
        test_accuracy_mean: mean_r.test_accuracy,
        test_accuracy_bow: bow_r.test_accuracy,
        majority_baseline: ones.max(1.0 - ones),
        probes: serde_json::json!({ "cls": cls_r, "mean": mean_r, "bow": bow_r }),
        n_train: train.len(),
        n_test: test.len(),
        standardized_features: true,
        bow_vocabulary: bow.vocab.len(),
        feature_width: *cls.dims().last().unwrap_or(&0),
        feature_s,
        total_s: t_all.elapsed().as_secs_f64(),
        settings,
        split: split_rule,
        model: model_dir.display().to_string(),
        data: data_path.display().to_string(),
    };
    write_json(&out.join("metrics.json"), &metrics)?;
    Ok(metrics)
}
