//! `gpt2-pretrain` and `gpt2-finetune`: transfer learning with GPT-2, end to end, offline.
//!
//! No pretrained GPT-2 exists in any registry here, so by default the recipe first pretrains a
//! small GPT-2 (the real GPT-2 BPE tokenizer, 50 257 tokens) on Shakespeare, caches it, and then
//! fine-tunes it on a different corpus, the Debian fortunes. It reports held-out perplexity on
//! the fortunes for the pretrained model before fine-tuning, after fine-tuning, and for the same
//! architecture trained from scratch on the fortunes with the same steps and settings. With
//! `--model DIR` (a Hugging Face GPT-2 directory) and `--data PATH` it fine-tunes that model on
//! that text instead.

use super::digest;
use crate::args::{SchedulerType, Strategy, TrainingArguments};
use crate::data::{read_texts, LmData};
use crate::error::{data, Error, Result};
use crate::fetch;
use crate::plot::{loss_png, series_of, Series};
use crate::trainer::Trainer;
use ptm_models::generation::GenerationConfig;
use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Config, Gpt2LmHeadModel};
use ptm_models::tokenizer::Tokenizer;
use ptm_tensor::DType;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the user chose on the command line.
#[derive(Clone, Debug, Default)]
pub struct Gpt2Options {
    /// Where the run writes (default `output/gpt2-finetune`).
    pub output_dir: Option<PathBuf>,
    /// A Hugging Face GPT-2 directory to fine-tune instead of the pretrained small model.
    pub model: Option<PathBuf>,
    /// The target corpus (default: the fortunes).
    pub data: Option<PathBuf>,
    /// The pretraining corpus (default: Shakespeare).
    pub source: Option<PathBuf>,
    /// A TOML/JSON file of fine-tuning settings.
    pub config: Option<PathBuf>,
    /// `key=value` fine-tuning settings, applied after the file.
    pub sets: Vec<String>,
    /// `key=value` pretraining settings.
    pub pretrain_sets: Vec<String>,
    /// Train the from-scratch baseline (default: yes without `--model`, no with it).
    pub scratch: Option<bool>,
    /// A few-step configuration that tests the wiring (CI).
    pub smoke: bool,
    /// Generated samples to print.
    pub samples: usize,
    /// The adapter recipes: also fine-tune the whole model for comparison (default: yes).
    pub full: Option<bool>,
}

/// The small GPT-2 pretrained by default (full GPT-2 vocabulary, 4 blocks of width 128).
pub fn small_config(smoke: bool) -> Gpt2Config {
    let (n_embd, n_layer, n_head) = if smoke { (32, 1, 2) } else { (128, 4, 4) };
    Gpt2Config {
        n_positions: 128,
        n_embd,
        n_layer,
        n_head,
        // Few hundred steps underfit; dropout would only slow them down.
        resid_pdrop: 0.0,
        embd_pdrop: 0.0,
        attn_pdrop: 0.0,
        ..Default::default()
    }
}

/// Default settings of the pretraining run.
pub fn pretrain_args(smoke: bool) -> TrainingArguments {
    TrainingArguments {
        max_steps: if smoke { 4 } else { 360 },
        per_device_train_batch_size: if smoke { 4 } else { 16 },
        per_device_eval_batch_size: 32,
        learning_rate: 2e-3,
        weight_decay: 0.01,
        lr_scheduler_type: SchedulerType::Cosine,
        warmup_ratio: 0.05,
        logging_steps: if smoke { 1 } else { 10 },
        eval_strategy: Strategy::Steps,
        eval_steps: if smoke { 2 } else { 120 },
        save_strategy: Strategy::Steps,
        save_steps: if smoke { 2 } else { 180 },
        save_total_limit: 1,
        block_size: 64,
        eval_fraction: 0.02,
        ..Default::default()
    }
}

