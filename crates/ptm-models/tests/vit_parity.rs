//! ViT against transformers: fixtures in tests/fixtures/vit-* written by
//! tests/fixtures/make_fixtures.py (12×12 images, 4×4 patches). Tolerances as for GPT-2 and BERT:
//! forward 1e-4, gradients 1e-3 (or 1e-6 absolute where they vanish in exact arithmetic), one
//! AdamW step 1e-5.

mod common;

use common::{assert_rel, check_grads_and_step, expected, fixture};
use ptm_models::vit::{VitCheckpoint, VitForImageClassification, VitModel};
use ptm_tensor::{DType, Tensor};

#[test]
fn vit_model_matches_transformers() {
    let exp = expected("vit-base");
    let ck =
        VitCheckpoint::<VitModel>::from_pretrained(fixture("vit-base"), DType::F32, None).unwrap();
    assert!(
        ck.report.unexpected.is_empty() && ck.report.initialized.is_empty(),
        "{:?}",
        ck.report
    );
    let (hidden, pooled) = ck.model.forward(&exp["pixel_values"], false).unwrap();
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
    check_grads_and_step(&ck.params, &loss, &exp, "ViTModel");
}

#[test]
fn image_classification_matches_transformers() {
    let exp = expected("vit-cls");
    let ck = VitCheckpoint::<VitForImageClassification>::from_pretrained(
        fixture("vit-cls"),
        DType::F32,
        None,
    )
    .unwrap();
    assert!(
        ck.report.unexpected.is_empty() && ck.report.initialized.is_empty(),
        "{:?}",
        ck.report
    );
    let (logits, hidden) = ck.model.forward(&exp["pixel_values"], false).unwrap();
    assert_rel(
        &hidden,
        &exp["last_hidden_state"],
        1e-4,
        "last_hidden_state",
    );
    assert_rel(&logits, &exp["logits"], 1e-4, "logits");
    let loss = VitForImageClassification::loss(&logits, &exp["labels"]).unwrap();
    assert_rel(&loss, &exp["loss"], 1e-5, "loss");
    check_grads_and_step(&ck.params, &loss, &exp, "ViTForImageClassification");
}

#[test]
fn an_image_of_the_wrong_size_is_named() {
    let ck =
        VitCheckpoint::<VitModel>::from_pretrained(fixture("vit-base"), DType::F32, None).unwrap();
    let x = Tensor::zeros([1, 3, 16, 16], DType::F32, &ptm_tensor::Device::Cpu).unwrap();
    let e = ck.model.forward(&x, false).err().unwrap().to_string();
    assert!(
        e.contains("pixel_values") && e.contains("[1, 3, 16, 16]") && e.contains("12"),
        "{e}"
    );
}
