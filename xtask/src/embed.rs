//! `cargo xtask embed`: sentence embeddings from a BERT sentence encoder (mean pooling + L2
//! normalisation, as sentence-transformers), one JSON array per line.

use clap::Args;
use ptm_models::bert::{embed_sentences, BertCheckpoint, BertModel};
use ptm_models::tokenizer::Tokenizer;
use ptm_tensor::DType;
use std::path::PathBuf;

/// Options of `embed`.
#[derive(Args)]
pub struct EmbedArgs {
    /// A BERT model directory with its tokenizer (e.g. `cargo xtask fetch minilm`'s).
    #[arg(long)]
    model: PathBuf,
    /// The texts to embed.
    #[arg(long, num_args = 1.., required = true)]
    text: Vec<String>,
    /// Run on this device (cpu; cuda:N arrives with the CUDA backend).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Runs the command.
pub fn run(a: EmbedArgs) -> Result<(), String> {
    if a.device != "cpu" {
        return Err(format!(
            "--device {}: only cpu is available in this build",
            a.device
        ));
    }
    let tok = Tokenizer::from_dir(&a.model).map_err(|e| e.to_string())?;
    let model = BertCheckpoint::<BertModel>::from_pretrained(&a.model, DType::F32, None)
        .map_err(|e| e.to_string())?;
    let emb = embed_sentences(&model.model, &tok, &a.text).map_err(|e| e.to_string())?;
    for row in emb.to_vec2::<f32>().map_err(|e| e.to_string())? {
        println!(
            "{}",
            serde_json::to_string(&row).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}
