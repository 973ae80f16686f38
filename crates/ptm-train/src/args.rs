//! `TrainingArguments`: the knobs of a run, named and meant as in Hugging Face's Trainer, read from
//! a TOML or JSON file and overridden by `key=value` pairs, with one clear error per bad setting.

use crate::error::{setting, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// When to evaluate or save.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Never.
    No,
    /// Every `eval_steps` / `save_steps` optimizer steps.
    Steps,
    /// At the end of each epoch.
    Epoch,
}

/// The learning-rate schedule after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerType {
    /// Linear decay to 0 at the last step.
    Linear,
    /// Half-cosine decay to 0 at the last step.
    Cosine,
    /// Constant after warm-up.
    Constant,
}

/// Settings of a training run (Hugging Face `TrainingArguments` names and defaults where they
/// exist; `block_size` and `eval_fraction` describe the language-model data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingArguments {
    /// Where checkpoints, logs, metrics and the final model go.
    pub output_dir: PathBuf,
    /// Epochs over the training data (ignored when `max_steps` > 0).
    pub num_train_epochs: f64,
    /// Optimizer steps to run; overrides `num_train_epochs` when > 0.
    pub max_steps: i64,
    /// Sequences per micro-batch.
    pub per_device_train_batch_size: usize,
    /// Sequences per evaluation batch.
    pub per_device_eval_batch_size: usize,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay (not applied to biases and norm weights).
    pub weight_decay: f64,
    /// AdamW β1.
    pub adam_beta1: f64,
    /// AdamW β2.
    pub adam_beta2: f64,
    /// AdamW ε.
    pub adam_epsilon: f64,
    /// Gradients are rescaled to this global L2 norm when above it (0: no clipping).
    pub max_grad_norm: f64,
    /// Decay after warm-up.
    pub lr_scheduler_type: SchedulerType,
    /// Warm-up steps (takes precedence over `warmup_ratio` when > 0).
    pub warmup_steps: usize,
    /// Warm-up as a fraction of all steps.
    pub warmup_ratio: f64,
    /// Log every this many steps.
    pub logging_steps: usize,
    /// When to evaluate.
    pub eval_strategy: Strategy,
    /// Evaluate every this many steps (with `eval_strategy = "steps"`).
    pub eval_steps: usize,
    /// When to save checkpoints.
    pub save_strategy: Strategy,
    /// Save every this many steps (with `save_strategy = "steps"`).
    pub save_steps: usize,
    /// Keep at most this many checkpoints (0: all).
    pub save_total_limit: usize,
    /// Seed of initialisation, data order and dropout.
    pub seed: u64,
    /// A checkpoint directory to resume from, or `"latest"` for the newest in `output_dir`.
    pub resume_from_checkpoint: Option<String>,
    /// Tokens per training sequence.
    pub block_size: usize,
    /// Fraction of the data held out for evaluation.
    pub eval_fraction: f64,
}

impl Default for TrainingArguments {
    fn default() -> Self {
        TrainingArguments {
            output_dir: PathBuf::from("output"),
            num_train_epochs: 3.0,
            max_steps: -1,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 8,
            gradient_accumulation_steps: 1,
            learning_rate: 5e-5,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            lr_scheduler_type: SchedulerType::Linear,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            logging_steps: 10,
            eval_strategy: Strategy::No,
            eval_steps: 100,
            save_strategy: Strategy::Steps,
            save_steps: 500,
            save_total_limit: 0,
            seed: 42,
            resume_from_checkpoint: None,
            block_size: 128,
            eval_fraction: 0.1,
        }
    }
}

