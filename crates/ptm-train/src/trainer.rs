//! The training loop: micro-batches with gradient accumulation, global-norm clipping, AdamW with
//! a warm-up schedule, logging, evaluation, checkpoints, resume and Ctrl-C.
//!
//! Everything that decides the next loss is either saved in a checkpoint (parameters, optimizer
//! moments, dropout stream, data position) or a pure function of the settings (data order per
//! epoch, learning rate per step), so a resumed run computes the same losses as one that never
//! stopped.

use crate::args::{Strategy, TrainingArguments};
use crate::checkpoint::{self, LogEntry, TrainerState};
use crate::data::{lm::permutation, TrainBatch, TrainData};
use crate::error::{ckpt, Result};
use crate::model::TrainModel;
use crate::schedule::learning_rate;
use indicatif::{ProgressBar, ProgressStyle};
use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer};
use ptm_tensor::{no_grad, GradStore};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler once per process: the next step boundary saves a checkpoint and the
/// run returns with `interrupted` set.
fn install_ctrl_c() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond Ctrl-C: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("\nCtrl-C: saving a checkpoint at the end of this step");
        });
    });
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// Optimizer steps done in total (resumed ones included).
    pub global_step: usize,
    /// Mean training loss of the last logging window.
    pub last_loss: Option<f64>,
    /// Seconds this process spent in the loop.
    pub runtime_s: f64,
    /// Whether Ctrl-C stopped it early (a checkpoint was saved).
    pub interrupted: bool,
    /// Every logged event of the run.
    pub log_history: Vec<LogEntry>,
}

/// Whether AdamW decays a parameter: not biases, not norm weights (Hugging Face's Trainer rule).
pub fn decays(name: &str) -> bool {
    let lower = name.to_lowercase();
    !(lower.ends_with("bias")
        || lower.contains("layernorm")
        || lower.contains("layer_norm")
        || lower.contains(".ln_")
        || lower.contains("norm."))
}

/// Runs training on language-model data.
pub struct Trainer<'a> {
    args: &'a TrainingArguments,
    /// A label for the progress bar (`pretrain`, `finetune`, …).
    pub label: String,
    /// Print log lines even when the progress bar is drawn.
    pub verbose: bool,
    /// Stop after this optimizer step as Ctrl-C would (checkpoint saved, `interrupted` set):
    /// how tests interrupt a run at a chosen point.
    pub stop_at_step: Option<usize>,
}

