//! `gpt2-lora`, `gpt2-prefix`, `gpt2-ia3`: parameter-efficient fine-tuning of GPT-2 on the same
//! default data as `gpt2-finetune`, beside full fine-tuning.
//!
//! The base model and data are gpt2-finetune's (the small GPT-2 pretrained on Shakespeare, cached;
//! the Debian fortunes as target), or `--model` / `--data`. The adapter trains with the base
//! frozen and is saved in PEFT's format in `output_dir/adapter` (Python `peft` loads it). Then,
//! unless `--no-full`, the whole model is fine-tuned with the same steps and data for comparison.
//! `metrics.json` reports held-out perplexity, trainable parameters, the size of what each run
//! saves, memory and time for both.

use super::gpt2::{eval_cap, finetune_args, load_corpus, pretrain, sample, target_corpus};
use super::gpt2::{tokenizer_for, Gpt2Options};
use crate::args::TrainingArguments;
use crate::error::{data, Result};
use crate::plot::{loss_png, series_of, Series};
use crate::trainer::Trainer;
use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2LmHeadModel};
use ptm_peft::{
    Ia3Config, LoraConfig, PeftConfig, PeftKind, PeftModel, PrefixTuningConfig, Targets,
};
use ptm_tensor::DType;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The adapter methods with a GPT-2 recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeftMethod {
    /// LoRA, rank 8, α 16, on every linear layer of the blocks (no LoRA dropout: 60 steps do
    /// not overfit).
    Lora,
    /// Prefix-tuning, 16 virtual tokens through the reparameterisation.
    Prefix,
    /// IA³ on PEFT's default GPT-2 targets.
    Ia3,
}

impl PeftMethod {
    /// The recipe name (`gpt2-lora`).
    pub fn recipe(self) -> &'static str {
        match self {
            PeftMethod::Lora => "gpt2-lora",
            PeftMethod::Prefix => "gpt2-prefix",
            PeftMethod::Ia3 => "gpt2-ia3",
        }
    }

    /// The adapter configuration the recipe trains.
    pub fn config(self) -> PeftConfig {
        let kind = match self {
            PeftMethod::Lora => PeftKind::Lora(LoraConfig {
                r: 8,
                lora_alpha: 16.0,
                lora_dropout: 0.0,
                target_modules: Some(Targets::names(&["c_attn", "c_proj", "c_fc"])),
                fan_in_fan_out: true,
                ..Default::default()
            }),
            PeftMethod::Prefix => PeftKind::PrefixTuning(PrefixTuningConfig {
                num_virtual_tokens: 16,
                prefix_projection: true,
                encoder_hidden_size: Some(256),
                ..Default::default()
            }),
            PeftMethod::Ia3 => PeftKind::Ia3(Ia3Config {
                fan_in_fan_out: true,
                ..Default::default()
            }),
        };
        PeftConfig::new(kind, Some("CAUSAL_LM"))
    }

    /// The default learning rate: adapters start from an identity (or a random prefix) and move
    /// few weights, so they take larger steps than full fine-tuning's 1e-3. Chosen on the default
    /// run's held-out perplexity (2026-11-28): LoRA 5e-3 → 2184, 1e-2 → 2111, 2e-2 → 3280;
    /// prefix 5e-3 → 2528, 2e-2 → 2519; IA³ 3e-2 → 2747, 1e-1 → 2581, 3e-1 → 2513.
    pub fn learning_rate(self) -> f64 {
        match self {
            PeftMethod::Lora => 1e-2,
            PeftMethod::Prefix => 2e-2,
            PeftMethod::Ia3 => 3e-1,
        }
    }
}

/// What one training run cost and reached.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunFigures {
    /// Held-out perplexity after training.
    pub perplexity: f64,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// All parameters of the model (base and adapter).
    pub all_params: usize,
    /// `100 · trainable / all`.
    pub trainable_percent: f64,
    /// Bytes of what the run saves: the adapter file, or the whole model's weights.
    pub saved_bytes: u64,
    /// Resident memory when the run started, MiB (Linux; `null` elsewhere).
    pub rss_start_mib: Option<f64>,
    /// Peak resident memory during the run, MiB (Linux; `null` elsewhere).
    pub peak_rss_mib: Option<f64>,
    /// Seconds in the training loop.
    pub train_s: f64,
}

/// The figures of a PEFT recipe run (`metrics.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PeftMetrics {
    /// `gpt2-lora`, `gpt2-prefix` or `gpt2-ia3`.
    pub recipe: String,
    /// Held-out perplexity of the base model.
    pub perplexity_before: f64,
    /// The adapter run.
    pub adapter: RunFigures,
    /// Full fine-tuning with the same steps and data (unless `--no-full`).
    pub full_finetune: Option<RunFigures>,
    /// PEFT's line for the adapter.
    pub trainable_line: String,
    /// Optimizer steps of each run.
    pub steps: usize,
    /// Held-out blocks the perplexities are measured on.
    pub eval_blocks: usize,
    /// Wall time of the whole recipe.
    pub total_s: f64,
    /// Where the base model came from.
    pub base_model: String,
    /// The target corpus.
    pub target: String,
}

