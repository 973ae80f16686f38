//! Times GPT-2 training steps (forward, backward, AdamW) for a configuration given on the command
//! line: `cargo run --release -p ptm-models --example gpt2_step_timing -- EMBD LAYERS HEADS B T [VOCAB]`.

use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Config, Gpt2Inputs, Gpt2LmHeadModel};
use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer};
use ptm_tensor::{DType, Device, Rng, Tensor};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let arg = |i: usize, d: usize| a.get(i).copied().unwrap_or(d);
    let (embd, layers, heads, b, t, vocab) = (
        arg(0, 128),
        arg(1, 4),
        arg(2, 4),
        arg(3, 16),
        arg(4, 64),
        arg(5, 50257),
    );
    let cfg = Gpt2Config {
        vocab_size: vocab,
        n_positions: t.max(64),
        n_embd: embd,
        n_layer: layers,
        n_head: heads,
        ..Default::default()
    };
    let gpt = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(cfg, DType::F32, 0, None)?;
    let mut opt = AdamW::new(gpt.params.trainable(), AdamWConfig::default(), |_| true)?;
    let mut rng = Rng::new(1);
    let ids: Vec<u32> = (0..b * t)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, [b, t], &Device::Cpu)?;
    let labels = ids.to_dtype(DType::I64)?;
    for step in 0..6 {
        let t0 = Instant::now();
        let inputs = Gpt2Inputs {
            train: true,
            ..Default::default()
        };
        let t1 = Instant::now();
        let loss = gpt.model.loss(&ids, &labels, inputs)?;
        let t2 = Instant::now();
        let grads = loss.backward()?;
        let t3 = Instant::now();
        opt.step(&grads)?;
        let t4 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        println!(
            "step {step}: loss {:.4}  fwd+loss {:.0} ms  bwd {:.0} ms  adamw {:.0} ms  total {:.0} ms  ({:.0} tokens/s)",
            loss.to_scalar::<f32>()?, ms(t1, t2), ms(t2, t3), ms(t3, t4), ms(t0, t4),
            (b * t) as f64 / (t4 - t0).as_secs_f64()
        );
    }
    Ok(())
}
