//! `vit-pretrain` and `vit-finetune`: transfer learning with a Vision Transformer, offline.
//!
//! No pretrained ViT exists in any registry here, so `vit-pretrain` trains a small one (28×28
//! grey images in 7×7 patches) to classify Fashion-MNIST (`cargo xtask fetch fashion-mnist`) and
//! caches it. `vit-finetune` transfers it to handwritten digits (`cargo xtask fetch
//! mnist-digits`, 10,000 MNIST images) with few labels — 10 and 100 per class by default — and
//! reports test accuracy for three uses of those labels: the pretrained ViT fine-tuned whole (a
//! new classifier), a linear probe on its frozen `[CLS]` features, and the same ViT trained from
//! scratch with the same steps and settings.
//!
//! The digit split is fixed: a permutation of the 10,000 images seeded by 42, its first 2,000 the
//! test set; the k labelled training images of each class are the first k of that class in the
//! rest of the permutation, so the 10-per-class set is inside the 100-per-class one.

use super::bert_features::{standardize, write_json};
use super::digest;
use crate::args::{SchedulerType, Strategy, TrainingArguments};
use crate::data::{permutation, Images, TrainData};
use crate::error::{data, setting, Result};
use crate::fetch;
use crate::plot::{loss_png, series_of, Series};
use crate::probe::{fit_linear_probe, ProbeSettings};
use crate::trainer::Trainer;
use ptm_models::vit::{VitConfig, VitForImageClassification};
use ptm_models::Checkpoint;
use ptm_tensor::{DType, Device, Rng, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the user chose on the command line.
#[derive(Clone, Debug, Default)]
pub struct VitOptions {
    /// Where the run writes (default `output/<recipe>`).
    pub output_dir: Option<PathBuf>,
    /// A Hugging Face ViT directory (ViTForImageClassification, 1 channel) to transfer instead
    /// of the pretrained small one.
    pub model: Option<PathBuf>,
    /// A directory with `images.idx` + `labels.idx` for the target task (default: the digits).
    pub data: Option<PathBuf>,
    /// A directory with `train-images.idx`, `train-labels.idx`, `test-images.idx`,
    /// `test-labels.idx` to pretrain on (default: Fashion-MNIST).
    pub source: Option<PathBuf>,
    /// A TOML/JSON file of fine-tuning settings.
    pub config: Option<PathBuf>,
    /// `key=value` fine-tuning settings, applied after the file.
    pub sets: Vec<String>,
    /// `key=value` pretraining settings.
    pub pretrain_sets: Vec<String>,
    /// Labelled training images per class, one fine-tuning round each (default 10 and 100).
    pub shots: Vec<usize>,
    /// A few images and steps: tests the wiring (CI).
    pub smoke: bool,
}

/// Fashion-MNIST's classes, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Digit images held out for testing.
pub const DIGIT_TEST: usize = 2000;

fn labels_map(names: &[String]) -> std::collections::BTreeMap<String, String> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (i.to_string(), n.clone()))
        .collect()
}

/// The small ViT pretrained by default: 16 patches of 7×7, width 96, 4 layers of 4 heads.
pub fn small_config(smoke: bool) -> VitConfig {
    let (hidden, layers) = if smoke { (32, 1) } else { (96, 4) };
    VitConfig {
        hidden_size: hidden,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        intermediate_size: 4 * hidden,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        image_size: 28,
        patch_size: 7,
        num_channels: 1,
        id2label: Some(labels_map(&FASHION_CLASSES.map(str::to_string))),
        ..Default::default()
    }
}

/// Default settings of the pretraining run: 2 epochs of Fashion-MNIST's 60,000 images in
/// batches of 128, AdamW lr 2e-3 with cosine decay after 5 % warm-up, weight decay 0.05.
pub fn pretrain_args(smoke: bool) -> TrainingArguments {
    TrainingArguments {
        num_train_epochs: 2.0,
        max_steps: if smoke { 4 } else { -1 },
        per_device_train_batch_size: if smoke { 16 } else { 128 },
        per_device_eval_batch_size: 500,
        learning_rate: 2e-3,
        weight_decay: 0.05,
        lr_scheduler_type: SchedulerType::Cosine,
        warmup_ratio: 0.05,
        logging_steps: if smoke { 1 } else { 20 },
        eval_strategy: Strategy::Steps,
        eval_steps: if smoke { 2 } else { 200 },
        save_strategy: Strategy::Steps,
        save_steps: if smoke { 2 } else { 200 },
        save_total_limit: 1,
        seed: 42,
        ..Default::default()
    }
}