/// Peak resident memory so far (Linux `VmHWM`) and the current (`VmRSS`), in MiB.
fn memory_mib() -> (Option<f64>, Option<f64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Restarts the peak-memory count from the current resident size (Linux ≥ 4.0), so a phase's
/// peak is its own; returns the resident size then.
fn reset_peak_memory() -> Option<f64> {
    let ok = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (_, rss) = memory_mib();
    rss.filter(|_| ok)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Runs the recipe; returns the metrics it wrote to `output_dir/metrics.json`.
pub fn run(method: PeftMethod, opts: &Gpt2Options) -> Result<PeftMetrics> {
    let t_all = Instant::now();
    let name = method.recipe();
    let out = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("output/{name}")));
    let full_defaults = finetune_args(opts.smoke, &out);
    let defaults = TrainingArguments {
        learning_rate: method.learning_rate(),
        ..full_defaults.clone()
    };
    let args = TrainingArguments::resolve(&defaults, opts.config.as_deref(), &opts.sets)?;
    let out = args.output_dir.clone();
    let target = target_corpus(opts)?;
    if !target.exists() {
        return Err(data(target.display(), "does not exist"));
    }
    if let Some(m) = &opts.model {
        ptm_models::weights_file(m)?;
    }
    let base_dir = match &opts.model {
        Some(m) => m.clone(),
        None => pretrain(opts)?,
    };
    let tok = tokenizer_for(Some(&base_dir))?;
    let corpus = load_corpus(&tok, &target, args.block_size, "target corpus")?;
    let (train, mut eval) = corpus.split(args.eval_fraction, args.seed);
    eval.truncate(eval_cap(opts.smoke));

    let mut model = PeftModel::<Gpt2LmHeadModel>::from_pretrained(&base_dir, DType::F32)?;
    let trainer = Trainer::new(&args, name);
    let before = trainer.evaluate(&model, &eval)?;
    eprintln!(
        "{name}: held-out perplexity of the base model {:.2}",
        before.exp()
    );
    model.add_adapter("default", method.config(), args.seed)?;
    let counts = model.param_counts();
    eprintln!("{name}: {counts}");

    let rss_start = reset_peak_memory();
    let run = trainer.train(&model, &train, Some(&eval))?;
    let (peak, _) = memory_mib();
    if run.interrupted {
        return Err(data(
            out.display(),
            "interrupted; resume with --set resume_from_checkpoint=latest",
        ));
    }
    let after = trainer.evaluate(&model, &eval)?;
    eprintln!(
        "{name}: held-out perplexity with the adapter {:.2}",
        after.exp()
    );
    let adapter_dir = out.join("adapter");
    model.save_adapter(&adapter_dir, "default")?;
    let adapter = RunFigures {
        perplexity: after.exp(),
        trainable_params: counts.trainable,
        all_params: counts.all,
        trainable_percent: counts.percent(),
        saved_bytes: file_size(&adapter_dir.join(ptm_peft::WEIGHTS_FILE)),
        rss_start_mib: rss_start,
        peak_rss_mib: peak.filter(|_| rss_start.is_some()),
        train_s: run.runtime_s,
    };
    for s in sample(model.base(), &tok, opts.samples, &out)? {
        println!("--- sample ---\n{s}");
    }
    drop(model);

    let mut series = {
        let (tr, ev) = series_of(&run.log_history);
        vec![
            Series {
                label: "adapter: train",
                points: tr,
            },
            Series {
                label: "adapter: held-out",
                points: ev,
            },
        ]
    };
    let full = if opts.full.unwrap_or(true) {
        let fargs = TrainingArguments {
            output_dir: out.join("full"),
            learning_rate: full_defaults.learning_rate,
            resume_from_checkpoint: args
                .resume_from_checkpoint
                .as_ref()
                .filter(|_| !crate::checkpoint::list(&out.join("full")).is_empty())
                .map(|_| "latest".to_string()),
            ..args.clone()
        };
        let gpt = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_pretrained(&base_dir, DType::F32, None)?;
        let ft = Trainer::new(&fargs, "full fine-tune");
        let rss_start = reset_peak_memory();
        let o = ft.train(&gpt, &train, Some(&eval))?;
        let (peak, _) = memory_mib();
        let l = ft.evaluate(&gpt, &eval)?;
        eprintln!(
            "{name}: held-out perplexity after full fine-tuning {:.2}",
            l.exp()
        );
        let final_dir = out.join("full").join("final");
        gpt.save_pretrained(&final_dir)?;
        let (trainable, all) = gpt.params.counts();
        let (tr, ev) = series_of(&o.log_history);
        series.push(Series {
            label: "full fine-tune: train",
            points: tr,
        });
        series.push(Series {
            label: "full fine-tune: held-out",
            points: ev,
        });
        Some(RunFigures {
            perplexity: l.exp(),
            trainable_params: trainable,
            all_params: all,
            trainable_percent: 100.0 * trainable as f64 / all.max(1) as f64,
            saved_bytes: file_size(&final_dir.join("model.safetensors")),
            rss_start_mib: rss_start,
            peak_rss_mib: peak.filter(|_| rss_start.is_some()),
            train_s: o.runtime_s,
        })
    } else {
        None
    };
    loss_png(
        &out.join("loss.png"),
        &format!("{name}: loss on the target corpus"),
        &series,
    )?;
    let metrics = PeftMetrics {
        recipe: name.into(),
        perplexity_before: before.exp(),
        adapter,
        full_finetune: full,
        trainable_line: counts.to_string(),
        steps: run.global_step,
        eval_blocks: eval.len(),
        total_s: t_all.elapsed().as_secs_f64(),
        base_model: base_dir.display().to_string(),
        target: target.display().to_string(),
    };
    let text =
        serde_json::to_string_pretty(&metrics).map_err(|e| data(out.display(), e.to_string()))?;
    std::fs::write(out.join("metrics.json"), text + "\n")
        .map_err(|e| data(out.display(), e.to_string()))?;
    Ok(metrics)
}
