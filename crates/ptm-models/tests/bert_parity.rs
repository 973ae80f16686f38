//! BERT against transformers: fixtures in tests/fixtures/bert-* written by
//! tests/fixtures/make_fixtures.py (torch 2.15, transformers 5.24), one per class, inputs with
//! padding and two segments. Tolerances as for GPT-2 (relative to each tensor's largest
//! magnitude): forward 1e-4, gradients 1e-3 (or 1e-6 absolute where they vanish in exact
//! arithmetic), one AdamW step 1e-5.

mod common;

use common::{assert_rel, check_grads_and_step, expected, fixture, scratch};
use ptm_models::bert::{
    BertCheckpoint, BertForMaskedLm, BertForSequenceClassification, BertForTokenClassification,
    BertInputs, BertModel,
};
use ptm_models::Architecture;
use ptm_tensor::{DType, Tensor};
use std::collections::BTreeMap;

type Exp = BTreeMap<String, Tensor>;

fn inputs(exp: &Exp) -> BertInputs<'_> {
    BertInputs {
        attention_mask: Some(&exp["attention_mask"]),
        token_type_ids: Some(&exp["token_type_ids"]),
        train: false,
    }
}

/// Loads the fixture, checks the load was clean, and returns the checkpoint.
fn load<M: Architecture>(dir: &str) -> BertCheckpoint<M> {
    let ck = BertCheckpoint::<M>::from_pretrained(fixture(dir), DType::F32, None).unwrap();
    assert!(
        ck.report.unexpected.is_empty() && ck.report.initialized.is_empty(),
        "{dir}: {:?}",
        ck.report
    );
    ck
}

#[test]
fn bert_model_matches_transformers() {
    let (ck, exp) = (load::<BertModel>("bert-base"), expected("bert-base"));
    let (hidden, pooled) = ck.model.forward(&exp["input_ids"], inputs(&exp)).unwrap();
    let pooled = pooled.unwrap();
    assert_rel(
        &hidden,
        &exp["last_hidden_state"],
        1e-4,
        "last_hidden_state",
    );
    assert_rel(&pooled, &exp["pooler_output"], 1e-4, "pooler_output");
    let loss = hidden
        .mul(&hidden)
        .unwrap()
        .mean_all()
        .unwrap()
        .add(&pooled.sum_all().unwrap())
        .unwrap();
    assert_rel(&loss, &exp["loss"], 1e-5, "loss");
    check_grads_and_step(&ck.params, &loss, &exp, "BertModel");
}

#[test]
fn masked_lm_matches_transformers() {
    let (ck, exp) = (load::<BertForMaskedLm>("bert-mlm"), expected("bert-mlm"));
    let (logits, hidden) = ck.model.forward(&exp["input_ids"], inputs(&exp)).unwrap();
    assert_rel(
        &hidden,
        &exp["last_hidden_state"],
        1e-4,
        "last_hidden_state",
    );
    assert_rel(&logits, &exp["logits"], 1e-4, "logits");
    let loss = BertForMaskedLm::mlm_loss(&logits, &exp["labels"]).unwrap();
    assert_rel(&loss, &exp["loss"], 1e-5, "loss");
    check_grads_and_step(&ck.params, &loss, &exp, "BertForMaskedLM");
}

/// `forward_at` (the head at the scored positions only) gives transformers' logits at those
/// positions, and the same loss and gradients as the full head.
#[test]
fn masked_lm_at_scored_positions_matches_transformers() {
    let (ck, exp) = (load::<BertForMaskedLm>("bert-mlm"), expected("bert-mlm"));
    let labels = exp["labels"]
        .flatten_all()
        .unwrap()
        .to_vec::<i64>()
        .unwrap();
    let (pos, targets): (Vec<u32>, Vec<i64>) = labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| l != -100)
        .map(|(i, &l)| (i as u32, l))
        .unzip();
    assert!(pos.len() > 1, "the fixture scores several positions");
    let m = pos.len();
    let cpu = ptm_tensor::Device::Cpu;
    let positions = Tensor::from_vec(pos, [m], &cpu).unwrap();
    let logits = ck
        .model
        .forward_at(&exp["input_ids"], inputs(&exp), &positions)
        .unwrap();
    let vocab = exp["logits"].dims()[2];
    let want = exp["logits"]
        .reshape([labels.len(), vocab])
        .unwrap()
        .index_select(0, &positions)
        .unwrap();
    assert_rel(&logits, &want, 1e-4, "logits at scored positions");
    let targets = Tensor::from_vec(targets, [m], &cpu).unwrap();
    let loss = logits.cross_entropy(&targets, -100).unwrap();
    assert_rel(&loss, &exp["loss"], 1e-5, "loss");
    check_grads_and_step(
        &ck.params,
        &loss,
        &exp,
        "BertForMaskedLM (scored positions)",
    );
}

