//! Bad input to the model zoo: each an `Err` naming the file, tensor or value; nothing panics.

mod common;

use common::{fixture, scratch};
use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Inputs, Gpt2LmHeadModel};
use ptm_tensor::{DType, Device, Tensor};
use std::path::Path;

fn load(dir: &Path) -> Result<Gpt2Checkpoint<Gpt2LmHeadModel>, String> {
    Gpt2Checkpoint::<Gpt2LmHeadModel>::from_pretrained(dir, DType::F32, None)
        .map_err(|e| e.to_string())
}

/// A copy of the GPT-2 fixture whose config.json and weights can be changed.
fn copy_fixture(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("gpt2").join(f), dir.join(f)).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn missing_directory_and_missing_weights_are_named() {
    let e = load(Path::new("/no/such/model")).err().unwrap();
    assert!(e.contains("/no/such/model"), "{e}");
    let dir = copy_fixture("err-missing-weights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let e = load(&dir).err().unwrap();
    assert!(
        e.contains("model.safetensors") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn truncated_and_corrupt_weights_are_named() {
    let dir = copy_fixture("err-truncated");
    let f = dir.join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(&dir).err().unwrap();
    assert!(e.contains("model.safetensors"), "{e}");
    std::fs::write(&f, b"not a safetensors file at all").unwrap();
    let e = load(&dir).err().unwrap();
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named() {
    let dir = copy_fixture("err-shape");
    edit_config(&dir, |c| c["n_inner"] = 100.into());
    let e = load(&dir).err().unwrap();
    assert!(
        e.contains("transformer.h.0.mlp.c_fc.weight")
            && e.contains("[48, 192]")
            && e.contains("[48, 100]"),
        "{e}"
    );
}

#[test]
fn a_missing_tensor_is_listed() {
    let dir = copy_fixture("err-missing-tensor");
    let f = dir.join("model.safetensors");
    let mut all = ptm_tensor::safetensors::load(&f).unwrap();
    all.remove("transformer.h.1.ln_2.bias");
    ptm_tensor::safetensors::save(all.iter().map(|(k, v)| (k.as_str(), v)), &f).unwrap();
    let e = load(&dir).err().unwrap();
    assert!(
        e.contains("missing tensors") && e.contains("transformer.h.1.ln_2.bias"),
        "{e}"
    );
}

#[test]
fn an_unknown_model_type_or_bad_config_value_is_named() {
    let dir = copy_fixture("err-model-type");
    edit_config(&dir, |c| c["model_type"] = "llama".into());
    let e = load(&dir).err().unwrap();
    assert!(e.contains("config.json") && e.contains("llama"), "{e}");
    edit_config(&dir, |c| {
        c["model_type"] = "gpt2".into();
        c["n_head"] = 5.into();
    });
    let e = load(&dir).err().unwrap();
    assert!(e.contains("n_embd 48") && e.contains("n_head 5"), "{e}");
    edit_config(&dir, |c| {
        c["n_head"] = 4.into();
        c["activation_function"] = "swiglu".into();
    });
    let e = load(&dir).err().unwrap();
    assert!(e.contains("swiglu"), "{e}");
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let e = load(&dir).err().unwrap();
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn token_ids_beyond_the_vocabulary_and_overlong_inputs_are_errors() {
    let gpt = load(&fixture("gpt2")).unwrap();
    let ids = Tensor::from_vec(vec![3i64, 500, 7], [1, 3], &Device::Cpu).unwrap();
    let e = gpt
        .model
        .forward(&ids, Gpt2Inputs::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("input_ids") && e.contains("500") && e.contains("101"),
        "{e}"
    );
    let long = Tensor::from_vec(vec![1u32; 41], [1, 41], &Device::Cpu).unwrap();
    let e = gpt
        .model
        .forward(&long, Gpt2Inputs::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("41") && e.contains("n_positions 40"), "{e}");
    let mask = Tensor::from_vec(vec![1i64; 2], [1, 2], &Device::Cpu).unwrap();
    let ids = Tensor::from_vec(vec![1u32; 3], [1, 3], &Device::Cpu).unwrap();
    let inputs = Gpt2Inputs {
        attention_mask: Some(&mask),
        ..Default::default()
    };
    let e = gpt.model.forward(&ids, inputs).err().unwrap().to_string();
    assert!(e.contains("attention_mask") && e.contains("[1, 2]"), "{e}");
    let cfg = ptm_models::generation::GenerationConfig {
        top_p: Some(1.5),
        ..Default::default()
    };
    let e = gpt
        .model
        .generate(&[1, 2], &cfg, |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("top_p") && e.contains("1.5"), "{e}");
    let e = gpt
        .model
        .generate(&[1, 101], &Default::default(), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("101") && e.contains("vocabulary"), "{e}");
}
