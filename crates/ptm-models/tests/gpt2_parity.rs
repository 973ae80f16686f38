//! GPT-2 against transformers: the fixtures in tests/fixtures/gpt2 were written by
//! tests/fixtures/make_fixtures.py (torch 2.15, transformers 5.24). Tolerances (error relative to
//! each tensor's largest magnitude): forward 1e-4, gradients 1e-3, one AdamW step 1e-5.

mod common;

use common::{assert_rel, expected, fixture, rel_err, scratch};
use ptm_models::generation::GenerationConfig;
use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Inputs, Gpt2LmHeadModel, Gpt2Model};
use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer};
use ptm_tensor::{DType, GradStore, Tensor};

fn load_lm(dir: &str) -> Gpt2Checkpoint<Gpt2LmHeadModel> {
    Gpt2Checkpoint::<Gpt2LmHeadModel>::from_pretrained(fixture(dir), DType::F32, None).unwrap()
}

fn run(
    gpt: &Gpt2Checkpoint<Gpt2LmHeadModel>,
    exp: &std::collections::BTreeMap<String, Tensor>,
) -> (Tensor, Tensor) {
    let inputs = Gpt2Inputs {
        attention_mask: Some(&exp["attention_mask"]),
        ..Default::default()
    };
    gpt.model.forward(&exp["input_ids"], inputs).unwrap()
}

#[test]
fn lm_head_model_matches_transformers_forward_and_loss() {
    let (gpt, exp) = (load_lm("gpt2"), expected("gpt2"));
    assert!(gpt.report.unexpected.is_empty(), "{:?}", gpt.report);
    let (logits, hidden) = run(&gpt, &exp);
    assert_rel(
        &hidden,
        &exp["last_hidden_state"],
        1e-4,
        "last_hidden_state",
    );
    assert_rel(&logits, &exp["logits"], 1e-4, "logits");
    let loss = Gpt2LmHeadModel::lm_loss(&logits, &exp["labels"]).unwrap();
    assert_rel(&loss, &exp["loss"], 1e-5, "loss");
}

