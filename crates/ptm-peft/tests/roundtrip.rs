//! Adapters saved by ptm load in Python peft with the same outputs.
//!
//! This test writes one adapter of each kind peft knows (fresh, seeded, every weight perturbed so
//! none is at its initial value) with the outputs ptm computes from it into
//! `target/tmp/peft-export/`. `tests/fixtures/check_peft_saved.py` (run by hand with the reference
//! environment) loads each into peft, compares peft's outputs with ptm's and records the result
//! and the sha256 of the files it checked in `tests/fixtures/peft/roundtrip.json`. The test then
//! requires that record to cover the files written now (same bytes) with agreement within 1e-4,
//! so a change to what ptm writes fails here until peft has been shown to read it.

use ptm_models::bert::{BertForSequenceClassification, BertInputs};
use ptm_models::gpt2::{Gpt2Inputs, Gpt2LmHeadModel};
use ptm_models::vit::VitForImageClassification;
use ptm_models::Architecture;
use ptm_peft::{
    Ia3Config, LoraBias, LoraConfig, PeftConfig, PeftKind, PeftModel, PrefixTuningConfig, Targets,
};
use ptm_tensor::{DType, Device, Rng, Tensor};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn expected(name: &str) -> BTreeMap<String, Tensor> {
    ptm_tensor::safetensors::load(fixture(name).join("expected.safetensors")).unwrap()
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Adds the adapter, perturbs every adapter weight (seeded), saves it into `out/<name>` with
/// `ptm_logits.safetensors`.
fn export<M: Architecture>(
    out: &Path,
    name: &str,
    base: &str,
    config: PeftConfig,
    logits: impl Fn(&PeftModel<M>) -> Tensor,
) {
    let mut m = PeftModel::<M>::from_pretrained(fixture(base), DType::F32).unwrap();
    m.add_adapter("default", config, 7).unwrap();
    let mut rng = Rng::new(99);
    for (store, _) in m.saved_tensors("default").unwrap() {
        let p = m.base().params.get(&store).unwrap();
        let t = p.tensor();
        let noise = Tensor::randn(0.0, 0.2, t.dims(), DType::F32, &mut rng, &Device::Cpu).unwrap();
        p.set(t.add(&noise).unwrap()).unwrap();
    }
    let dir = out.join(name);
    m.save_adapter(&dir, "default").unwrap();
    let l = logits(&m);
    ptm_tensor::safetensors::save([("logits", &l)], dir.join("ptm_logits.safetensors")).unwrap();
}

fn gpt2_logits(m: &PeftModel<Gpt2LmHeadModel>) -> Tensor {
    let exp = expected("gpt2");
    let inputs = Gpt2Inputs {
        attention_mask: Some(&exp["attention_mask"]),
        ..Default::default()
    };
    m.model().forward(&exp["input_ids"], inputs).unwrap().0
}

#[test]
fn adapters_saved_by_ptm_load_in_peft() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("peft-export");
    let _ = std::fs::remove_dir_all(&out);
    let task = |kind, t: &str| PeftConfig::new(kind, Some(t));
    export::<Gpt2LmHeadModel>(
        &out,
        "gpt2-lora",
        "gpt2",
        task(
            PeftKind::Lora(LoraConfig {
                r: 3,
                lora_alpha: 6.0,
                target_modules: Some(Targets::names(&["c_attn", "mlp.c_fc"])),
                fan_in_fan_out: true,
                bias: LoraBias::All,
                ..Default::default()
            }),
            "CAUSAL_LM",
        ),
        gpt2_logits,
    );
    export::<Gpt2LmHeadModel>(
        &out,
        "gpt2-ia3",
        "gpt2",
        task(PeftKind::Ia3(Ia3Config::default()), "CAUSAL_LM"),
        gpt2_logits,
    );
    export::<Gpt2LmHeadModel>(
        &out,
        "gpt2-prefix",
        "gpt2",
        task(
            PeftKind::PrefixTuning(PrefixTuningConfig {
                num_virtual_tokens: 4,
                ..Default::default()
            }),
            "CAUSAL_LM",
        ),
        gpt2_logits,
    );
    export::<BertForSequenceClassification>(
        &out,
        "bert-lora",
        "bert-seqcls",
        task(
            PeftKind::Lora(LoraConfig {
                r: 2,
                target_modules: Some(Targets::Regex(r".*\.(query|key|value)".into())),
                use_rslora: true,
                ..Default::default()
            }),
            "SEQ_CLS",
        ),
        |m| {
            let exp = expected("bert-seqcls");
            let inputs = BertInputs {
                attention_mask: Some(&exp["attention_mask"]),
                token_type_ids: Some(&exp["token_type_ids"]),
                train: false,
            };
            m.model().forward(&exp["input_ids"], inputs).unwrap().0
        },
    );
    export::<VitForImageClassification>(
        &out,
        "vit-lora",
        "vit-cls",
        task(
            PeftKind::Lora(LoraConfig {
                r: 2,
                target_modules: Some(Targets::names(&["q_proj", "v_proj", "fc1"])),
                modules_to_save: Some(vec!["classifier".into()]),
                ..Default::default()
            }),
            "FEATURE_EXTRACTION",
        ),
        |m| {
            let exp = expected("vit-cls");
            m.model().forward(&exp["pixel_values"], false).unwrap().0
        },
    );

    let record_path = fixture("peft/roundtrip.json");
    let record: serde_json::Value = match std::fs::read_to_string(&record_path) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(_) => panic!(
            "{} is missing: run tests/fixtures/check_peft_saved.py {}",
            record_path.display(),
            out.display()
        ),
    };
    for name in [
        "gpt2-lora",
        "gpt2-ia3",
        "gpt2-prefix",
        "bert-lora",
        "vit-lora",
    ] {
        let r = &record[name];
        // ptm's logits are not hashed: their last bits depend on the CPU's kernels, while the
        // adapter files are drawn and written bit-exactly everywhere.
        for file in ["adapter_model.safetensors", "adapter_config.json"] {
            assert_eq!(
                r["sha256"][file].as_str(),
                Some(sha256(&out.join(name).join(file)).as_str()),
                "{name}/{file} differs from what peft was shown: rerun \
                 tests/fixtures/check_peft_saved.py {}",
                out.display()
            );
        }
        let err = r["max_rel_err"].as_f64().unwrap();
        eprintln!("{name}: peft's outputs vs ptm's: {err:.2e}");
        assert!(err <= 1e-4, "{name}: {err}");
    }
}
