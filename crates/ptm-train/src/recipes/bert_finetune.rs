//! `bert-finetune`, `bert-lora`, `bert-adapter`: all-MiniLM-L6-v2 with a classification head
//! trained on the Rotten Tomatoes sentences — every weight, a LoRA adapter, or Houlsby bottleneck
//! adapters — on the same split as `bert-features` (seeded by 42, 800 test sentences), so the
//! figures sit beside the frozen-feature probes.
//!
//! The head is `BertForSequenceClassification`'s (pooler + dropout + linear, new); with an adapter
//! the encoder is frozen and the head trains whole (PEFT's `SEQ_CLS` `modules_to_save`).
//! `metrics.json` reports test accuracy, trainable parameters and time; the trained model (or
//! adapter, in PEFT's format) is saved in `output_dir`.

use super::bert_features::{load_split, write_json, Split};
use super::BertOptions;
use crate::args::{SchedulerType, Strategy, TrainingArguments};
use crate::data::{ClassifyData, TrainData};
use crate::error::{data, Result};
use crate::plot::{loss_png, series_of, Series};
use crate::probe::accuracy;
use crate::trainer::Trainer;
use crate::TrainModel;
use ptm_models::bert::{BertConfig, BertForSequenceClassification, BertInputs};
use ptm_models::tokenizer::Tokenizer;
use ptm_models::{Architecture, Checkpoint};
use ptm_peft::{BottleneckConfig, LoraConfig, PeftConfig, PeftKind, PeftModel, Placement, Targets};
use ptm_tensor::{DType, Tensor};
use std::path::Path;
use std::time::Instant;

/// How much of the model trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BertMethod {
    /// Every weight.
    Full,
    /// LoRA r 8 on query/value (PEFT's BERT default), the head whole.
    Lora,
    /// Houlsby bottleneck adapters (reduction 16), the head whole.
    Adapter,
}

impl BertMethod {
    /// The recipe name.
    pub fn recipe(self) -> &'static str {
        match self {
            BertMethod::Full => "bert-finetune",
            BertMethod::Lora => "bert-lora",
            BertMethod::Adapter => "bert-adapter",
        }
    }

    fn learning_rate(self) -> f64 {
        match self {
            BertMethod::Full => 5e-5,
            BertMethod::Lora => 1e-3,
            BertMethod::Adapter => 1e-3,
        }
    }

    fn adapter(self) -> Option<PeftConfig> {
        let kind = match self {
            BertMethod::Full => return None,
            BertMethod::Lora => PeftKind::Lora(LoraConfig {
                r: 8,
                lora_alpha: 16.0,
                lora_dropout: 0.1,
                target_modules: Some(Targets::names(&["query", "value"])),
                ..Default::default()
            }),
            BertMethod::Adapter => PeftKind::Bottleneck(BottleneckConfig {
                placement: Placement::Houlsby,
                reduction_factor: 16,
                non_linearity: "relu".into(),
                modules_to_save: None,
            }),
        };
        Some(PeftConfig::new(kind, Some("SEQ_CLS")))
    }
}

/// Default settings: 1 epoch of batches of 32, linear decay after 10 % warm-up, the split of
/// `bert-features`.
pub fn default_args(method: BertMethod, smoke: bool, output_dir: &Path) -> TrainingArguments {
    classifier_args(smoke, output_dir, 1.0, method.learning_rate())
}

/// What every fine-tuned BERT classifier recipe shares: `epochs` of 32 examples (3 steps with
/// `smoke`), AdamW at `learning_rate` with weight decay 0.01, linear decay after 10 % warm-up,
/// evaluation and a checkpoint each epoch, the split seeded by 42 with 20 % held out.
pub fn classifier_args(
    smoke: bool,
    output_dir: &Path,
    epochs: f64,
    learning_rate: f64,
) -> TrainingArguments {
    TrainingArguments {
        output_dir: output_dir.to_path_buf(),
        num_train_epochs: epochs,
        max_steps: if smoke { 3 } else { -1 },
        per_device_train_batch_size: 32,
        per_device_eval_batch_size: 64,
        learning_rate,
        weight_decay: 0.01,
        lr_scheduler_type: SchedulerType::Linear,
        warmup_ratio: 0.1,
        logging_steps: if smoke { 1 } else { 10 },
        eval_strategy: Strategy::Epoch,
        save_strategy: Strategy::Epoch,
        save_total_limit: 1,
        seed: 42,
        eval_fraction: 0.2,
        ..Default::default()
    }
}

/// The figures of a run (`metrics.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct BertFinetuneMetrics {
    /// `bert-finetune`, `bert-lora` or `bert-adapter`.
    pub recipe: String,
    /// Accuracy on the test sentences.
    pub test_accuracy: f64,
    /// Accuracy of the untrained head (before training), for reference.
    pub test_accuracy_before: f64,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// All parameters.
    pub all_params: usize,
    /// Seconds in the training loop.
    pub train_s: f64,
    /// Optimizer steps.
    pub steps: usize,
    /// Seconds of the whole recipe.
    pub total_s: f64,
    /// Training and test examples.
    pub n_train: usize,
    /// Test examples.
    pub n_test: usize,
    /// How the split was made.
    pub split: String,
    /// The encoder.
    pub model: String,
    /// The data.
    pub data: String,
}

