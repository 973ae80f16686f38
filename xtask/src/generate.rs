//! `cargo xtask generate`: continue a prompt with a GPT-2 directory, streaming tokens.

use crate::adapted::Adapted;
use clap::Args;
use ptm_models::generation::GenerationConfig;
use ptm_models::gpt2::Gpt2LmHeadModel;
use ptm_models::tokenizer::Tokenizer;
use std::io::Write;
use std::path::PathBuf;

/// Options of `generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// A Hugging Face GPT-2 directory (config.json, model.safetensors, tokenizer files).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) to run with.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// The text to continue.
    #[arg(long)]
    prompt: String,
    /// Tokens to add at most.
    #[arg(long, default_value_t = 50)]
    max_new_tokens: usize,
    /// Sampling temperature; without it (and without --top-k/--top-p) decoding is greedy.
    #[arg(long)]
    temperature: Option<f64>,
    /// Sample among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample within the nucleus of probability p.
    #[arg(long)]
    top_p: Option<f64>,
    /// Seed of the sampling stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run on this device (cpu; cuda:N arrives with the CUDA backend).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Runs the command.
pub fn run(a: GenerateArgs) -> Result<(), String> {
    if a.device != "cpu" {
        return Err(format!(
            "--device {}: only cpu is available in this build",
            a.device
        ));
    }
    let tok = Tokenizer::from_dir(&a.model).map_err(|e| e.to_string())?;
    let held = Adapted::<Gpt2LmHeadModel>::load(&a.model, a.adapter.as_deref())?;
    let gpt = held.checkpoint();
    let ids = tok.encode(&a.prompt, false).map_err(|e| e.to_string())?;
    let cfg = GenerationConfig {
        max_new_tokens: a.max_new_tokens,
        do_sample: a.temperature.is_some() || a.top_k.is_some() || a.top_p.is_some(),
        temperature: a.temperature.unwrap_or(1.0),
        top_k: a.top_k,
        top_p: a.top_p,
        seed: a.seed,
        eos_token_id: gpt.config.eos_token_id,
    };
    print!("{}", a.prompt);
    let mut shown = a.prompt.clone();
    let mut all = ids.clone();
    let mut failure = None;
    gpt.model
        .generate(&ids, &cfg, |t| {
            // Decode the whole text each time: a token can complete a multi-byte character.
            all.push(t);
            match tok.decode(&all, true) {
                Ok(text) => {
                    if let Some(new) = text.strip_prefix(&shown) {
                        print!("{new}");
                        let _ = std::io::stdout().flush();
                    }
                    shown = text;
                }
                Err(e) => failure = Some(e.to_string()),
            }
        })
        .map_err(|e| e.to_string())?;
    println!();
    failure.map_or(Ok(()), Err)
}
