//! `vit-pretrain` and `vit-finetune`: transfer learning with a Vision Transformer, offline.
//!
//! No pretrained ViT exists in any registry here, so `vit-pretrain` trains a small one (28×28
//! grey images in 7×7 patches) to classify Fashion-MNIST (`cargo xtask fetch fashion-mnist`) and
//! caches it. `vit-finetune` transfers it to handwritten digits (`cargo xtask fetch
//! mnist-digits`, 10,000 MNIST images) with few labels — 10 and 100 per class by default — and
//! reports test accuracy for four uses of those labels: the pretrained ViT fine-tuned whole (a
//! new classifier), a linear probe on its frozen `[CLS]` features, and the same ViT trained from
//! scratch with the same steps and settings, with and without the random translations that
//! augment the fine-tuning images.
//!
//! The digit test set is fixed: a permutation of the 10,000 images seeded by 42, its first 2,000.
//! Each budget is run for several draws of labelled images (default 3): draw 0 takes the first k
//! of each class in the rest of the permutation (so its 10-per-class set is inside the
//! 100-per-class one), draw d > 0 the first k after reordering the rest with seed 42 + d. The
//! figures are means and standard deviations over the draws.

mod finetune;
mod pretrain;

pub use finetune::{finetune, DrawResult, ShotResult, VitFinetuneMetrics};
pub use pretrain::{pretrain, VitPretrainMetrics};

use crate::args::{SchedulerType, Strategy, TrainingArguments};
use crate::data::{Images, TrainData};
use crate::error::Result;
use ptm_models::vit::{VitConfig, VitForImageClassification};
use ptm_models::Checkpoint;
use ptm_tensor::DType;
use std::path::{Path, PathBuf};

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
    /// Random translation of the fine-tuning images, in pixels per axis (default
    /// [`DEFAULT_SHIFT`]; 0 turns it off).
    pub shift: Option<usize>,
    /// Draws of labelled images per budget (default [`DEFAULT_DRAWS`]).
    pub draws: Option<usize>,
    /// A few images and steps: tests the wiring (CI).
    pub smoke: bool,
}

/// Default random translation of the fine-tuning images (pixels per axis).
pub const DEFAULT_SHIFT: usize = 1;

/// Default draws of labelled images per budget.
pub const DEFAULT_DRAWS: usize = 3;

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
/// 32 images, AdamW lr 1e-3 with linear decay after 10 % warm-up, weight decay 0.05.
pub fn finetune_args(smoke: bool, output_dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: output_dir.to_path_buf(),
        max_steps: if smoke { 3 } else { 150 },
        per_device_train_batch_size: 32,
        per_device_eval_batch_size: 500,
        learning_rate: 1e-3,
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
