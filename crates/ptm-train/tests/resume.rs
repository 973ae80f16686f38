//! A run interrupted at a checkpoint and resumed computes the same losses, step for step, and ends
//! with the same parameters as a run that never stopped (dropout, gradient accumulation, clipping
//! and a warm-up schedule all on, so every piece of saved state matters).

use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Config, Gpt2LmHeadModel};
use ptm_tensor::{DType, Rng};
use ptm_train::args::Strategy;
use ptm_train::data::LmData;
use ptm_train::{Trainer, TrainingArguments};
use std::path::PathBuf;

fn model() -> Gpt2Checkpoint<Gpt2LmHeadModel> {
    let cfg = Gpt2Config {
        vocab_size: 61,
        n_positions: 16,
        n_embd: 16,
        n_layer: 2,
        n_head: 2,
        resid_pdrop: 0.1,
        embd_pdrop: 0.1,
        attn_pdrop: 0.1,
        ..Default::default()
    };
    Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(cfg, DType::F32, 7, None).unwrap()
}

fn data() -> LmData {
    let mut rng = Rng::new(3);
    // Documents with structure (a repeated pattern plus noise) so the loss moves.
    let docs: Vec<Vec<u32>> = (0..40)
        .map(|d| {
            (0..23)
                .map(|i| {
                    if rng.uniform() < 0.3 {
                        (rng.next_u64() % 60) as u32
                    } else {
                        ((i * 7 + d) % 60) as u32
                    }
                })
                .collect()
        })
        .collect();
    LmData::pack(&docs, Some(60), 12, "synthetic").unwrap()
}

fn args(dir: &std::path::Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: dir.to_path_buf(),
        max_steps: 8,
        per_device_train_batch_size: 3,
        gradient_accumulation_steps: 2,
        learning_rate: 3e-2,
        weight_decay: 0.01,
        warmup_steps: 2,
        max_grad_norm: 0.5,
        logging_steps: 1,
        eval_strategy: Strategy::No,
        save_strategy: Strategy::Steps,
        save_steps: 3,
        seed: 11,
        ..Default::default()
    }
}

fn losses(log: &[ptm_train::checkpoint::LogEntry]) -> Vec<(usize, f64)> {
    log.iter().filter_map(|e| Some((e.step, e.loss?))).collect()
}

#[test]
fn resumed_run_matches_uninterrupted_run_step_for_step() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("resume-test");
    let _ = std::fs::remove_dir_all(&root);
    let train = data();

    let (a_dir, b_dir) = (root.join("straight"), root.join("interrupted"));
    let a = model();
    let straight = Trainer::new(&args(&a_dir), "straight")
        .train(&a, &train, None)
        .unwrap();
    assert!(!straight.interrupted);

    let b = model();
    let b_args = args(&b_dir);
    let mut t = Trainer::new(&b_args, "first half");
    t.stop_at_step = Some(4);
    let first = t.train(&b, &train, None).unwrap();
    assert!(first.interrupted && first.global_step == 4);
    // Steps 5.. are redone from the checkpoint at step 4 by a fresh process-like start: a new
    // model object, parameters and state read from disk only.
    let b2 = model();
    let resumed_args = TrainingArguments {
        resume_from_checkpoint: Some("latest".into()),
        ..args(&b_dir)
    };
    let second = Trainer::new(&resumed_args, "resumed")
        .train(&b2, &train, None)
        .unwrap();
    assert_eq!(second.global_step, 8);

    let (want, got) = (losses(&straight.log_history), losses(&second.log_history));
    assert_eq!(want.len(), 8);
    assert_eq!(got, want, "losses differ after resuming");
    for ((name, p), (_, q)) in a.params.all().iter().zip(b2.params.all().iter()) {
        assert_eq!(
            p.tensor().to_vec::<f32>().unwrap(),
            q.tensor().to_vec::<f32>().unwrap(),
            "{name}"
        );
    }
    // The log on disk tells the same story as the run that never stopped (all but the timing).
    let read = |d: &PathBuf| -> Vec<ptm_train::checkpoint::LogEntry> {
        std::fs::read_to_string(d.join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| ptm_train::checkpoint::LogEntry {
                tokens_per_s: None,
                ..serde_json::from_str(l).unwrap()
            })
            .collect()
    };
    assert_eq!(read(&b_dir), read(&a_dir), "log.jsonl differs");
}