/// Accuracy of `model` on `data` (batches of `bs`, no dropout, no gradients).
fn test_accuracy(
    model: &BertForSequenceClassification,
    data: &ClassifyData,
    bs: usize,
) -> Result<f64> {
    let _g = ptm_tensor::no_grad();
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut parts = vec![];
    for chunk in idx.chunks(bs.max(1)) {
        let b = data.batch(chunk)?;
        let inputs = BertInputs {
            attention_mask: Some(&b.attention_mask),
            token_type_ids: None,
            train: false,
        };
        parts.push(model.forward(&b.input_ids, inputs)?.0);
    }
    accuracy(&Tensor::cat(&parts, 0)?, data.labels())
}

/// Runs the recipe; returns the metrics it wrote to `output_dir/metrics.json`.
pub fn run(method: BertMethod, opts: &BertOptions) -> Result<BertFinetuneMetrics> {
    let t_all = Instant::now();
    let name = method.recipe();
    let args = opts.resolve_args(name, |smoke, out| default_args(method, smoke, out))?;
    let out = args.output_dir.clone();
    let model_dir = opts.model_dir()?;
    let Split {
        all,
        train,
        test,
        rule,
        data_path,
    } = load_split(opts.data.as_deref(), &args, opts.smoke, name)?;
    let tok = Tokenizer::from_dir(&model_dir)?;
    let mut cfg: BertConfig =
        BertForSequenceClassification::read_config(&model_dir.join("config.json"))?;
    cfg.id2label = Some(
        (0..all.classes)
            .map(|i| (i.to_string(), format!("LABEL_{i}")))
            .collect(),
    );
    let pad = cfg.pad_token_id.unwrap_or(0);
    let max_len = cfg.max_position_embeddings.min(128);
    let pick = |idx: &[usize]| -> Result<ClassifyData> {
        let texts: Vec<String> = idx.iter().map(|&i| all.texts[i].clone()).collect();
        let labels: Vec<usize> = idx.iter().map(|&i| all.labels[i]).collect();
        ClassifyData::new(&tok, &texts, &labels, max_len, pad)
    };
    let (train_data, test_data) = (pick(&train)?, pick(&test)?);
    let bs = args.per_device_eval_batch_size;
    let trainer = Trainer::new(&args, name);

    // The two model kinds train through one generic path.
    fn fit<T: TrainModel<crate::data::ClassifyBatch>>(
        trainer: &Trainer,
        model: &T,
        train: &ClassifyData,
        test: &ClassifyData,
    ) -> Result<crate::TrainOutcome> {
        trainer.train(model, train, Some(test))
    }
    let (before, outcome, after, counts) = match method.adapter() {
        None => {
            let ck = Checkpoint::<BertForSequenceClassification>::from_pretrained_with_config(
                &model_dir,
                cfg,
                DType::F32,
                None,
            )?;
            let before = test_accuracy(&ck.model, &test_data, bs)?;
            let o = fit(&trainer, &ck, &train_data, &test_data)?;
            let after = test_accuracy(&ck.model, &test_data, bs)?;
            ck.save_pretrained(out.join("final"))?;
            tok.save(out.join("final"))?;
            (before, o, after, ck.params.counts())
        }
        Some(adapter) => {
            let hooks = PeftModel::<BertForSequenceClassification>::hooks();
            let base = Checkpoint::<BertForSequenceClassification>::from_pretrained_with_config(
                &model_dir,
                cfg,
                DType::F32,
                Some(hooks.clone()),
            )?;
            let mut m = PeftModel::new(base, hooks)?;
            m.add_adapter("default", adapter, args.seed)?;
            eprintln!("{name}: {}", m.param_counts());
            let before = test_accuracy(m.model(), &test_data, bs)?;
            let o = fit(&trainer, &m, &train_data, &test_data)?;
            let after = test_accuracy(m.model(), &test_data, bs)?;
            m.save_adapter(out.join("adapter"), "default")?;
            let c = m.param_counts();
            (before, o, after, (c.trainable, c.all))
        }
    };
    if outcome.interrupted {
        return Err(data(
            out.display(),
            "interrupted; resume with --set resume_from_checkpoint=latest",
        ));
    }
    eprintln!("{name}: test accuracy {before:.4} before training, {after:.4} after");
    let (tr, ev) = series_of(&outcome.log_history);
    loss_png(
        &out.join("loss.png"),
        &format!("{name}: cross-entropy on rt-polarity"),
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
    let metrics = BertFinetuneMetrics {
        recipe: name.into(),
        test_accuracy: after,
        test_accuracy_before: before,
        trainable_params: counts.0,
        all_params: counts.1,
        train_s: outcome.runtime_s,
        steps: outcome.global_step,
        total_s: t_all.elapsed().as_secs_f64(),
        n_train: train.len(),
        n_test: test.len(),
        split: rule,
        model: model_dir.display().to_string(),
        data: data_path.display().to_string(),
    };
    write_json(&out.join("metrics.json"), &metrics)?;
    Ok(metrics)
}