/// Default settings of the fine-tuning run (and of the from-scratch baseline).
pub fn finetune_args(smoke: bool, output_dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: output_dir.to_path_buf(),
        max_steps: if smoke { 3 } else { 60 },
        per_device_train_batch_size: if smoke { 4 } else { 16 },
        per_device_eval_batch_size: 32,
        learning_rate: 1e-3,
        weight_decay: 0.01,
        lr_scheduler_type: SchedulerType::Linear,
        warmup_ratio: 0.05,
        logging_steps: if smoke { 1 } else { 10 },
        eval_strategy: Strategy::Steps,
        eval_steps: if smoke { 2 } else { 20 },
        save_strategy: Strategy::Steps,
        save_steps: if smoke { 2 } else { 30 },
        save_total_limit: 2,
        block_size: 64,
        eval_fraction: 0.1,
        ..Default::default()
    }
}

/// Held-out blocks evaluated at most (perplexity on a fixed, seeded sample bounds the run time).
pub(crate) fn eval_cap(smoke: bool) -> usize {
    if smoke {
        8
    } else {
        256
    }
}

/// Tokenizes the documents under `path` and packs them into blocks.
pub(crate) fn load_corpus(
    tok: &Tokenizer,
    path: &Path,
    block: usize,
    what: &str,
) -> Result<LmData> {
    let texts = read_texts(path)?;
    let docs = tok.encode_many(&texts, false)?;
    let eos = tok.token_to_id("<|endoftext|>");
    LmData::pack(&docs, eos, block, &format!("{what} ({})", path.display()))
}

/// The GPT-2 tokenizer: the model directory's own, else the fetched original BPE files.
pub(crate) fn tokenizer_for(model: Option<&Path>) -> Result<Tokenizer> {
    if let Some(dir) = model {
        if let Ok(t) = Tokenizer::from_dir(dir) {
            return Ok(t);
        }
    }
    Ok(Tokenizer::from_dir(fetch::fetch("gpt2-tokenizer")?)?)
}

fn source_corpus(opts: &Gpt2Options) -> Result<PathBuf> {
    match &opts.source {
        Some(p) => Ok(p.clone()),
        None => fetch::fetch("shakespeare"),
    }
}

pub(crate) fn target_corpus(opts: &Gpt2Options) -> Result<PathBuf> {
    match &opts.data {
        Some(p) => Ok(p.clone()),
        None => Ok(fetch::fetch("fortunes")?.join("fortunes.jsonl")),
    }
}

/// Pretrains the small GPT-2 on the source corpus, or returns the cached result of an identical
/// earlier run. The directory holds `config.json`, `model.safetensors` and `tokenizer.json`.
pub fn pretrain(opts: &Gpt2Options) -> Result<PathBuf> {
    let cfg = small_config(opts.smoke);
    let source = source_corpus(opts)?;
    let base = pretrain_args(opts.smoke);
    let args0 = TrainingArguments::resolve(&base, None, &opts.pretrain_sets)?;
    let key = digest(&format!(
        "{}|{}|{}",
        serde_json::to_string(&cfg).unwrap_or_default(),
        serde_json::to_string(&args0).unwrap_or_default(),
        source.display()
    ));
    let dir = fetch::cache_dir()
        .join("models")
        .join(format!("gpt2-pretrain-{key}"));
    if dir.join(".complete").is_file() {
        eprintln!("gpt2-pretrain: using the cached model {}", dir.display());
        return Ok(dir);
    }
    let work = dir.with_extension("work");
    let args = TrainingArguments {
        output_dir: work.clone(),
        ..args0
    };
    let tok = tokenizer_for(None)?;
    let t0 = Instant::now();
    let corpus = load_corpus(&tok, &source, args.block_size, "pretraining corpus")?;
    let (train, mut eval) = corpus.split(args.eval_fraction, args.seed);
    eval.truncate(eval_cap(opts.smoke));
    eprintln!(
        "gpt2-pretrain: {} training blocks of {} tokens from {} ({:.1} s to tokenize); held out {}",
        train.len(),
        args.block_size,
        source.display(),
        t0.elapsed().as_secs_f64(),
        eval.len()
    );
    let gpt = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(cfg, DType::F32, args.seed, None)?;
    let outcome = Trainer::new(&args, "pretrain").train(&gpt, &train, Some(&eval))?;
    if outcome.interrupted {
        return Err(data(
            work.display(),
            "pretraining interrupted; a checkpoint was saved",
        ));
    }
    let (tr, ev) = series_of(&outcome.log_history);
    loss_png(
        &work.join("loss.png"),
        "gpt2-pretrain",
        &[
            Series {
                label: "train",
                points: tr,
            },
            Series {
                label: "held-out",
                points: ev,
            },
        ],
    )?;
    gpt.save_pretrained(&work)?;
    tok.save(&work)?;
    std::fs::write(
        work.join(".complete"),
        format!("{:.1} s\n", outcome.runtime_s),
    )
    .map_err(|e| data(work.display(), e.to_string()))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&work, &dir).map_err(|e| data(dir.display(), e.to_string()))?;
    Ok(dir)
}

