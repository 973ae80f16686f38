//! `cargo xtask forward`: run a model directory on inputs from a safetensors file and write its
//! outputs to another, for comparison with transformers.

use crate::adapted::Adapted;
use clap::Args;
use ptm_models::bert::{
    BertForMaskedLm, BertForSequenceClassification, BertForTokenClassification, BertInputs,
    BertModel,
};
use ptm_models::config::ModelKind;
use ptm_models::gpt2::{Gpt2Inputs, Gpt2LmHeadModel, Gpt2Model};
use ptm_models::vit::{VitForImageClassification, VitModel};
use ptm_tensor::{no_grad, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `forward`.
#[derive(Args)]
pub struct ForwardArgs {
    /// A Hugging Face model directory (config.json + model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Inputs: `input_ids` (i64 [B,T]) with optional `attention_mask` and `token_type_ids`, or
    /// `pixel_values` (f32 [B,3,H,W]) for ViT.
    #[arg(long)]
    input: PathBuf,
    /// Where to write `last_hidden_state` and, for models with a head, `logits` (f32).
    #[arg(long)]
    output: PathBuf,
    /// A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) to run with.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Print load and run times and the peak resident memory.
    #[arg(long)]
    verbose: bool,
    /// Run on this device (cpu; cuda:N arrives with the CUDA backend).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// The classes `forward` runs.
const SUPPORTED: [&str; 8] = [
    "GPT2Model",
    "GPT2LMHeadModel",
    "BertModel",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "ViTModel",
    "ViTForImageClassification",
];

fn load<M: ptm_models::Architecture>(a: &ForwardArgs) -> Result<Adapted<M>, String> {
    Adapted::load(&a.model, a.adapter.as_deref())
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn architecture(dir: &Path) -> Result<String, String> {
    let kind: ModelKind =
        ptm_models::config::read_config(&dir.join("config.json")).map_err(|e| e.to_string())?;
    if let Some(a) = kind.architectures.as_ref().and_then(|a| a.first()) {
        return Ok(a.clone());
    }
    match kind.model_type.as_deref() {
        Some("gpt2") => Ok("GPT2Model".into()),
        Some(other) => Err(format!(
            "{}: model_type '{other}' is not supported yet (supported: gpt2)",
            dir.display()
        )),
        None => Err(format!(
            "{}: config.json has neither architectures nor model_type",
            dir.display()
        )),
    }
}

/// Runs the command.
pub fn run(a: ForwardArgs) -> Result<(), String> {
    if a.device != "cpu" {
        return Err(format!(
            "--device {}: only cpu is available in this build",
            a.device
        ));
    }
    let inputs = ptm_tensor::safetensors::load(&a.input).map_err(|e| e.to_string())?;
    let arch = architecture(&a.model)?;
    let want = if arch.starts_with("ViT") {
        "pixel_values"
    } else {
        "input_ids"
    };
    let ids = inputs.get(want).ok_or_else(|| {
        format!(
            "{}: no tensor named {want} (needed by {arch})",
            a.input.display()
        )
    })?;
    let mask = inputs.get("attention_mask");
    let mut out: BTreeMap<String, Tensor> = BTreeMap::new();
    let t0 = Instant::now();
    let _guard = no_grad();
    let gpt_inputs = || Gpt2Inputs {
        attention_mask: mask,
        ..Default::default()
    };
    let bert_inputs = || BertInputs {
        attention_mask: mask,
        token_type_ids: inputs.get("token_type_ids"),
        train: false,
    };
    let load_s;
    match arch.as_str() {
        "GPT2LMHeadModel" => {
            let h = load::<Gpt2LmHeadModel>(&a)?;
            let m = h.checkpoint();
            load_s = t0.elapsed().as_secs_f64();
            let (logits, hidden) = m
                .model
                .forward(ids, gpt_inputs())
                .map_err(|e| e.to_string())?;
            out.insert("last_hidden_state".into(), hidden);
            out.insert("logits".into(), logits);
        }
        "GPT2Model" => {
            let h = load::<Gpt2Model>(&a)?;
            let m = h.checkpoint();
            load_s = t0.elapsed().as_secs_f64();
            out.insert(
                "last_hidden_state".into(),
                m.model
                    .forward(ids, gpt_inputs())
                    .map_err(|e| e.to_string())?,
            );
        }
        "BertModel" => {
            let h = load::<BertModel>(&a)?;
            let m = h.checkpoint();
            load_s = t0.elapsed().as_secs_f64();
            let (h, pooled) = m
                .model
                .forward(ids, bert_inputs())
                .map_err(|e| e.to_string())?;
            out.insert("last_hidden_state".into(), h);
            out.extend(pooled.map(|p| ("pooler_output".to_string(), p)));
        }
        "BertForMaskedLM" => {
            let h = load::<BertForMaskedLm>(&a)?;
            let m = h.checkpoint();
            load_s = t0.elapsed().as_secs_f64();
            let (l, h) = m
                .model
                .forward(ids, bert_inputs())
                .map_err(|e| e.to_string())?;
            out.extend([
                ("logits".to_string(), l),
                ("last_hidden_state".to_string(), h),
            ]);
        }
        "BertForSequenceClassification" => {
            let h = load::<BertForSequenceClassification>(&a)?;
            let m = h.checkpoint();
            load_s = t0.elapsed().as_secs_f64();
            let (l, h) = m
                .model
                .forward(ids, bert_inputs())
                .map_err(|e| e.to_string())?;
            out.extend([
                ("logits".to_string(), l),
                ("last_hidden_state".to_string(), h),
            ]);
        }
        "BertForTokenClassification" => {
            let h = load::<BertForTokenClassification>(&a)?;
            let m = h.checkpoint();
            load_s = t0.elapsed().as_secs_f64();
            let (l, h) = m
                .model
                .forward(ids, bert_inputs())
                .map_err(|e| e.to_string())?;
            out.extend([
                ("logits".to_string(), l),
                ("last_hidden_state".to_string(), h),
            ]);
        }
        "ViTModel" => {
            let h = load::<VitModel>(&a)?;
            let m = h.checkpoint();
            load_s = t0.elapsed().as_secs_f64();
            let (h, pooled) = m.model.forward(ids, false).map_err(|e| e.to_string())?;
            out.insert("last_hidden_state".into(), h);
            out.extend(pooled.map(|p| ("pooler_output".to_string(), p)));
        }
        "ViTForImageClassification" => {
            let h = load::<VitForImageClassification>(&a)?;
            let m = h.checkpoint();
            load_s = t0.elapsed().as_secs_f64();
            let (l, h) = m.model.forward(ids, false).map_err(|e| e.to_string())?;
            out.extend([
                ("logits".to_string(), l),
                ("last_hidden_state".to_string(), h),
            ]);
        }
        other => {
            return Err(format!(
                "{}: architecture {other} is not supported yet (supported: {})",
                a.model.display(),
                SUPPORTED.join(", ")
            ))
        }
    }
    let run_s = t0.elapsed().as_secs_f64() - load_s;
    ptm_tensor::safetensors::save(out.iter().map(|(k, v)| (k.as_str(), v)), &a.output)
        .map_err(|e| e.to_string())?;
    if a.verbose {
        let weights = std::fs::metadata(a.model.join("model.safetensors"))
            .map(|m| m.len() as f64 / (1 << 20) as f64)
            .unwrap_or(0.0);
        eprintln!(
            "{arch}: load {load_s:.2} s, forward {run_s:.2} s; weights file {weights:.0} MiB, peak resident {:.0} MiB",
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
