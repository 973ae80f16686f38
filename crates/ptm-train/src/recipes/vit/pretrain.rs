//! `vit-pretrain`: the small ViT trained on Fashion-MNIST, cached by a digest of its settings.

use super::{accuracy, pretrain_args, small_config, VitOptions};
use crate::args::TrainingArguments;
use crate::data::Images;
use crate::error::{data, Result};
use crate::fetch;
use crate::plot::{loss_png, series_of, Series};
use crate::recipes::bert_features::write_json;
use crate::recipes::digest;
use crate::trainer::Trainer;
use ptm_models::vit::VitForImageClassification;
use ptm_models::Checkpoint;
use ptm_tensor::DType;
use std::path::{Path, PathBuf};

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
