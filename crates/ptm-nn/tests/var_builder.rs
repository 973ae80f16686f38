//! Loading parameters: path scoping, naming variants, strict reports, dtype casts, mapped files.

use ptm_nn::{Init, LayerNorm, Linear, LoadOptions, Module, VarBuilder, WeightLayout};
use ptm_tensor::{DType, Device, Tensor};
use std::collections::BTreeMap;

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn map(entries: &[(&str, Tensor)]) -> BTreeMap<String, Tensor> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn scoped_paths_name_parameters() {
    let vb = VarBuilder::from_init(DType::F32, 0);
    let enc = vb.pp("encoder").pp("layer").pp(3);
    Linear::new(
        &enc.pp("dense"),
        4,
        2,
        true,
        WeightLayout::OutIn,
        Init::Zeros,
    )
    .unwrap();
    let names: Vec<String> = vb.store().all().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["encoder.layer.3.dense.weight", "encoder.layer.3.dense.bias"]
    );
    assert_eq!(
        vb.store()
            .get("encoder.layer.3.dense.weight")
            .unwrap()
            .tensor()
            .dims(),
        &[2, 4]
    );
}

#[test]
fn optional_prefix_and_legacy_gamma_beta_are_accepted() {
    let tensors = map(&[
        ("bert.embeddings.LayerNorm.gamma", t(&[2.0, 3.0], &[2])),
        ("bert.embeddings.LayerNorm.beta", t(&[0.5, -0.5], &[2])),
        ("cls.predictions.bias", t(&[0.0], &[1])),
        ("bert.embeddings.position_ids", t(&[0.0, 1.0], &[2])),
    ]);
    let opts = LoadOptions {
        optional_prefixes: vec!["bert.".into()],
        ignore_suffixes: vec!["position_ids".into()],
        allow_missing: vec![],
    };
    let loaded = VarBuilder::load_tensors(
        tensors,
        "test.safetensors",
        DType::F32,
        opts,
        0,
        None,
        |vb| LayerNorm::new(&vb.pp("embeddings").pp("LayerNorm"), 2, 1e-12),
    )
    .unwrap();
    // Normalising [1, 3] gives [-1, 1]; then ·γ + β.
    let y = loaded
        .model
        .forward(&t(&[1.0, 3.0], &[1, 2]), false)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert!(
        (y[0] - (-2.0 + 0.5)).abs() < 1e-5 && (y[1] - (3.0 - 0.5)).abs() < 1e-5,
        "{y:?}"
    );
    assert_eq!(
        loaded.report.unexpected,
        vec!["cls.predictions.bias".to_string()]
    );
}