impl<'a> Trainer<'a> {
    /// A trainer with these settings.
    pub fn new(args: &'a TrainingArguments, label: &str) -> Trainer<'a> {
        Trainer {
            args,
            label: label.to_string(),
            verbose: false,
            stop_at_step: None,
        }
    }

    /// Steps this run makes over `train`.
    pub fn total_steps<D: TrainData>(&self, train: &D) -> usize {
        let a = self.args;
        if a.max_steps > 0 {
            return a.max_steps as usize;
        }
        let micro = train.len().div_ceil(a.per_device_train_batch_size);
        let per_epoch = micro.div_ceil(a.gradient_accumulation_steps);
        (a.num_train_epochs * per_epoch as f64).ceil() as usize
    }

    /// Mean loss per counted token over `data`, without gradients.
    pub fn evaluate<D: TrainData>(
        &self,
        model: &dyn TrainModel<D::Batch>,
        data: &D,
    ) -> Result<f64> {
        let _guard = no_grad();
        let bs = self.args.per_device_eval_batch_size;
        let (mut total, mut tokens) = (0.0, 0usize);
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(bs) {
            let batch = data.batch(chunk)?;
            let loss = model
                .loss(&batch, false)?
                .to_dtype(ptm_tensor::DType::F64)?
                .to_scalar::<f64>()?;
            total += loss * batch.count() as f64;
            tokens += batch.count();
        }
        Ok(total / tokens.max(1) as f64)
    }

    /// Trains `model` on `train`, evaluating on `eval` as the settings ask; writes checkpoints,
    /// `log.jsonl` and `trainer_state.json` into `output_dir`.
    pub fn train<D: TrainData>(
        &self,
        model: &dyn TrainModel<D::Batch>,
        train: &D,
        eval: Option<&D>,
    ) -> Result<TrainOutcome> {
        install_ctrl_c();
        let a = self.args;
        let out = &a.output_dir;
        std::fs::create_dir_all(out).map_err(|e| ckpt(out.display(), e))?;
        if train.is_empty() {
            return Err(crate::error::data(&self.label, "no training blocks"));
        }
        let total = self.total_steps(train);
        let warmup = if a.warmup_steps > 0 {
            a.warmup_steps
        } else {
            (a.warmup_ratio * total as f64).ceil() as usize
        };
        let cfg = AdamWConfig {
            lr: a.learning_rate,
            beta1: a.adam_beta1,
            beta2: a.adam_beta2,
            eps: a.adam_epsilon,
            weight_decay: a.weight_decay,
        };
        let mut opt = AdamW::new(model.params().trainable(), cfg, decays)?;
        let mut state = TrainerState {
            max_steps: total,
            ..Default::default()
        };
        let log_path = out.join("log.jsonl");
        if let Some(spec) = &a.resume_from_checkpoint {
            let dir = checkpoint::resolve(spec, out)?;
            state = checkpoint::load(&dir, model, &mut opt)?;
            state.max_steps = total;
            eprintln!(
                "{}: resumed from {} at step {}",
                self.label,
                dir.display(),
                state.global_step
            );
            // The log restarts from the checkpoint's history: events after it are redone.
            rewrite_log(&log_path, &state.log_history)?;
        } else {
            rewrite_log(&log_path, &[])?;
        }
        let micro_per_epoch = train.len().div_ceil(a.per_device_train_batch_size);
        let bar = progress_bar(&self.label, total, state.global_step);
        let start = Instant::now();
        let (mut window_loss, mut window_n, mut window_tokens) = (0.0, 0usize, 0usize);
        let mut window_start = Instant::now();
        let mut last_loss = None;
        let mut interrupted = false;
        let mut order: Option<(usize, Vec<usize>)> = None;
        while state.global_step < total {
            let step = state.global_step;
            let lr = learning_rate(a.lr_scheduler_type, a.learning_rate, step, warmup, total);
            opt.set_learning_rate(lr);
            let mut grads = GradStore::new();
            for _ in 0..a.gradient_accumulation_steps {
                let epoch = state.micro_batches / micro_per_epoch;
                let pos = state.micro_batches % micro_per_epoch;
                if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    order = Some((epoch, permutation(train.len(), epoch_seed(a.seed, epoch))));
                }
                let perm = &order.as_ref().expect("set above").1;
                let bs = a.per_device_train_batch_size;
                let idx = &perm[pos * bs..((pos + 1) * bs).min(perm.len())];
                let batch = train.batch(idx)?;
                let loss = model.loss(&batch, true)?;
                let value = loss.to_dtype(ptm_tensor::DType::F64)?.to_scalar::<f64>()?;
                if !value.is_finite() {
                    return Err(crate::error::data(
                        &self.label,
                        format!("loss became {value} at step {step}; lower learning_rate?"),
                    ));
                }
                loss.mul_scalar(1.0 / a.gradient_accumulation_steps as f64)?
                    .backward_into(&mut grads)?;
                window_loss += value;
                window_n += 1;
                window_tokens += batch.count();
                state.micro_batches += 1;
            }
            let norm = clip_grad_norm(model, &mut grads, a.max_grad_norm)?;
            opt.step(&grads)?;
            state.global_step += 1;
            state.epoch = state.micro_batches as f64 / micro_per_epoch as f64;
            bar.inc(1);
            let step = state.global_step;
            if step.is_multiple_of(a.logging_steps) || step == total {
                let secs = window_start.elapsed().as_secs_f64();
                let loss = window_loss / window_n.max(1) as f64;
                let entry = LogEntry {
                    step,
                    epoch: state.epoch,
                    loss: Some(loss),
                    learning_rate: Some(lr),
                    grad_norm: Some(norm),
                    tokens_per_s: Some(window_tokens as f64 / secs.max(1e-9)),
                    eval_loss: None,
                    eval_perplexity: None,
                };
                bar.set_message(format!(
                    "loss {loss:.3}  lr {lr:.2e}  {:.0} tok/s",
                    entry.tokens_per_s.unwrap_or(0.0)
                ));
                self.log(&bar, &log_path, &mut state, entry)?;
                last_loss = Some(loss);
                (window_loss, window_n, window_tokens) = (0.0, 0, 0);
                window_start = Instant::now();
            }
            let epoch_end = state.micro_batches % micro_per_epoch < a.gradient_accumulation_steps
                && state.micro_batches >= micro_per_epoch;
            let due = |strategy: Strategy, every: usize| match strategy {
                Strategy::No => false,
                Strategy::Steps => step.is_multiple_of(every) || step == total,
                Strategy::Epoch => epoch_end || step == total,
            };
            if let (Some(eval), true) = (eval, due(a.eval_strategy, a.eval_steps)) {
                let l = self.evaluate(model, eval)?;
                let entry = LogEntry {
                    step,
                    epoch: state.epoch,
                    loss: None,
                    learning_rate: None,
                    grad_norm: None,
                    tokens_per_s: None,
                    eval_loss: Some(l),
                    eval_perplexity: Some(l.exp()),
                };
                self.log(&bar, &log_path, &mut state, entry)?;
            }
            let stop = STOP.swap(false, Ordering::SeqCst) || self.stop_at_step == Some(step);
            if due(a.save_strategy, a.save_steps) || stop {
                checkpoint::save(out, model, &opt, &state)?;
                checkpoint::rotate(out, a.save_total_limit)?;
            }
            if stop {
                interrupted = true;
                break;
            }
        }
        bar.finish_and_clear();
        let text = serde_json::to_string_pretty(&state).map_err(|e| ckpt(out.display(), e))?;
        std::fs::write(out.join("trainer_state.json"), text + "\n")
            .map_err(|e| ckpt(out.display(), e))?;
        Ok(TrainOutcome {
            global_step: state.global_step,
            last_loss,
            runtime_s: start.elapsed().as_secs_f64(),
            interrupted,
            log_history: state.log_history,
        })
    }