impl TrainingArguments {
    /// `base` overridden by the keys of a TOML (`.toml`) or JSON file, then by `key=value` pairs.
    pub fn resolve(base: &TrainingArguments, file: Option<&Path>, sets: &[String]) -> Result<Self> {
        let mut value =
            serde_json::to_value(base).map_err(|e| setting("<defaults>", e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| setting(path.display().to_string(), e.to_string()))?;
            let from_file: serde_json::Value = if path.extension().is_some_and(|e| e == "toml") {
                let t: toml::Value = toml::from_str(&text)
                    .map_err(|e| setting(path.display().to_string(), e.to_string()))?;
                serde_json::to_value(t)
                    .map_err(|e| setting(path.display().to_string(), e.to_string()))?
            } else {
                serde_json::from_str(&text)
                    .map_err(|e| setting(path.display().to_string(), e.to_string()))?
            };
            let serde_json::Value::Object(map) = from_file else {
                return Err(setting(
                    path.display().to_string(),
                    "must hold a table of settings",
                ));
            };
            for (k, v) in map {
                set_key(&mut value, &k, v)?;
            }
        }
        for kv in sets {
            let (k, raw) = kv
                .split_once('=')
                .ok_or_else(|| setting(kv.clone(), "expected key=value"))?;
            let (k, raw) = (k.trim(), raw.trim());
            // A number, boolean or null where it parses as one; a string otherwise.
            let v =
                serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.into()));
            set_key(&mut value, k, v)?;
        }
        let args: TrainingArguments =
            serde_json::from_value(value).map_err(|e| setting("<settings>", e.to_string()))?;
        args.validate()?;
        Ok(args)
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let positive = |k: &str, v: usize| {
            if v == 0 {
                Err(setting(k, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive(
            "per_device_train_batch_size",
            self.per_device_train_batch_size,
        )?;
        positive(
            "per_device_eval_batch_size",
            self.per_device_eval_batch_size,
        )?;
        positive(
            "gradient_accumulation_steps",
            self.gradient_accumulation_steps,
        )?;
        positive("logging_steps", self.logging_steps)?;
        positive("block_size", self.block_size)?;
        let non_negative = |k: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(setting(k, format!("{v} must be a finite value ≥ 0")))
            }
        };
        non_negative("learning_rate", self.learning_rate)?;
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("adam_epsilon", self.adam_epsilon)?;
        non_negative("max_grad_norm", self.max_grad_norm)?;
        non_negative("num_train_epochs", self.num_train_epochs)?;
        for (k, v) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(setting(k, format!("{v} must be in [0, 1)")));
            }
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(setting(
                "warmup_ratio",
                format!("{} must be in [0, 1]", self.warmup_ratio),
            ));
        }
        if !(self.eval_fraction > 0.0 && self.eval_fraction < 1.0) {
            return Err(setting(
                "eval_fraction",
                format!("{} must be in (0, 1)", self.eval_fraction),
            ));
        }
        if self.eval_strategy == Strategy::Steps {
            positive("eval_steps", self.eval_steps)?;
        }
        if self.save_strategy == Strategy::Steps {
            positive("save_steps", self.save_steps)?;
        }
        if self.max_steps <= 0 && self.num_train_epochs == 0.0 {
            return Err(setting(
                "max_steps",
                "neither max_steps nor num_train_epochs asks for any step",
            ));
        }
        Ok(())
    }
}

/// Sets `key` in the settings object, refusing keys `TrainingArguments` does not have.
fn set_key(value: &mut serde_json::Value, key: &str, v: serde_json::Value) -> Result<()> {
    let obj = value
        .as_object_mut()
        .expect("TrainingArguments serialises as an object");
    if !obj.contains_key(key) {
        let mut known: Vec<&String> = obj.keys().collect();
        known.sort();
        let close: Vec<&&String> = known.iter().filter(|k| similar(k, key)).collect();
        let hint = if close.is_empty() {
            String::new()
        } else {
            format!(
                " (did you mean {}?)",
                close
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(setting(key, format!("unknown setting{hint}")));
    }
    obj.insert(key.to_string(), v);
    Ok(())
}

/// Two names share a word (`learning_rate` / `lr_rate`) or one contains the other.
fn similar(a: &str, b: &str) -> bool {
    a.contains(b)
        || b.contains(a)
        || a.split('_')
            .any(|w| w.len() > 3 && b.split('_').any(|x| x == w))
}