#[test]
fn every_missing_tensor_is_listed_with_the_spellings_tried() {
    let tensors = map(&[("a.weight", t(&[0.0; 6], &[2, 3]))]);
    let opts = LoadOptions {
        optional_prefixes: vec!["model.".into()],
        ..Default::default()
    };
    let err = VarBuilder::load_tensors(tensors, "w.safetensors", DType::F32, opts, 0, None, |vb| {
        Linear::new(&vb.pp("a"), 3, 2, true, WeightLayout::OutIn, Init::Zeros)?;
        Linear::new(&vb.pp("b"), 3, 2, false, WeightLayout::OutIn, Init::Zeros)
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("w.safetensors") && err.contains("a.bias") && err.contains("b.weight"),
        "{err}"
    );
    assert!(
        err.contains("model.a.bias"),
        "the tried spellings are named: {err}"
    );
}

#[test]
fn a_wrong_shape_names_file_tensor_and_both_shapes() {
    let tensors = map(&[("proj.weight", t(&[0.0; 6], &[3, 2]))]);
    let err = VarBuilder::load_tensors(
        tensors,
        "w.safetensors",
        DType::F32,
        LoadOptions::default(),
        0,
        None,
        |vb| {
            Linear::new(
                &vb.pp("proj"),
                3,
                2,
                false,
                WeightLayout::OutIn,
                Init::Zeros,
            )
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("w.safetensors")
            && err.contains("proj.weight")
            && err.contains("[3, 2]")
            && err.contains("[2, 3]"),
        "{err}"
    );
}

#[test]
fn allowed_missing_heads_are_initialised_and_reported() {
    let tensors = map(&[("body.weight", t(&[1.0; 4], &[2, 2]))]);
    let opts = LoadOptions {
        allow_missing: vec!["classifier.".into()],
        ..Default::default()
    };
    let loaded = VarBuilder::load_tensors(tensors, "w", DType::F32, opts, 0, None, |vb| {
        Linear::new(
            &vb.pp("body"),
            2,
            2,
            false,
            WeightLayout::OutIn,
            Init::Zeros,
        )?;
        Linear::new(
            &vb.pp("classifier"),
            2,
            3,
            true,
            WeightLayout::OutIn,
            Init::Normal {
                mean: 0.0,
                std: 0.02,
            },
        )
    })
    .unwrap();
    assert_eq!(
        loaded.report.initialized,
        vec![
            "classifier.weight".to_string(),
            "classifier.bias".to_string()
        ]
    );
    assert_eq!(
        loaded
            .params
            .get("body.weight")
            .unwrap()
            .tensor()
            .to_vec::<f32>()
            .unwrap(),
        vec![1.0; 4]
    );
}

#[test]
fn half_precision_weights_are_cast_to_the_model_dtype() {
    let w = t(&[0.5, -1.25, 3.0, 0.1], &[2, 2]);
    let tensors = map(&[("l.weight", w.to_dtype(DType::BF16).unwrap())]);
    let loaded = VarBuilder::load_tensors(
        tensors,
        "w",
        DType::F32,
        LoadOptions::default(),
        0,
        None,
        |vb| Linear::new(&vb.pp("l"), 2, 2, false, WeightLayout::OutIn, Init::Zeros),
    )
    .unwrap();
    let got = loaded.params.get("l.weight").unwrap().tensor();
    assert_eq!(got.dtype(), DType::F32);
    let want: Vec<f32> = [0.5f32, -1.25, 3.0, 0.1]
        .iter()
        .map(|&x| half::bf16::from_f32(x).to_f32())
        .collect();
    assert_eq!(got.to_vec::<f32>().unwrap(), want);
}

#[test]
fn linear_layouts_compute_x_w_transposed_and_x_w() {
    let w = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3] as OutIn, [3, 2] as InOut
    let x = t(&[1.0, -1.0, 2.0], &[1, 3]);
    let vb = VarBuilder::from_init(DType::F32, 0);
    let out_in = Linear::new(&vb.pp("a"), 3, 2, false, WeightLayout::OutIn, Init::Zeros).unwrap();
    out_in.weight().set(t(&w, &[2, 3])).unwrap();
    let in_out = Linear::new(&vb.pp("b"), 3, 2, false, WeightLayout::InOut, Init::Zeros).unwrap();
    in_out.weight().set(t(&w, &[3, 2])).unwrap();
    // x·Wᵀ with W = [[1,2,3],[4,5,6]] → [1-2+6, 4-5+12]; x·W with W = [[1,2],[3,4],[5,6]] → [1-3+10, 2-4+12].
    assert_eq!(
        out_in.forward(&x, false).unwrap().to_vec::<f32>().unwrap(),
        vec![5.0, 11.0]
    );
    assert_eq!(
        in_out.forward(&x, false).unwrap().to_vec::<f32>().unwrap(),
        vec![8.0, 10.0]
    );
    let err = in_out
        .forward(&t(&[1.0, 2.0], &[1, 2]), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[1, 2]") && err.contains("3 features"),
        "{err}"
    );
}

#[test]
fn frozen_parameters_get_no_gradient() {
    let vb = VarBuilder::from_init(DType::F32, 0);
    let l = Linear::new(&vb.pp("l"), 2, 2, true, WeightLayout::OutIn, Init::Ones).unwrap();
    vb.store().freeze_where(|n| n.ends_with("weight"));
    let loss = l
        .forward(&t(&[1.0, 2.0], &[1, 2]), true)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    assert!(grads.get(&l.weight().tensor()).is_none());
    assert_eq!(
        grads
            .get(&l.bias().unwrap().tensor())
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![1.0, 1.0]
    );
    assert_eq!(vb.store().counts(), (2, 6));
}

#[test]
fn mapped_files_load_and_truncated_ones_are_named() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("vb-test.safetensors");
    let w = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    ptm_tensor::safetensors::save([("p.weight", &w)], &path).unwrap();
    let loaded = VarBuilder::load(&path, DType::F32, LoadOptions::default(), 0, None, |vb| {
        Linear::new(&vb.pp("p"), 3, 2, false, WeightLayout::OutIn, Init::Zeros)
    })
    .unwrap();
    assert_eq!(
        loaded
            .params
            .get("p.weight")
            .unwrap()
            .tensor()
            .to_vec::<f32>()
            .unwrap(),
        w.to_vec::<f32>().unwrap()
    );
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("vb-test-truncated.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let err = VarBuilder::load(&cut, DType::F32, LoadOptions::default(), 0, None, |vb| {
        Linear::new(&vb.pp("p"), 3, 2, false, WeightLayout::OutIn, Init::Zeros)
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("vb-test-truncated.safetensors"), "{err}");
}