#[test]
fn checkpoints_are_complete_and_rotated() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rotate-test");
    let _ = std::fs::remove_dir_all(&dir);
    let m = model();
    let a = TrainingArguments {
        save_steps: 2,
        save_total_limit: 2,
        max_steps: 7,
        ..args(&dir)
    };
    Trainer::new(&a, "rotate").train(&m, &data(), None).unwrap();
    let kept: Vec<usize> = ptm_train::checkpoint::list(&dir)
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(kept, vec![6, 7]);
    for f in [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "scheduler.json",
        "rng_state.json",
        "trainer_state.json",
    ] {
        assert!(
            dir.join("checkpoint-7").join(f).is_file(),
            "checkpoint-7 lacks {f}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary directories left behind: {leftovers:?}"
    );
}

/// The small GPT-2 with an adapter (the base built with PEFT's hooks, seeded the same way).
fn adapted(kind: ptm_peft::PeftKind) -> ptm_peft::PeftModel<Gpt2LmHeadModel> {
    let hooks = ptm_peft::PeftModel::<Gpt2LmHeadModel>::hooks();
    let cfg = model().config;
    let base =
        Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(cfg, DType::F32, 7, Some(hooks.clone()))
            .unwrap();
    let mut m = ptm_peft::PeftModel::new(base, hooks).unwrap();
    m.add_adapter(
        "default",
        ptm_peft::PeftConfig::new(kind, Some("CAUSAL_LM")),
        5,
    )
    .unwrap();
    m
}

/// Adapter training resumes exactly too: LoRA with its own dropout, and a prefix whose trained
/// parameters (embedding + projection) are not in the PEFT file but in `trainable.safetensors`.
#[test]
fn adapter_runs_resume_exactly() {
    use ptm_peft::{LoraConfig, PeftKind, PrefixTuningConfig, Targets};
    let kinds = || {
        [
            PeftKind::Lora(LoraConfig {
                r: 2,
                lora_dropout: 0.2,
                target_modules: Some(Targets::names(&["c_attn", "c_fc"])),
                ..Default::default()
            }),
            PeftKind::PrefixTuning(PrefixTuningConfig {
                num_virtual_tokens: 3,
                prefix_projection: true,
                encoder_hidden_size: Some(8),
                ..Default::default()
            }),
        ]
    };
    let train = data();
    for (i, kind) in kinds().into_iter().enumerate() {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("resume-peft-{i}"));
        let _ = std::fs::remove_dir_all(&root);
        let (a_dir, b_dir) = (root.join("straight"), root.join("interrupted"));
        let a = adapted(kind.clone());
        let straight = Trainer::new(&args(&a_dir), "straight")
            .train(&a, &train, None)
            .unwrap();
        let b = adapted(kind.clone());
        let b_args = args(&b_dir);
        let mut t = Trainer::new(&b_args, "first half");
        t.stop_at_step = Some(4);
        assert!(t.train(&b, &train, None).unwrap().interrupted);
        let ck = b_dir.join("checkpoint-3");
        for f in [
            "adapter_config.json",
            "adapter_model.safetensors",
            "trainable.safetensors",
        ] {
            assert!(ck.join(f).is_file(), "{} lacks {f}", ck.display());
        }
        let b2 = adapted(kind);
        let resumed = TrainingArguments {
            resume_from_checkpoint: Some("latest".into()),
            ..args(&b_dir)
        };
        let second = Trainer::new(&resumed, "resumed")
            .train(&b2, &train, None)
            .unwrap();
        assert_eq!(
            losses(&second.log_history),
            losses(&straight.log_history),
            "adapter {i}: losses differ after resuming"
        );
        for ((name, p), (_, q)) in a
            .base()
            .params
            .all()
            .iter()
            .zip(b2.base().params.all().iter())
        {
            assert_eq!(
                p.tensor().to_vec::<f32>().unwrap(),
                q.tensor().to_vec::<f32>().unwrap(),
                "adapter {i}: {name}"
            );
        }
    }
}
