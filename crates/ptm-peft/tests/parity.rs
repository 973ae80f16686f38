//! ptm-peft against Python peft: adapters in tests/fixtures/peft/ written by
//! tests/fixtures/make_peft_fixtures.py (peft 0.21, transformers 5.24, torch 2.15) on the
//! base-model fixtures. Tolerances relative to each tensor's largest magnitude: outputs 1e-4
//! (measured ≤ 2e-6), gradients 1e-3 (measured ≤ 2e-6).

use ptm_models::bert::{BertForSequenceClassification, BertInputs};
use ptm_models::gpt2::{Gpt2Inputs, Gpt2LmHeadModel};
use ptm_models::vit::VitForImageClassification;
use ptm_models::Architecture;
use ptm_peft::{PeftConfig, PeftModel};
use ptm_tensor::{DType, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn expected(adapter: &str) -> BTreeMap<String, Tensor> {
    ptm_tensor::safetensors::load(fixture(adapter).join("expected.safetensors")).unwrap()
}

fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = g
        .iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

fn assert_rel(got: &Tensor, want: &Tensor, tol: f64, what: &str) {
    let e = rel_err(got, want);
    eprintln!("{what}: relative error {e:.2e} (tolerance {tol:.0e})");
    assert!(e <= tol, "{what}: relative error {e:.3e} > {tol:.0e}");
}

/// The base fixture with the peft-written adapter loaded as "default".
fn load<M: Architecture>(base: &str, adapter: &str) -> PeftModel<M> {
    let mut m = PeftModel::<M>::from_pretrained(fixture(base), DType::F32).unwrap();
    m.load_adapter(fixture(adapter), "default").unwrap();
    m
}

/// A fresh adapter from the fixture's config has exactly the parameter counts peft reported.
fn check_counts<M: Architecture>(base: &str, adapter: &str) {
    let exp = expected(adapter);
    let mut m = PeftModel::<M>::from_pretrained(fixture(base), DType::F32).unwrap();
    let cfg = PeftConfig::read(&fixture(adapter).join("adapter_config.json")).unwrap();
    m.add_adapter("default", cfg, 0).unwrap();
    let c = m.param_counts();
    eprintln!("{adapter}: {c}");
    let want = |k: &str| exp[k].to_scalar::<i64>().unwrap() as usize;
    assert_eq!(
        (c.trainable, c.all),
        (want("trainable"), want("all")),
        "{adapter}"
    );
}

fn gpt2_logits(m: &PeftModel<Gpt2LmHeadModel>, exp: &BTreeMap<String, Tensor>) -> Tensor {
    let inputs = Gpt2Inputs {
        attention_mask: Some(&exp["attention_mask"]),
        ..Default::default()
    };
    m.model().forward(&exp["input_ids"], inputs).unwrap().0
}

#[test]
fn gpt2_lora_matches_peft_outputs_and_gradients() {
    let exp = expected("peft/gpt2-lora");
    let m = load::<Gpt2LmHeadModel>("gpt2", "peft/gpt2-lora");
    assert_rel(
        &gpt2_logits(&m, &exp),
        &exp["logits"],
        1e-4,
        "gpt2-lora logits",
    );

    let inputs = Gpt2Inputs {
        attention_mask: Some(&exp["attention_mask"]),
        ..Default::default()
    };
    let loss = m
        .model()
        .loss(&exp["input_ids"], &exp["labels"], inputs)
        .unwrap();
    assert_rel(&loss, &exp["loss"], 1e-5, "gpt2-lora loss");
    let grads = loss.backward().unwrap();
    let saved = m.saved_tensors("default").unwrap();
    let in_file =
        ptm_tensor::safetensors::load(fixture("peft/gpt2-lora").join("adapter_model.safetensors"))
            .unwrap();
    let mut files: Vec<&String> = saved.iter().map(|(_, f)| f).collect();
    files.sort();
    assert_eq!(
        files,
        in_file.keys().collect::<Vec<_>>(),
        "saved tensors are the file's"
    );
    for (store, file) in &saved {
        let p = m.base().params.get(store).unwrap();
        assert!(p.is_trainable(), "{store} must train");
        let g = grads
            .get(&p.tensor())
            .unwrap_or_else(|| panic!("no gradient for {store}"));
        assert_rel(g, &exp[&format!("grad.{file}")], 1e-3, file);
    }
    // Nothing else trains.
    let (trainable, _) = m.base().params.counts();
    let saved_elems: usize = saved
        .iter()
        .map(|(s, _)| m.base().params.get(s).unwrap().tensor().elem_count())
        .sum();
    assert_eq!(trainable, saved_elems);
    check_counts::<Gpt2LmHeadModel>("gpt2", "peft/gpt2-lora");
}

#[test]
fn bert_lora_matches_peft() {
    let exp = expected("peft/bert-lora");
    let m = load::<BertForSequenceClassification>("bert-seqcls", "peft/bert-lora");
    let inputs = BertInputs {
        attention_mask: Some(&exp["attention_mask"]),
        token_type_ids: Some(&exp["token_type_ids"]),
        train: false,
    };
    let (logits, _) = m.model().forward(&exp["input_ids"], inputs).unwrap();
    assert_rel(&logits, &exp["logits"], 1e-4, "bert-lora logits");
    check_counts::<BertForSequenceClassification>("bert-seqcls", "peft/bert-lora");
}

#[test]
fn vit_lora_matches_peft_under_transformers5_names() {
    let exp = expected("peft/vit-lora");
    let m = load::<VitForImageClassification>("vit-cls", "peft/vit-lora");
    let (logits, _) = m.model().forward(&exp["pixel_values"], false).unwrap();
    assert_rel(&logits, &exp["logits"], 1e-4, "vit-lora logits");
    check_counts::<VitForImageClassification>("vit-cls", "peft/vit-lora");
}

#[test]
fn gpt2_prefix_tuning_matches_peft() {
    let exp = expected("peft/gpt2-prefix");
    let m = load::<Gpt2LmHeadModel>("gpt2", "peft/gpt2-prefix");
    assert_rel(
        &gpt2_logits(&m, &exp),
        &exp["logits"],
        1e-4,
        "gpt2-prefix logits",
    );
    check_counts::<Gpt2LmHeadModel>("gpt2", "peft/gpt2-prefix");
}

#[test]
fn gpt2_ia3_matches_peft() {
    let exp = expected("peft/gpt2-ia3");
    let m = load::<Gpt2LmHeadModel>("gpt2", "peft/gpt2-ia3");
    assert_rel(
        &gpt2_logits(&m, &exp),
        &exp["logits"],
        1e-4,
        "gpt2-ia3 logits",
    );
    check_counts::<Gpt2LmHeadModel>("gpt2", "peft/gpt2-ia3");
}
