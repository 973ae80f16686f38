//! `cargo xtask <command>`: ptm's task driver.
//!
//! Commands:
//! - `train <recipe>`: run a training recipe (`cargo xtask train --help` lists them);
//! - `bench`: run the criterion kernel comparisons;
//! - `ci`: the same checks `.ci/run` performs (fmt, clippy, tests).

use clap::{Parser, Subcommand, ValueEnum};
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
    },
    /// Run the criterion benchmarks: matmul and elementwise kernels against their baselines
    /// (figures in docs/perf.md).
    Bench {
        /// Extra arguments passed to criterion (e.g. a filter like `matmul_f32/256` or `softmax`).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Run what CI runs: format check, clippy with warnings denied, the test suite.
    Ci,
}

#[derive(Clone, Copy, ValueEnum)]
enum Recipe {
    /// Pretrain a small GPT-2 on a source corpus, then fine-tune it on a target corpus.
    #[value(name = "gpt2-finetune")]
    Gpt2Finetune,
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
        Cmd::Train { recipe: Recipe::Spirals } => cargo(&["run", "--release", "-p", "ptm-tensor", "--example", "spirals"]),
        Cmd::Train { recipe: Recipe::Gpt2Finetune } => Err(
            "the gpt2-finetune recipe needs the model zoo and the trainer, which are not built yet \
             (tracked as the main-job issue); `cargo xtask train spirals` runs what exists today"
                .into(),
        ),
        Cmd::Bench { args } => {
            let mut a = vec!["bench", "--"];
            a.extend(args.iter().map(String::as_str));
            cargo(&a)
        }
        Cmd::Ci => {
            cargo(&["fmt", "--all", "--", "--check"])?;
            cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
            cargo(&["test", "--workspace"])
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