/// Default settings of each fine-tuning run (transferred and from scratch alike): 150 steps of
/// 32 images, AdamW lr 5e-4 with linear decay after 10 % warm-up, weight decay 0.05.
pub fn finetune_args(smoke: bool, output_dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: output_dir.to_path_buf(),
        max_steps: if smoke { 3 } else { 150 },
        per_device_train_batch_size: 32,
        per_device_eval_batch_size: 500,
        learning_rate: 5e-4,
        weight_decay: 0.05,
        lr_scheduler_type: SchedulerType::Linear,
        warmup_ratio: 0.1,
        logging_steps: if smoke { 1 } else { 10 },
        eval_strategy: Strategy::Steps,
        eval_steps: if smoke { 2 } else { 50 },
        save_strategy: Strategy::No,
        seed: 42,
        ..Default::default()
    }
}

/// The figures of the pretraining (`metrics.json`, also kept beside the cached model).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct VitPretrainMetrics {
    /// Accuracy on the source's test images.
    pub test_accuracy: f64,
    /// Test images scored.
    pub n_test: usize,
    /// Training images.
    pub n_train: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Seconds in the training loop.
    pub train_s: f64,
    /// Parameters.
    pub parameters: usize,
    /// The cached model.
    pub model_dir: String,
    /// The source data.
    pub data: String,
}

/// The pretraining corpus: Fashion-MNIST's train and test images (the smoke run keeps a few).
fn source_images(opts: &VitOptions) -> Result<(Images, Images, PathBuf)> {
    let dir = match &opts.source {
        Some(p) => p.clone(),
        None => fetch::fetch("fashion-mnist")?,
    };
    let read = |part: &str| {
        Images::read(
            &dir.join(format!("{part}-images.idx")),
            &dir.join(format!("{part}-labels.idx")),
        )
    };
    let (mut train, mut test) = (read("train")?, read("test")?);
    if opts.smoke {
        train = train.subset(&(0..256).collect::<Vec<_>>());
        test = test.subset(&(0..100).collect::<Vec<_>>());
    }
    Ok((train, test, dir))
}

/// Accuracy of `ck` on `images` (no dropout, no gradients).
fn accuracy(ck: &Checkpoint<VitForImageClassification>, images: &Images, bs: usize) -> Result<f64> {
    let _g = ptm_tensor::no_grad();
    let idx: Vec<usize> = (0..images.len()).collect();
    let mut hits = 0;
    for chunk in idx.chunks(bs.max(1)) {
        let b = images.batch(chunk)?;
        let (logits, _) = ck.model.forward(&b.pixel_values, false)?;
        let pred = logits.argmax(1)?.to_dtype(DType::I64)?.to_vec::<i64>()?;
        let gold = b.labels.to_vec::<i64>()?;
        hits += pred.iter().zip(&gold).filter(|(p, g)| p == g).count();
    }
    Ok(hits as f64 / images.len().max(1) as f64)
}

