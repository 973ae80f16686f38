//! GPT-2's training step on the GPU (feature `cuda`) against the same step on the CPU: a small
//! model with dropout on, loss and every parameter's gradient, then one AdamW step; and two SGD
//! steps with momentum, the optimizer's state included. Without a GPU it prints why and passes
//! (`PTM_REQUIRE_GPU=1` makes that a failure).
//!
//! Tolerance: 2e-4 relative to 1 + |value| in f32 (the GPU sums in other orders, with CUDA's
//! transcendentals; four layers compound that).

#![cfg(feature = "cuda")]

use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Config, Gpt2Inputs, Gpt2LmHeadModel};
use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use ptm_tensor::{DType, Device, Tensor};

const GPU: Device = Device::Cuda(0);

fn close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f64) {
    assert_eq!(gpu.dims(), cpu.dims(), "{what}");
    let (g, c) = (gpu.to_f64_vec().unwrap(), cpu.to_f64_vec().unwrap());
    let worst = g
        .iter()
        .zip(&c)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0f64, f64::max);
    assert!(worst <= tol, "{what}: worst relative difference {worst:e}");
}

fn gpu() -> bool {
    match Tensor::zeros([1], DType::F32, &GPU) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("PTM_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("PTM_REQUIRE_GPU=1 but {e}");
            }
            eprintln!("skipped: {e}");
            false
        }
    }
}

fn tiny() -> (Gpt2Config, Tensor, Tensor) {
    let cfg = Gpt2Config {
        vocab_size: 97,
        n_positions: 32,
        n_embd: 64,
        n_layer: 4,
        n_head: 4,
        ..Default::default()
    };
    let ids: Vec<u32> = (0..2 * 24).map(|i| (i * 37 % 97) as u32).collect();
    let ids = Tensor::from_vec(ids, [2, 24], &Device::Cpu).unwrap();
    let labels = ids.to_dtype(DType::I64).unwrap();
    (cfg, ids, labels)
}

#[test]
fn two_sgd_steps_with_momentum_on_the_gpu_match_the_cpu() {
    if !gpu() {
        return;
    }
    let (cfg, ids, labels) = tiny();
    let run = |dev: &Device| {
        let gpt = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(cfg.clone(), DType::F32, 0, None)
            .unwrap();
        gpt.params.to_device(dev).unwrap();
        let sgd = SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.01,
        };
        let mut opt = Sgd::new(gpt.params.trainable(), sgd).unwrap();
        for _ in 0..2 {
            let loss = gpt.model.loss(&ids, &labels, Default::default()).unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let after: Vec<Tensor> = gpt
            .params
            .trainable()
            .into_iter()
            .map(|(_, p)| p.tensor())
            .collect();
        (after, opt.state().unwrap())
    };
    let (pc, sc) = run(&Device::Cpu);
    let (pg, sg) = run(&GPU);
    for (i, (g, c)) in pg.iter().zip(&pc).enumerate() {
        assert_eq!(
            g.device(),
            GPU,
            "parameter {i} left the GPU after the steps"
        );
        close(&format!("parameter {i} after two SGD steps"), g, c, 2e-4);
    }
    assert_eq!(sg.len(), sc.len());
    for ((name, g), (_, c)) in sg.iter().zip(&sc) {
        assert_eq!(
            g.device(),
            Device::Cpu,
            "{name}: state is returned on the host"
        );
        close(name, g, c, 2e-4);
    }
}

#[test]
fn a_gpt2_training_step_on_the_gpu_matches_the_cpu() {
    if !gpu() {
        return;
    }
    let (cfg, ids, labels) = tiny();
    let run = |dev: &Device| {
        let gpt = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(cfg.clone(), DType::F32, 0, None)
            .unwrap();
        gpt.params.to_device(dev).unwrap();
        let mut opt = AdamW::new(gpt.params.trainable(), AdamWConfig::default(), |_| true).unwrap();
        let inputs = Gpt2Inputs {
            train: true,
            ..Default::default()
        };
        let loss = gpt.model.loss(&ids, &labels, inputs).unwrap();
        let grads = loss.backward().unwrap();
        let named: Vec<(String, Tensor)> = gpt
            .params
            .trainable()
            .into_iter()
            .map(|(n, p)| {
                let g = grads
                    .get(&p.tensor())
                    .unwrap_or_else(|| panic!("no gradient for {n}"))
                    .clone();
                (n, g)
            })
            .collect();
        opt.step(&grads).unwrap();
        let after: Vec<Tensor> = gpt
            .params
            .trainable()
            .into_iter()
            .map(|(_, p)| p.tensor())
            .collect();
        (loss, named, after)
    };
    let (lc, gc, pc) = run(&Device::Cpu);
    let (lg, gg, pg) = run(&GPU);
    close("loss", &lg, &lc, 2e-4);
    for ((name, g), (_, c)) in gg.iter().zip(&gc) {
        assert_eq!(g.device(), GPU, "{name}: gradient left the GPU");
        close(&format!("d {name}"), g, c, 2e-4);
    }
    for (i, (g, c)) in pg.iter().zip(&pc).enumerate() {
        assert_eq!(g.device(), GPU, "parameter {i} left the GPU after the step");
        close(&format!("parameter {i} after AdamW"), g, c, 2e-4);
    }
}
