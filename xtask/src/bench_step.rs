//! `cargo xtask bench train-step`: milliseconds per training step of GPT-2 124M (random init,
//! AdamW) on the CPU, for comparison with `benches/train_step_torch.py` on the same machine; on a
//! GPU with `--device cuda` when xtask is built with its `cuda` feature
//! (`cargo run --release -p xtask --features cuda -- bench train-step --device cuda`).

use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Config, Gpt2Inputs, Gpt2LmHeadModel};
use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer};
use ptm_tensor::{DType, Device, Rng, Tensor};
use std::time::Instant;

/// Times `steps` steps (after 2 warm-up steps) for each sequence length; prints the median.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut batch = 4usize;
    let mut seqs = vec![64usize, 128];
    let mut steps = 5usize;
    let mut device = Device::Cpu;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .cloned()
        };
        match a.as_str() {
            "--batch" => {
                batch = val("--batch")?
                    .parse()
                    .map_err(|e| format!("--batch: {e}"))?
            }
            "--steps" => {
                steps = val("--steps")?
                    .parse()
                    .map_err(|e| format!("--steps: {e}"))?
            }
            "--device" => device = val("--device")?.parse().map_err(|e: ptm_tensor::Error| e.to_string())?,
            "--seq" => {
                seqs = val("--seq")?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--seq {s}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            other => {
                return Err(format!(
                "bench train-step: unknown option {other} (known: --batch N, --seq A,B, --steps N, --device cpu|cuda:N)"
            ))
            }
        }
    }
    let cfg = Gpt2Config::default();
    let gpt = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(cfg, DType::F32, 0, None)
        .map_err(|e| e.to_string())?;
    gpt.params.to_device(&device).map_err(|e| e.to_string())?;
    let mut opt = AdamW::new(gpt.params.trainable(), AdamWConfig::default(), |_| true)
        .map_err(|e| e.to_string())?;
    println!(
        "GPT-2 124M ({} parameters), AdamW, f32, on {device}, {} CPU threads",
        gpt.params.counts().1,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let mut rng = Rng::new(1);
    for t in seqs {
        let ids: Vec<u32> = (0..batch * t)
            .map(|_| (rng.next_u64() % 50257) as u32)
            .collect();
        let ids = Tensor::from_vec(ids, [batch, t], &Device::Cpu).map_err(|e| e.to_string())?;
        let labels = ids.to_dtype(DType::I64).map_err(|e| e.to_string())?;
        let mut times = vec![];
        for i in 0..steps + 2 {
            let t0 = Instant::now();
            let inputs = Gpt2Inputs {
                train: true,
                ..Default::default()
            };
            let loss = gpt
                .model
                .loss(&ids, &labels, inputs)
                .map_err(|e| e.to_string())?;
            let grads = loss.backward().map_err(|e| e.to_string())?;
            drop(loss); // the graph holds the weights; without it the step updates them in place
            opt.step(&grads).map_err(|e| e.to_string())?;
            if i >= 2 {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!(
            "B={batch} T={t}: {:.0} ms/step (median of {steps}; min {:.0}, max {:.0}), {:.0} tokens/s",
            med * 1e3,
            times[0] * 1e3,
            times[times.len() - 1] * 1e3,
            (batch * t) as f64 / med
        );
    }
    Ok(())
}
