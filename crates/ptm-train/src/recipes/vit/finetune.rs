//! `vit-finetune`: the pretrained ViT transferred to the digits, beside a linear probe on its
//! frozen features and the same ViT trained from scratch, for each label budget and draw.

use super::pretrain::{pretrain, VitPretrainMetrics};
use super::{
    accuracy, finetune_args, labels_map, VitOptions, DEFAULT_DRAWS, DEFAULT_SHIFT, DIGIT_TEST,
};
use crate::args::TrainingArguments;
use crate::data::{permutation, Images, TrainData};
use crate::error::{data, setting, Result};
use crate::fetch;
use crate::plot::{loss_png, series_of, Series};
use crate::probe::{fit_linear_probe, ProbeSettings};
use crate::recipes::bert_features::{standardize, write_json};
use crate::trainer::Trainer;
use ptm_models::vit::{VitConfig, VitForImageClassification};
use ptm_models::Checkpoint;
use ptm_tensor::{DType, Device, Rng, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The digits and the recipe's fixed split: all images, the test indices, and the rest (the
/// training pool) in permutation order.
fn target_split(opts: &VitOptions, seed: u64) -> Result<(Images, Vec<usize>, Vec<usize>, PathBuf)> {
    let dir = match &opts.data {
        Some(p) => p.clone(),
        None => fetch::fetch("mnist-digits")?,
    };
    let all = Images::read(&dir.join("images.idx"), &dir.join("labels.idx"))?;
    let mut order = permutation(all.len(), seed);
    let n_test = if opts.smoke { 200 } else { DIGIT_TEST }.min(all.len() / 2);
    let pool = order.split_off(n_test);
    Ok((all, order, pool, dir))
}

/// The first `k` indices of each class in `pool` (in pool order), or an error naming the class
/// that has fewer.
fn per_class(labels: &[u8], pool: &[usize], k: usize, classes: usize) -> Result<Vec<usize>> {
    let mut taken = vec![0usize; classes];
    let mut idx = vec![];
    for &i in pool {
        let l = labels[i] as usize;
        if l < classes && taken[l] < k {
            taken[l] += 1;
            idx.push(i);
        }
    }
    if let Some(c) = taken.iter().position(|&t| t < k) {
        return Err(setting(
            "shots",
            format!("class {c} has only {} training images, {k} asked", taken[c]),
        ));
    }
    Ok(idx)
}

/// `[CLS]` features of the frozen encoder, `[n, hidden]`.
fn cls_features(
    ck: &Checkpoint<VitForImageClassification>,
    images: &Images,
    bs: usize,
) -> Result<Tensor> {
    let _g = ptm_tensor::no_grad();
    let idx: Vec<usize> = (0..images.len()).collect();
    let mut parts = vec![];
    for chunk in idx.chunks(bs.max(1)) {
        let b = images.batch(chunk)?;
        let (_, hidden) = ck.model.forward(&b.pixel_values, false)?;
        parts.push(hidden.narrow(1, 0, 1)?.squeeze(1)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Replaces the classifier of `ck` by a fresh one (normal(0, initializer_range) weights, zero
/// bias), as transformers initialises a new head; the source task's head does not transfer.
fn reset_classifier(ck: &Checkpoint<VitForImageClassification>, seed: u64) -> Result<()> {
    let mut rng = Rng::new(seed);
    for (name, p) in ck.params.all() {
        if !name.starts_with("classifier.") {
            continue;
        }
        let t = p.tensor();
        let fresh = if name.ends_with("weight") {
            let std = ck.config.initializer_range;
            Tensor::randn(
                0.0,
                std,
                t.dims().to_vec(),
                t.dtype(),
                &mut rng,
                &Device::Cpu,
            )?
        } else {
            Tensor::zeros(t.dims().to_vec(), t.dtype(), &Device::Cpu)?
        };
        p.set(fresh)?;
    }
    Ok(())
}

/// Test accuracies of one draw of labelled images.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DrawResult {
    /// Seed of the draw: its labelled images, initialisations, batch order and translations.
    pub seed: u64,
    /// The pretrained ViT fine-tuned whole, with a new classifier.
    pub transferred: f64,
    /// A linear probe on the frozen pretrained `[CLS]` features.
    pub linear_probe: f64,
    /// The same ViT trained from scratch, same steps and settings.
    pub scratch: f64,
    /// The same ViT trained from scratch without the random translations.
    pub scratch_no_shift: f64,
}

/// Test accuracies of one label budget: means and sample standard deviations over the draws.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ShotResult {
    /// Labelled training images per class.
    pub per_class: usize,
    /// Mean accuracy of the transferred ViT.
    pub transferred: f64,
    /// Its standard deviation over the draws.
    pub transferred_sd: f64,
    /// Mean accuracy of the linear probe.
    pub linear_probe: f64,
    /// Its standard deviation.
    pub linear_probe_sd: f64,
    /// Mean accuracy from scratch (same settings as the transferred run).
    pub scratch: f64,
    /// Its standard deviation.
    pub scratch_sd: f64,
    /// Mean accuracy from scratch without translations.
    pub scratch_no_shift: f64,
    /// Its standard deviation.
    pub scratch_no_shift_sd: f64,
    /// Each draw.
    pub draws: Vec<DrawResult>,
    /// Seconds of all the budget's runs.
    pub seconds: f64,
}

/// Mean and sample standard deviation (0 for a single value).
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

impl ShotResult {
    fn of(per_class: usize, draws: Vec<DrawResult>, seconds: f64) -> ShotResult {
        let stat = |f: fn(&DrawResult) -> f64| mean_sd(&draws.iter().map(f).collect::<Vec<_>>());
        let (transferred, transferred_sd) = stat(|d| d.transferred);
        let (linear_probe, linear_probe_sd) = stat(|d| d.linear_probe);
        let (scratch, scratch_sd) = stat(|d| d.scratch);
        let (scratch_no_shift, scratch_no_shift_sd) = stat(|d| d.scratch_no_shift);
        ShotResult {
            per_class,
            transferred,
            transferred_sd,
            linear_probe,
            linear_probe_sd,
            scratch,
            scratch_sd,
            scratch_no_shift,
            scratch_no_shift_sd,
            draws,
            seconds,
        }
    }
}

/// The figures of a `vit-finetune` run (`metrics.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct VitFinetuneMetrics {
    /// One entry per label budget.
    pub shots: Vec<ShotResult>,
    /// Test images.
    pub n_test: usize,
    /// How the split was made.
    pub split: String,
    /// The pretraining's own figures (when the default model was used).
    pub pretrain: Option<VitPretrainMetrics>,
    /// Optimizer steps of each fine-tuning run.
    pub steps: usize,
    /// Learning rate of each fine-tuning run.
    pub learning_rate: f64,
    /// Random translation of the fine-tuning images, pixels per axis.
    pub shift: usize,
    /// How the linear probe trains (on standardised `[CLS]` features).
    pub probe: ProbeSettings,
    /// Seconds of the whole recipe, pretraining included when it ran.
    pub total_s: f64,
    /// The pretrained model.
    pub model: String,
    /// The digits.
    pub data: String,
}

/// The pretrained model `vit-finetune` transfers: `--model`, or the (cached) small ViT.
fn base_model(opts: &VitOptions, out: &Path) -> Result<(PathBuf, Option<VitPretrainMetrics>)> {
    match &opts.model {
        Some(m) => Ok((m.clone(), None)),
        None => {
            let pre = VitOptions {
                output_dir: Some(out.join("pretrain")),
                ..opts.clone()
            };
            let (d, m) = pretrain(&pre)?;
            Ok((d, Some(m)))
        }
    }
}

/// The pretrained config with the digits' classes, after checking that it takes their images.
fn target_config(model_dir: &Path, test: &Images, classes: usize) -> Result<VitConfig> {
    let base = VitConfig::from_file(&model_dir.join("config.json"))?;
    if (test.height, test.width) != (base.image_size, base.image_size) || base.num_channels != 1 {
        return Err(setting(
            "model",
            format!(
                "{} takes {}-channel {}x{} images; the digits are 1-channel {}x{}",
                model_dir.display(),
                base.num_channels,
                base.image_size,
                base.image_size,
                test.height,
                test.width
            ),
        ));
    }
    Ok(VitConfig {
        id2label: Some(labels_map(
            &(0..classes).map(|c| c.to_string()).collect::<Vec<_>>(),
        )),
        ..base
    })
}

/// Runs `vit-finetune`; returns the metrics it wrote to `output_dir/metrics.json`.
pub fn finetune(opts: &VitOptions) -> Result<VitFinetuneMetrics> {
    let t_all = Instant::now();
    let out = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("output/vit-finetune"));
    let args = TrainingArguments::resolve(
        &finetune_args(opts.smoke, &out),
        opts.config.as_deref(),
        &opts.sets,
    )?;
    let out = args.output_dir.clone();
    std::fs::create_dir_all(&out).map_err(|e| data(out.display(), e.to_string()))?;
    let shots = if !opts.shots.is_empty() {
        opts.shots.clone()
    } else if opts.smoke {
        vec![2, 5]
    } else {
        vec![10, 100]
    };
    if shots.contains(&0) {
        return Err(setting("shots", "0 labelled images per class"));
    }
    let draws = opts
        .draws
        .unwrap_or(if opts.smoke { 1 } else { DEFAULT_DRAWS });
    if draws == 0 {
        return Err(setting("draws", "0 draws of labelled images"));
    }
    let shift = opts.shift.unwrap_or(DEFAULT_SHIFT);
    // Check the target data (and that every draw has enough images) before the minutes of
    // pretraining, not after. Draw d takes the first k of each class in the training pool
    // reordered by a permutation seeded by seed + d (draw 0: the pool's own order).
    let (all, test_idx, pool_idx, data_dir) = target_split(opts, args.seed)?;
    let test = all.subset(&test_idx);
    let classes = all.num_classes();
    let draw_seed = |d: usize| args.seed + d as u64;
    let mut train_idx: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for d in 0..draws {
        let pool: Vec<usize> = if d == 0 {
            pool_idx.clone()
        } else {
            let order = permutation(pool_idx.len(), draw_seed(d));
            order.iter().map(|&i| pool_idx[i]).collect()
        };
        for &k in &shots {
            train_idx.insert((k, d), per_class(all.labels(), &pool, k, classes)?);
        }
    }
    let (model_dir, pretrain_metrics) = base_model(opts, &out)?;
    let cfg = target_config(&model_dir, &test, classes)?;
    let split = format!(
        "permutation of the {} images seeded by {}; its first {} are the test set; draw d takes the first k of each class in the rest, reordered by a permutation seeded by {} + d for d > 0",
        all.len(),
        args.seed,
        test.len(),
        args.seed
    );
    eprintln!("vit-finetune: {split}");
    write_json(
        &out.join("split.json"),
        &serde_json::json!({
            "rule": split, "images": data_dir.join("images.idx"), "test": test_idx,
            "train": train_idx.iter().map(|((k, d), v)| (format!("{k}/class draw {d}"), v)).collect::<BTreeMap<_, _>>(),
        }),
    )?;
    let bs = args.per_device_eval_batch_size;
    let probe_settings = ProbeSettings {
        steps: if opts.smoke { 5 } else { 300 },
        learning_rate: 1e-2,
        weight_decay: 0.01,
        log_every: 50,
    };
    let mut results = vec![];
    let mut steps = 0;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = vec![];
    for &k in &shots {
        let t0 = Instant::now();
        let mut per_draw = vec![];
        for d in 0..draws {
            let seed = draw_seed(d);
            let train = all.subset(&train_idx[&(k, d)]);
            let run_args = |what: &str| TrainingArguments {
                output_dir: out
                    .join(format!("{k}-per-class"))
                    .join(format!("draw-{d}"))
                    .join(what),
                seed,
                ..args.clone()
            };
            let name = |what: &str| {
                if draws > 1 {
                    format!("{what} k={k} draw {d}")
                } else {
                    format!("{what} k={k}")
                }
            };
            let pretrained = Checkpoint::<VitForImageClassification>::from_pretrained_with_config(
                &model_dir,
                cfg.clone(),
                DType::F32,
                None,
            )?;
            reset_classifier(&pretrained, seed)?;
            // The probe reads the encoder before fine-tuning changes it, on untranslated images.
            let probe = probe_accuracy(&pretrained, &train, &test, classes, bs, probe_settings)?;
            // The fine-tuning runs (transferred and from scratch) see the same translated images.
            let shifted = train.clone().with_shift(shift, seed);
            let o = Trainer::new(&run_args("transferred"), &name("transfer")).train(
                &pretrained,
                &shifted,
                Some(&test),
            )?;
            let transferred = accuracy(&pretrained, &test, bs)?;
            let scratch_run =
                |what: &str, images: &Images| -> Result<(f64, crate::trainer::TrainOutcome)> {
                    let fresh = Checkpoint::<VitForImageClassification>::from_config(
                        cfg.clone(),
                        DType::F32,
                        seed,
                        None,
                    )?;
                    let o = Trainer::new(&run_args(what), &name(what)).train(
                        &fresh,
                        images,
                        Some(&test),
                    )?;
                    Ok((accuracy(&fresh, &test, bs)?, o))
                };
            let (scratch, so) = scratch_run("scratch", &shifted)?;
            let (scratch_no_shift, no) = scratch_run("scratch-no-shift", &train)?;
            if o.interrupted || so.interrupted || no.interrupted {
                return Err(data(out.display(), "interrupted"));
            }
            eprintln!(
                "vit-finetune: {k} per class, draw {d}: transferred {transferred:.4}, linear probe {probe:.4}, from scratch {scratch:.4} ({scratch_no_shift:.4} without translations)"
            );
            if d == 0 {
                for (label, log) in [
                    ("transferred", &o.log_history),
                    ("scratch", &so.log_history),
                ] {
                    let (tr, _) = series_of(log);
                    series.push((format!("{k}/class {label}: train"), tr));
                }
            }
            steps = o.global_step;
            per_draw.push(DrawResult {
                seed,
                transferred,
                linear_probe: probe,
                scratch,
                scratch_no_shift,
            });
        }
        results.push(ShotResult::of(k, per_draw, t0.elapsed().as_secs_f64()));
    }
    let curves: Vec<Series> = series
        .iter()
        .map(|(l, p)| Series {
            label: l.as_str(),
            points: p.clone(),
        })
        .collect();
    loss_png(
        &out.join("loss.png"),
        "vit-finetune: training cross-entropy on the digits (draw 0)",
        &curves,
    )?;
    let metrics = VitFinetuneMetrics {
        shots: results,
        n_test: test.len(),
        split,
        pretrain: pretrain_metrics,
        steps,
        learning_rate: args.learning_rate,
        shift,
        probe: probe_settings,
        total_s: t_all.elapsed().as_secs_f64(),
        model: model_dir.display().to_string(),
        data: data_dir.display().to_string(),
    };
    write_json(&out.join("metrics.json"), &metrics)?;
    Ok(metrics)
}

/// Test accuracy of a linear probe on the frozen, standardised `[CLS]` features of `ck` (the
/// statistics from the training images, as bert-features does).
fn probe_accuracy(
    ck: &Checkpoint<VitForImageClassification>,
    train: &Images,
    test: &Images,
    classes: usize,
    bs: usize,
    settings: ProbeSettings,
) -> Result<f64> {
    let ytr: Vec<usize> = train.labels().iter().map(|&l| l as usize).collect();
    let yte: Vec<usize> = test.labels().iter().map(|&l| l as usize).collect();
    let feats = Tensor::cat(
        &[cls_features(ck, train, bs)?, cls_features(ck, test, bs)?],
        0,
    )?;
    let feats = standardize(&feats, &(0..train.len()).collect::<Vec<_>>())?;
    let (ftr, fte) = (
        feats.narrow(0, 0, train.len())?,
        feats.narrow(0, train.len(), test.len())?,
    );
    Ok(fit_linear_probe((&ftr, &ytr), (&fte, &yte), classes, settings)?.test_accuracy)
}
