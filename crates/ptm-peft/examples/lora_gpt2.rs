//! LoRA on a small GPT-2: add an adapter, train it on a toy sequence while the base stays frozen,
//! save it in PEFT's format, merge it into the weights.
//!
//! `cargo run --release -p ptm-peft --example lora_gpt2 [OUT_DIR]`

use ptm_models::gpt2::{Gpt2Config, Gpt2Inputs, Gpt2LmHeadModel};
use ptm_models::Checkpoint;
use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer};
use ptm_peft::{LoraConfig, PeftConfig, PeftKind, PeftModel, Targets};
use ptm_tensor::{DType, Device, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/lora_gpt2".into());
    let cfg = Gpt2Config {
        vocab_size: 64,
        n_positions: 32,
        n_embd: 32,
        n_layer: 2,
        n_head: 4,
        ..Default::default()
    };
    // The base model is built with PEFT's hooks so adapters can be placed in it.
    let hooks = PeftModel::<Gpt2LmHeadModel>::hooks();
    let base = Checkpoint::<Gpt2LmHeadModel>::from_config(cfg, DType::F32, 0, Some(hooks.clone()))?;
    let mut model = PeftModel::new(base, hooks)?;
    let lora = LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        target_modules: Some(Targets::names(&["c_attn", "c_proj"])),
        fan_in_fan_out: true,
        ..Default::default()
    };
    model.add_adapter(
        "default",
        PeftConfig::new(PeftKind::Lora(lora), Some("CAUSAL_LM")),
        0,
    )?;
    println!("{}", model.param_counts());

    // A counting sequence the frozen random model cannot predict.
    let ids: Vec<u32> = (0..2 * 24).map(|i| (i % 24) as u32).collect();
    let ids = Tensor::from_vec(ids, [2, 24], &Device::Cpu)?;
    let labels = ids.to_dtype(DType::I64)?;
    let mut opt = AdamW::new(
        model.base().params.trainable(),
        AdamWConfig {
            lr: 1e-2,
            ..Default::default()
        },
        |_| true,
    )?;
    for step in 0..=60 {
        let loss = model.model().loss(&ids, &labels, Gpt2Inputs::default())?;
        if step % 20 == 0 {
            println!("step {step:3}: loss {:.4}", loss.to_scalar::<f32>()?);
        }
        let grads = loss.backward()?;
        opt.step(&grads)?;
    }
    model.save_adapter(&out, "default")?;
    println!("adapter saved in {out} (adapter_config.json, adapter_model.safetensors)");

    let (before, _) = model.model().forward(&ids, Gpt2Inputs::default())?;
    model.merge_adapter()?;
    let (after, _) = model.model().forward(&ids, Gpt2Inputs::default())?;
    let diff = before
        .sub(&after)?
        .abs()?
        .max(&[0usize, 1, 2][..])?
        .to_scalar::<f32>()?;
    println!("merged into the weights: largest logit change {diff:.2e}");
    Ok(())
}