#[test]
fn gradients_of_every_parameter_match_transformers_through_both_loss_paths() {
    let (gpt, exp) = (load_lm("gpt2"), expected("gpt2"));
    let inputs = || Gpt2Inputs {
        attention_mask: Some(&exp["attention_mask"]),
        ..Default::default()
    };
    // The training path: fused linear cross-entropy, logits never materialised.
    let fused = gpt
        .model
        .loss(&exp["input_ids"], &exp["labels"], inputs())
        .unwrap();
    assert_rel(&fused, &exp["loss"], 1e-5, "fused loss");
    // The plain path: logits, then cross-entropy.
    let (logits, _) = gpt.model.forward(&exp["input_ids"], inputs()).unwrap();
    let plain = Gpt2LmHeadModel::lm_loss(&logits, &exp["labels"]).unwrap();
    let params = gpt.params.all();
    let want: Vec<&String> = exp.keys().filter(|k| k.starts_with("grad.")).collect();
    assert_eq!(
        params.len(),
        want.len(),
        "parameter count differs from transformers'"
    );
    for loss in [fused, plain] {
        let grads = loss.backward().unwrap();
        for (name, p) in &params {
            let g = grads
                .get(&p.tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            assert_rel(g, &exp[&format!("grad.{name}")], 1e-3, name);
        }
    }
}

#[test]
fn one_adamw_step_matches_torch() {
    let (gpt, exp) = (load_lm("gpt2"), expected("gpt2"));
    // The reference gradients, so that this checks the optimizer alone.
    let mut grads = GradStore::new();
    for (name, p) in gpt.params.all() {
        grads.insert(&p.tensor(), exp[&format!("grad.{name}")].clone());
    }
    let cfg = AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut opt = AdamW::new(gpt.params.all(), cfg, |_| true).unwrap();
    opt.step(&grads).unwrap();
    for (name, p) in gpt.params.all() {
        assert_rel(&p.tensor(), &exp[&format!("adamw.{name}")], 1e-5, &name);
    }
}

#[test]
fn a_training_step_updates_every_weight_in_place_once_the_loss_is_dropped() {
    // Nothing in the model may keep a weight alive past its graph (a cached transpose, a tied
    // copy): then the optimizer writes each buffer where it is instead of copying 500 MB a step
    // at GPT-2 124M.
    let (gpt, exp) = (load_lm("gpt2"), expected("gpt2"));
    let address = |t: &Tensor| t.values::<f32>().unwrap().as_ptr() as usize;
    let mut opt = AdamW::new(gpt.params.trainable(), AdamWConfig::default(), |_| true).unwrap();
    for step in 0..2 {
        let inputs = Gpt2Inputs {
            attention_mask: Some(&exp["attention_mask"]),
            train: true,
            ..Default::default()
        };
        let loss = gpt
            .model
            .loss(&exp["input_ids"], &exp["labels"], inputs)
            .unwrap();
        let grads = loss.backward().unwrap();
        drop(loss);
        let before: Vec<(String, usize)> = gpt
            .params
            .trainable()
            .into_iter()
            .map(|(n, p)| (n, address(&p.tensor())))
            .collect();
        opt.step(&grads).unwrap();
        for ((name, p), (_, was)) in gpt.params.trainable().into_iter().zip(&before) {
            assert_eq!(address(&p.tensor()), *was, "step {step} copied {name}");
        }
    }
}

#[test]
fn greedy_generation_gives_transformers_token_ids() {
    let (gpt, exp) = (load_lm("gpt2"), expected("gpt2"));
    let prompt: Vec<u32> = exp["prompt_ids"]
        .to_vec::<i64>()
        .unwrap()
        .iter()
        .map(|&x| x as u32)
        .collect();
    let want: Vec<u32> = exp["greedy_ids"]
        .to_vec::<i64>()
        .unwrap()
        .iter()
        .map(|&x| x as u32)
        .collect();
    let cfg = GenerationConfig {
        max_new_tokens: want.len() - prompt.len(),
        eos_token_id: gpt.config.eos_token_id,
        ..Default::default()
    };
    let mut streamed = vec![];
    let got = gpt
        .model
        .generate(&prompt, &cfg, |t| streamed.push(t))
        .unwrap();
    assert_eq!(got, want);
    assert_eq!(streamed, want[prompt.len()..]);
}

#[test]
fn kv_cache_gives_the_same_logits_as_a_full_pass() {
    let (gpt, exp) = (load_lm("gpt2"), expected("gpt2"));
    let ids = exp["input_ids"].narrow(0, 0, 1).unwrap();
    let (full, _) = gpt.model.forward(&ids, Gpt2Inputs::default()).unwrap();
    let mut cache = ptm_models::gpt2::KvCache::new();
    let mut steps = vec![];
    for (start, len) in [(0, 5), (5, 1), (6, 3)] {
        let inputs = Gpt2Inputs {
            cache: Some(&mut cache),
            ..Default::default()
        };
        steps.push(
            gpt.model
                .forward(&ids.narrow(1, start, len).unwrap(), inputs)
                .unwrap()
                .0,
        );
    }
    let stepped = Tensor::cat(&steps, 1).unwrap();
    assert!(rel_err(&stepped, &full) <= 1e-5);
}

#[test]
fn bare_gpt2_model_file_without_prefix_loads_both_classes() {
    let exp = expected("gpt2");
    let base = Gpt2Checkpoint::<Gpt2Model>::from_pretrained(fixture("gpt2-base"), DType::F32, None)
        .unwrap();
    let inputs = Gpt2Inputs {
        attention_mask: Some(&exp["attention_mask"]),
        ..Default::default()
    };
    let hidden = base.model.forward(&exp["input_ids"], inputs).unwrap();
    assert_rel(
        &hidden,
        &exp["last_hidden_state"],
        1e-4,
        "GPT2Model last_hidden_state",
    );
    // GPT2LMHeadModel from the prefix-less file: the head is tied, so nothing is missing.
    let lm = load_lm("gpt2-base");
    let (logits, _) = run(&lm, &exp);
    assert_rel(&logits, &exp["logits"], 1e-4, "logits from the bare file");
}

#[test]
fn save_pretrained_round_trips_with_transformers_names() {
    let gpt = load_lm("gpt2");
    let dir = scratch("gpt2-saved");
    gpt.save_pretrained(&dir).unwrap();
    let ours = ptm_tensor::safetensors::load(dir.join("model.safetensors")).unwrap();
    let theirs = ptm_tensor::safetensors::load(fixture("gpt2").join("model.safetensors")).unwrap();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (k, t) in &theirs {
        assert_eq!(
            ours[k].to_vec::<f32>().unwrap(),
            t.to_vec::<f32>().unwrap(),
            "{k}"
        );
    }
    let back = load_lm(dir.to_str().unwrap());
    assert_eq!(back.config.n_embd, gpt.config.n_embd);
    let exp = expected("gpt2");
    assert_eq!(
        run(&back, &exp).0.to_vec::<f32>().unwrap(),
        run(&gpt, &exp).0.to_vec::<f32>().unwrap()
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "GPT2LMHeadModel");
    assert_eq!(
        cfg["transformers_version"], "5.24.0",
        "unknown keys are kept"
    );
}