#[test]
fn sequence_classification_matches_transformers() {
    let (ck, exp) = (
        load::<BertForSequenceClassification>("bert-seqcls"),
        expected("bert-seqcls"),
    );
    let (logits, hidden) = ck.model.forward(&exp["input_ids"], inputs(&exp)).unwrap();
    assert_rel(
        &hidden,
        &exp["last_hidden_state"],
        1e-4,
        "last_hidden_state",
    );
    assert_rel(&logits, &exp["logits"], 1e-4, "logits");
    let loss = BertForSequenceClassification::loss(&logits, &exp["labels"]).unwrap();
    assert_rel(&loss, &exp["loss"], 1e-5, "loss");
    check_grads_and_step(&ck.params, &loss, &exp, "BertForSequenceClassification");
}

#[test]
fn token_classification_matches_transformers() {
    let (ck, exp) = (
        load::<BertForTokenClassification>("bert-tokcls"),
        expected("bert-tokcls"),
    );
    let (logits, hidden) = ck.model.forward(&exp["input_ids"], inputs(&exp)).unwrap();
    assert_rel(
        &hidden,
        &exp["last_hidden_state"],
        1e-4,
        "last_hidden_state",
    );
    assert_rel(&logits, &exp["logits"], 1e-4, "logits");
    let loss = BertForTokenClassification::loss(&logits, &exp["labels"]).unwrap();
    assert_rel(&loss, &exp["loss"], 1e-5, "loss");
    check_grads_and_step(&ck.params, &loss, &exp, "BertForTokenClassification");
}

#[test]
fn a_new_head_on_a_pretrained_body_is_initialised_and_reported() {
    // The masked-LM checkpoint has no classifier and no pooler: both are new, the body loads.
    let ck = BertCheckpoint::<BertForSequenceClassification>::from_pretrained(
        fixture("bert-mlm"),
        DType::F32,
        None,
    )
    .unwrap();
    let mut new = ck.report.initialized.clone();
    new.sort();
    assert_eq!(
        new,
        [
            "bert.pooler.dense.bias",
            "bert.pooler.dense.weight",
            "classifier.bias",
            "classifier.weight"
        ]
    );
    assert!(
        ck.report
            .unexpected
            .iter()
            .all(|k| k.starts_with("cls.predictions.")),
        "{:?}",
        ck.report.unexpected
    );
    let mlm = load::<BertForMaskedLm>("bert-mlm");
    let a = ck
        .params
        .get("bert.encoder.layer.1.output.dense.weight")
        .unwrap()
        .tensor();
    let b = mlm
        .params
        .get("bert.encoder.layer.1.output.dense.weight")
        .unwrap()
        .tensor();
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
}

#[test]
fn legacy_gamma_beta_names_and_save_round_trip() {
    let exp = expected("bert-base");
    let ck = load::<BertModel>("bert-base");
    // Rename every LayerNorm weight/bias to the legacy gamma/beta and reload.
    let dir = scratch("bert-legacy");
    std::fs::copy(
        fixture("bert-base").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let tensors =
        ptm_tensor::safetensors::load(fixture("bert-base").join("model.safetensors")).unwrap();
    let renamed: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(k, v)| {
            let k = if k.contains("LayerNorm") {
                k.replace("LayerNorm.weight", "LayerNorm.gamma")
                    .replace("LayerNorm.bias", "LayerNorm.beta")
            } else {
                k
            };
            (k, v)
        })
        .collect();
    ptm_tensor::safetensors::save(
        renamed.iter().map(|(k, v)| (k.as_str(), v)),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let legacy = BertCheckpoint::<BertModel>::from_pretrained(&dir, DType::F32, None).unwrap();
    assert!(legacy.report.unexpected.is_empty());
    let (h, _) = legacy
        .model
        .forward(&exp["input_ids"], inputs(&exp))
        .unwrap();
    assert_rel(
        &h,
        &exp["last_hidden_state"],
        1e-4,
        "hidden from legacy names",
    );
    // save_pretrained writes transformers' names back.
    let out = scratch("bert-saved");
    ck.save_pretrained(&out).unwrap();
    let ours = ptm_tensor::safetensors::load(out.join("model.safetensors")).unwrap();
    let theirs =
        ptm_tensor::safetensors::load(fixture("bert-base").join("model.safetensors")).unwrap();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
}

#[test]
fn fresh_bert_initialises_as_transformers() {
    let cfg = ptm_models::bert::BertConfig {
        vocab_size: 50,
        hidden_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 16,
        ..Default::default()
    };
    let ck = BertCheckpoint::<BertModel>::from_config(cfg, DType::F32, 3, None).unwrap();
    let table = ck
        .params
        .get("embeddings.word_embeddings.weight")
        .unwrap()
        .tensor()
        .to_vec2::<f32>()
        .unwrap();
    assert!(
        table[0].iter().all(|&x| x == 0.0),
        "the [PAD] row starts at zero"
    );
    let spread = table[1..]
        .iter()
        .flatten()
        .map(|&x| (x as f64).powi(2))
        .sum::<f64>()
        / (49.0 * 8.0);
    assert!(
        (spread.sqrt() - 0.02).abs() < 0.004,
        "std {}",
        spread.sqrt()
    );
    let ln = ck
        .params
        .get("encoder.layer.0.output.LayerNorm.weight")
        .unwrap()
        .tensor()
        .to_vec::<f32>()
        .unwrap();
    assert!(ln.iter().all(|&x| x == 1.0));
}