/// The figures of a `gpt2-finetune` run (`metrics.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Gpt2Metrics {
    /// Held-out target perplexity of the starting model.
    pub perplexity_before: f64,
    /// … after fine-tuning it.
    pub perplexity_after: f64,
    /// … of the same architecture trained from scratch on the target (when run).
    pub perplexity_scratch: Option<f64>,
    /// Wall time of the whole recipe, pretraining included when it ran.
    pub train_runtime_s: f64,
    /// Seconds of each phase.
    pub phases_s: serde_json::Value,
    /// Optimizer steps of the fine-tuning.
    pub finetune_steps: usize,
    /// Held-out blocks the perplexities are measured on, and their tokens.
    pub eval_blocks: usize,
    /// Parameters of the model.
    pub parameters: usize,
    /// Where the starting model came from.
    pub base_model: String,
    /// The target corpus.
    pub target: String,
}

/// Runs the recipe; returns the metrics it wrote to `output_dir/metrics.json`.
pub fn finetune(opts: &Gpt2Options) -> Result<Gpt2Metrics> {
    let t_all = Instant::now();
    let out = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("output/gpt2-finetune"));
    let args = TrainingArguments::resolve(
        &finetune_args(opts.smoke, &out),
        opts.config.as_deref(),
        &opts.sets,
    )?;
    let out = args.output_dir.clone();
    // Check the inputs before the minutes of pretraining, not after.
    let target = target_corpus(opts)?;
    if !target.exists() {
        return Err(data(target.display(), "does not exist"));
    }
    if let Some(m) = &opts.model {
        ptm_models::weights_file(m)?;
    }
    let t_pre = Instant::now();
    let (base_dir, pretrained_here) = match &opts.model {
        Some(m) => (m.clone(), false),
        None => (pretrain(opts)?, true),
    };
    let pretrain_s = t_pre.elapsed().as_secs_f64();
    let tok = tokenizer_for(Some(&base_dir))?;
    let corpus = load_corpus(&tok, &target, args.block_size, "target corpus")?;
    let (train, mut eval) = corpus.split(args.eval_fraction, args.seed);
    eval.truncate(eval_cap(opts.smoke));
    eprintln!(
        "gpt2-finetune: {} training blocks of {} tokens from {}; {} held-out blocks",
        train.len(),
        args.block_size,
        target.display(),
        eval.len()
    );
    let gpt = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_pretrained(&base_dir, DType::F32, None)?;
    if gpt.config.vocab_size < tok.vocab_size() {
        return Err(Error::Setting {
            key: "model".into(),
            msg: format!(
                "{}: vocabulary {} is smaller than the tokenizer's {}",
                base_dir.display(),
                gpt.config.vocab_size,
                tok.vocab_size()
            ),
        });
    }
    let trainer = Trainer::new(&args, "finetune");
    let t_eval = Instant::now();
    let before = trainer.evaluate(&gpt, &eval)?;
    let eval_s = t_eval.elapsed().as_secs_f64();
    eprintln!(
        "gpt2-finetune: held-out perplexity before fine-tuning {:.2}",
        before.exp()
    );
    let t_ft = Instant::now();
    let ft = trainer.train(&gpt, &train, Some(&eval))?;
    let finetune_s = t_ft.elapsed().as_secs_f64();
    if ft.interrupted {
        return Err(data(
            out.display(),
            "interrupted; resume with --set resume_from_checkpoint=latest",
        ));
    }
    let after = trainer.evaluate(&gpt, &eval)?;
    eprintln!(
        "gpt2-finetune: held-out perplexity after fine-tuning {:.2}",
        after.exp()
    );
    let final_dir = out.join("final");
    gpt.save_pretrained(&final_dir)?;
    tok.save(&final_dir)?;

    let run_scratch = opts.scratch.unwrap_or(opts.model.is_none());
    let t_scratch = Instant::now();
    let (scratch, scratch_log) = if run_scratch {
        let sargs = TrainingArguments {
            output_dir: out.join("scratch"),
            resume_from_checkpoint: args
                .resume_from_checkpoint
                .as_ref()
                .filter(|_| !crate::checkpoint::list(&out.join("scratch")).is_empty())
                .map(|_| "latest".to_string()),
            ..args.clone()
        };
        let fresh = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(
            gpt.config.clone(),
            DType::F32,
            args.seed,
            None,
        )?;
        let st = Trainer::new(&sargs, "scratch");
        let o = st.train(&fresh, &train, Some(&eval))?;
        let l = st.evaluate(&fresh, &eval)?;
        eprintln!(
            "gpt2-finetune: held-out perplexity from scratch {:.2}",
            l.exp()
        );
        (Some(l.exp()), o.log_history)
    } else {
        (None, vec![])
    };
    let scratch_s = t_scratch.elapsed().as_secs_f64();

    let (ft_train, ft_eval) = series_of(&ft.log_history);
    let (sc_train, sc_eval) = series_of(&scratch_log);
    let mut series = vec![
        Series {
            label: "fine-tune: train",
            points: ft_train,
        },
        Series {
            label: "fine-tune: held-out",
            points: ft_eval,
        },
    ];
    if run_scratch {
        series.push(Series {
            label: "from scratch: train",
            points: sc_train,
        });
        series.push(Series {
            label: "from scratch: held-out",
            points: sc_eval,
        });
    }
    loss_png(
        &out.join("loss.png"),
        "gpt2-finetune: loss on the target corpus",
        &series,
    )?;

    let samples = sample(&gpt, &tok, opts.samples, &out)?;
    for s in &samples {
        println!("--- sample ---\n{s}");
    }
    let metrics = Gpt2Metrics {
        perplexity_before: before.exp(),
        perplexity_after: after.exp(),
        perplexity_scratch: scratch,
        train_runtime_s: t_all.elapsed().as_secs_f64(),
        phases_s: serde_json::json!({
            "pretrain": if pretrained_here { Some(pretrain_s) } else { None },
            "evaluate_once": eval_s,
            "finetune": finetune_s,
            "scratch": if run_scratch { Some(scratch_s) } else { None },
        }),
        finetune_steps: ft.global_step,
        eval_blocks: eval.len(),
        parameters: gpt.params.counts().1,
        base_model: base_dir.display().to_string(),
        target: target.display().to_string(),
    };
    let text =
        serde_json::to_string_pretty(&metrics).map_err(|e| data(out.display(), e.to_string()))?;
    std::fs::write(out.join("metrics.json"), text + "\n")
        .map_err(|e| data(out.display(), e.to_string()))?;
    Ok(metrics)
}

const PROMPTS: [&str; 4] = [
    "The meaning of life is",
    "A computer",
    "Love is",
    "Never trust",
];

/// Generates `n` continuations (top-k 40, temperature 0.8, seeded) and writes `samples.txt`.
pub(crate) fn sample(
    gpt: &Gpt2Checkpoint<Gpt2LmHeadModel>,
    tok: &Tokenizer,
    n: usize,
    out: &Path,
) -> Result<Vec<String>> {
    let mut texts = vec![];
    for (i, prompt) in PROMPTS.iter().cycle().take(n).enumerate() {
        let ids = tok.encode(prompt, false)?;
        let cfg = GenerationConfig {
            max_new_tokens: 40,
            do_sample: true,
            temperature: 0.8,
            top_k: Some(40),
            seed: i as u64,
            eos_token_id: gpt.config.eos_token_id,
            ..Default::default()
        };
        let all = gpt.model.generate(&ids, &cfg, |_| {})?;
        texts.push(tok.decode(&all, true)?);
    }
    std::fs::write(out.join("samples.txt"), texts.join("\n---\n") + "\n")
        .map_err(|e| data(out.display(), e.to_string()))?;
    Ok(texts)
}
