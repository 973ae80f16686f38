//! Checkpoints: `output_dir/checkpoint-N/` with the model (Hugging Face layout), optimizer state,
//! scheduler step, RNG state and `trainer_state.json`. A checkpoint is written in a hidden
//! directory beside its final name and renamed into place, so a kill at any moment leaves the
//! previous complete checkpoint intact and never a partial one under a checkpoint name.

use crate::error::{ckpt, Result};
use crate::model::TrainModel;
use ptm_nn::optim::Optimizer;
use ptm_tensor::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One logged event: a training log, an evaluation, or the final summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Optimizer step.
    pub step: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Mean training loss since the previous log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Learning rate of the last step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// Global gradient norm before clipping, last step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    /// Training tokens per second since the previous log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Mean held-out loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// `exp(eval_loss)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_perplexity: Option<f64>,
}

/// Where a run stands: what `trainer_state.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub global_step: usize,
    /// Steps the run will make.
    pub max_steps: usize,
    /// Micro-batches consumed (the data position, across epochs).
    pub micro_batches: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Every logged event so far.
    pub log_history: Vec<LogEntry>,
}

#[derive(Serialize, Deserialize)]
struct RngState {
    dropout: [u64; 4],
}

#[derive(Serialize, Deserialize)]
struct SchedulerState {
    step: usize,
    last_lr: f64,
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| ckpt(path.display(), e))?;
    std::fs::write(path, text + "\n").map_err(|e| ckpt(path.display(), e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| ckpt(path.display(), e))?;
    serde_json::from_str(&text).map_err(|e| ckpt(path.display(), e))
}

/// Writes checkpoint `checkpoint-<step>` into `output_dir` atomically and returns its path.
pub fn save<B>(
    output_dir: &Path,
    model: &dyn TrainModel<B>,
    opt: &dyn Optimizer,
    state: &TrainerState,
) -> Result<PathBuf> {
    let name = format!("checkpoint-{}", state.global_step);
    let fin = output_dir.join(&name);
    let tmp = output_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| ckpt(tmp.display(), e))?;
    model.save_pretrained(&tmp)?;
    let opt_state = opt.state()?;
    ptm_tensor::safetensors::save(
        opt_state.iter().map(|(k, v)| (k.as_str(), v)),
        tmp.join("optimizer.safetensors"),
    )?;
    write_json(
        &tmp.join("scheduler.json"),
        &SchedulerState {
            step: state.global_step,
            last_lr: opt.learning_rate(),
        },
    )?;
    let dropout = model
        .dropout_rng()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .state();
    write_json(&tmp.join("rng_state.json"), &RngState { dropout })?;
    write_json(&tmp.join("trainer_state.json"), state)?;
    if fin.exists() {
        // The same step saved again (a resumed run): replace the old copy.
        std::fs::remove_dir_all(&fin).map_err(|e| ckpt(fin.display(), e))?;
    }
    std::fs::rename(&tmp, &fin).map_err(|e| ckpt(fin.display(), e))?;
    Ok(fin)
}

/// Complete checkpoints in `output_dir`, oldest first, with their steps.
pub fn list(output_dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(output_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Deletes the oldest checkpoints beyond `limit` (0 keeps all).
pub fn rotate(output_dir: &Path, limit: usize) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let all = list(output_dir);
    for (_, p) in all.iter().take(all.len().saturating_sub(limit)) {
        std::fs::remove_dir_all(p).map_err(|e| ckpt(p.display(), e))?;
    }
    Ok(())
}

/// Resolves `resume_from_checkpoint`: a path, or `latest` for the newest in `output_dir`.
pub fn resolve(spec: &str, output_dir: &Path) -> Result<PathBuf> {
    if spec == "latest" {
        return list(output_dir).pop().map(|(_, p)| p).ok_or_else(|| {
            ckpt(
                output_dir.display(),
                "no checkpoint-N directory to resume from",
            )
        });
    }
    let p = PathBuf::from(spec);
    if p.join("trainer_state.json").is_file() {
        Ok(p)
    } else {
        Err(ckpt(
            spec,
            "not a checkpoint directory (no trainer_state.json)",
        ))
    }
}

/// Restores parameters, optimizer and dropout stream from `dir`; returns the trainer state.
pub fn load<B>(
    dir: &Path,
    model: &dyn TrainModel<B>,
    opt: &mut dyn Optimizer,
) -> Result<TrainerState> {
    model.restore(dir)?;
    let opt_state = ptm_tensor::safetensors::load(dir.join("optimizer.safetensors"))?;
    opt.load_state(&opt_state)?;
    let rng: RngState = read_json(&dir.join("rng_state.json"))?;
    *model
        .dropout_rng()
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Rng::from_state(rng.dropout);
    read_json(&dir.join("trainer_state.json"))
}