    fn log(
        &self,
        bar: &ProgressBar,
        path: &Path,
        state: &mut TrainerState,
        entry: LogEntry,
    ) -> Result<()> {
        let line = serde_json::to_string(&entry).map_err(|e| ckpt(path.display(), e))?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| ckpt(path.display(), e))?;
        writeln!(f, "{line}").map_err(|e| ckpt(path.display(), e))?;
        if self.verbose || bar.is_hidden() {
            bar.suspend(|| eprintln!("{}: {line}", self.label));
        }
        state.log_history.push(entry);
        Ok(())
    }
}

/// The data order of epoch `e` is a permutation seeded by the run's seed and the epoch alone.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn rewrite_log(path: &Path, entries: &[LogEntry]) -> Result<()> {
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(|e| ckpt(path.display(), e))?);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| ckpt(path.display(), e))
}

/// The global L2 norm of the trainable parameters' gradients; when above `max_norm` (> 0) every
/// gradient is scaled by `max_norm / (norm + 1e-6)`, as `torch.nn.utils.clip_grad_norm_`.
pub fn clip_grad_norm<B>(
    model: &dyn TrainModel<B>,
    grads: &mut GradStore,
    max_norm: f64,
) -> Result<f64> {
    let params = model.params().trainable();
    let mut sq = 0.0;
    for (_, p) in &params {
        if let Some(g) = grads.get(&p.tensor()) {
            // Read in place and summed in f64: no per-step copy of every gradient.
            let g = g.to_dtype(ptm_tensor::DType::F32)?;
            sq += g
                .values::<f32>()?
                .iter()
                .map(|&x| x as f64 * x as f64)
                .sum::<f64>();
        }
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let coef = max_norm / (norm + 1e-6);
        for (_, p) in &params {
            let t = p.tensor();
            if let Some(g) = grads.remove(&t) {
                grads.insert(&t, g.mul_scalar(coef)?);
            }
        }
    }
    Ok(norm)
}

fn progress_bar(label: &str, total: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps  {msg}  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar.set_position(done as u64);
    bar
}