/// Pretrains the small ViT on the source images, or returns the cached result of an identical
/// earlier run; the directory holds `config.json`, `model.safetensors`, `metrics.json` and
/// `loss.png`, the last two also copied into `output_dir` (default `output/vit-pretrain`).
pub fn pretrain(opts: &VitOptions) -> Result<(PathBuf, VitPretrainMetrics)> {
    let cfg = small_config(opts.smoke);
    let args0 = TrainingArguments::resolve(&pretrain_args(opts.smoke), None, &opts.pretrain_sets)?;
    let (train, test, src) = source_images(opts)?;
    let key = digest(&format!(
        "{}|{}|{}|{}",
        serde_json::to_string(&cfg).unwrap_or_default(),
        serde_json::to_string(&args0).unwrap_or_default(),
        src.display(),
        train.len()
    ));
    let dir = fetch::cache_dir()
        .join("models")
        .join(format!("vit-pretrain-{key}"));
    let out = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("output/vit-pretrain"));
    let read_metrics = |d: &Path| -> Result<VitPretrainMetrics> {
        let f = d.join("metrics.json");
        let text = std::fs::read_to_string(&f).map_err(|e| data(f.display(), e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| data(f.display(), e.to_string()))
    };
    // The figures and the curve go to output_dir whether the model was trained now or cached.
    let publish = |from: &Path| -> Result<VitPretrainMetrics> {
        std::fs::create_dir_all(&out).map_err(|e| data(out.display(), e.to_string()))?;
        let metrics = read_metrics(from)?;
        write_json(&out.join("metrics.json"), &metrics)?;
        let curve = from.join("loss.png");
        std::fs::copy(&curve, out.join("loss.png"))
            .map_err(|e| data(curve.display(), e.to_string()))?;
        Ok(metrics)
    };
    // A cache entry counts only when it holds every file this version writes: an entry left by
    // an older layout (say, without the curve) is trained again rather than published short.
    let complete = [".complete", "model.safetensors", "metrics.json", "loss.png"]
        .iter()
        .all(|f| dir.join(f).is_file());
    if complete {
        eprintln!("vit-pretrain: using the cached model {}", dir.display());
        return Ok((dir.clone(), publish(&dir)?));
    }
    let work = dir.with_extension("work");
    let args = TrainingArguments {
        output_dir: work.clone(),
        ..args0
    };
    eprintln!(
        "vit-pretrain: {} training and {} test images of {}x{} from {}",
        train.len(),
        test.len(),
        train.height,
        train.width,
        src.display()
    );
    let ck =
        Checkpoint::<VitForImageClassification>::from_config(cfg, DType::F32, args.seed, None)?;
    // A fixed sample of the test images for the curve; the full test set at the end.
    let eval = test.subset(&(0..test.len().min(2000)).collect::<Vec<_>>());
    let o = Trainer::new(&args, "vit-pretrain").train(&ck, &train, Some(&eval))?;
    if o.interrupted {
        return Err(data(
            work.display(),
            "pretraining interrupted; a checkpoint was saved",
        ));
    }
    let metrics = VitPretrainMetrics {
        test_accuracy: accuracy(&ck, &test, args.per_device_eval_batch_size)?,
        n_test: test.len(),
        n_train: train.len(),
        steps: o.global_step,
        train_s: o.runtime_s,
        parameters: ck.params.counts().1,
        model_dir: dir.display().to_string(),
        data: src.display().to_string(),
    };
    eprintln!(
        "vit-pretrain: test accuracy {:.4} on {} images",
        metrics.test_accuracy, metrics.n_test
    );
    let (tr, ev) = series_of(&o.log_history);
    let curves = [
        Series {
            label: "train",
            points: tr,
        },
        Series {
            label: "test sample",
            points: ev,
        },
    ];
    ck.save_pretrained(&work)?;
    write_json(&work.join("metrics.json"), &metrics)?;
    loss_png(
        &work.join("loss.png"),
        "vit-pretrain: cross-entropy (Fashion-MNIST)",
        &curves,
    )?;
    std::fs::write(work.join(".complete"), format!("{:.1} s\n", o.runtime_s))
        .map_err(|e| data(work.display(), e.to_string()))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&work, &dir).map_err(|e| data(dir.display(), e.to_string()))?;
    publish(&dir)?;
    Ok((dir, metrics))
}

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
            Tensor::zeros(t.dims().to_vec(), t.dtype(), &Device::Cpu)
        };
        p.set(fresh)?;
    }
    Ok(())
}

/// Test accuracies of one label budget.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ShotResult {
    /// Labelled training images per class.
    pub per_class: usize,
    /// The pretrained ViT fine-tuned whole, with a new classifier.
    pub transferred: f64,
    /// A linear probe on the frozen pretrained `[CLS]` features.
    pub linear_probe: f64,
    /// The same ViT trained from scratch with the same steps and settings.
    pub scratch: f64,
    /// Seconds of the three.
    pub seconds: f64,
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
    /// How the linear probe trains (on standardised `[CLS]` features).
    pub probe: ProbeSettings,
    /// Seconds of the whole recipe, pretraining included when it ran.
    pub total_s: f64,
    /// The pretrained model.
    pub model: String,
    /// The digits.
    pub data: String,
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
    // Check the target data before the minutes of pretraining, not after.
    let (all, test_idx, pool_idx, data_dir) = target_split(opts, args.seed)?;
    let test = all.subset(&test_idx);
    let classes = all.num_classes();
    let mut train_idx = std::collections::BTreeMap::new();
    for &k in &shots {
        train_idx.insert(k, per_class(all.labels(), &pool_idx, k, classes)?);
    }
    let (model_dir, pretrain_metrics) = match &opts.model {
        Some(m) => (m.clone(), None),
        None => {
            let pre = VitOptions {
                output_dir: Some(out.join("pretrain")),
                ..opts.clone()
            };
            let (d, m) = pretrain(&pre)?;
            (d, Some(m))
        }
    };
    let base_cfg = VitConfig::from_file(&model_dir.join("config.json"))?;
    if (test.height, test.width) != (base_cfg.image_size, base_cfg.image_size)
        || base_cfg.num_channels != 1
    {
        return Err(setting(
            "model",
            format!(
                "{} takes {}-channel {}x{} images; the digits are 1-channel {}x{}",
                model_dir.display(),
                base_cfg.num_channels,
                base_cfg.image_size,
                base_cfg.image_size,
                test.height,
                test.width
            ),
        ));
    }
    let cfg = VitConfig {
        id2label: Some(labels_map(
            &(0..classes).map(|c| c.to_string()).collect::<Vec<_>>(),
        )),
        ..base_cfg
    };
    let split = format!(
        "permutation of the {} images seeded by {}; its first {} are the test set, the first k of each class in the rest the training set",
        all.len(),
        args.seed,
        test.len()
    );
    eprintln!("vit-finetune: {split}");
    write_json(
        &out.join("split.json"),
        &serde_json::json!({
            "rule": split, "images": data_dir.join("images.idx"), "test": test_idx,
            "train": train_idx.iter().map(|(k, v)| (k.to_string(), v)).collect::<std::collections::BTreeMap<_, _>>(),
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
        let train = all.subset(&train_idx[&k]);
        let run_args = |what: &str| TrainingArguments {
            output_dir: out.join(format!("{k}-per-class")).join(what),
            ..args.clone()
        };

        let pretrained = Checkpoint::<VitForImageClassification>::from_pretrained_with_config(
            &model_dir,
            cfg.clone(),
            DType::F32,
            None,
        )?;
        reset_classifier(&pretrained, args.seed)?;
        // The probe reads the encoder before fine-tuning changes it.
        let ytr: Vec<usize> = train.labels().iter().map(|&l| l as usize).collect();
        let yte: Vec<usize> = test.labels().iter().map(|&l| l as usize).collect();
        // Standardised with the training images' statistics, as bert-features does.
        let feats = Tensor::cat(
            &[
                cls_features(&pretrained, &train, bs)?,
                cls_features(&pretrained, &test, bs)?,
            ],
            0,
        )?;
        let feats = standardize(&feats, &(0..train.len()).collect::<Vec<_>>())?;
        let (ftr, fte) = (
            feats.narrow(0, 0, train.len())?,
            feats.narrow(0, train.len(), test.len())?,
        );
        let probe = fit_linear_probe((&ftr, &ytr), (&fte, &yte), classes, probe_settings)?;

        let ta = run_args("transferred");
        let o = Trainer::new(&ta, &format!("transfer k={k}")).train(
            &pretrained,
            &train,
            Some(&test),
        )?;
        let transferred = accuracy(&pretrained, &test, bs)?;

        let sa = run_args("scratch");
        let fresh = Checkpoint::<VitForImageClassification>::from_config(
            cfg.clone(),
            DType::F32,
            args.seed,
            None,
        )?;
        let so = Trainer::new(&sa, &format!("scratch k={k}")).train(&fresh, &train, Some(&test))?;
        let scratch = accuracy(&fresh, &test, bs)?;
        if o.interrupted || so.interrupted {
            return Err(data(out.display(), "interrupted"));
        }
        eprintln!(
            "vit-finetune: {k} per class: transferred {transferred:.4}, linear probe {:.4}, from scratch {scratch:.4}",
            probe.test_accuracy
        );
        for (label, log) in [
            ("transferred", &o.log_history),
            ("scratch", &so.log_history),
        ] {
            let (tr, _) = series_of(log);
            series.push((format!("{k}/class {label}: train"), tr));
        }
        steps = o.global_step;
        results.push(ShotResult {
            per_class: k,
            transferred,
            linear_probe: probe.test_accuracy,
            scratch,
            seconds: t0.elapsed().as_secs_f64(),
        });
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
        "vit-finetune: training cross-entropy on the digits",
        &curves,
    )?;
    let metrics = VitFinetuneMetrics {
        shots: results,
        n_test: test.len(),
        split,
        pretrain: pretrain_metrics,
        steps,
        probe: probe_settings,
        total_s: t_all.elapsed().as_secs_f64(),
        model: model_dir.display().to_string(),
        data: data_dir.display().to_string(),
    };
    write_json(&out.join("metrics.json"), &metrics)?;
    Ok(metrics)
}
