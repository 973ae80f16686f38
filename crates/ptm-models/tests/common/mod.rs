//! Helpers shared by the parity tests: fixture paths and tolerance checks.
#![allow(dead_code)]

use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer};
use ptm_tensor::{GradStore, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `tests/fixtures/<name>` at the repository root.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The reference tensors of a fixture directory.
pub fn expected(name: &str) -> BTreeMap<String, Tensor> {
    ptm_tensor::safetensors::load(fixture(name).join("expected.safetensors")).unwrap()
}

/// Largest |got − want| divided by the largest |want|: the error relative to the tensor's scale
/// (element-wise ratios blow up where the reference crosses zero).
pub fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = g
        .iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// Asserts `rel_err(got, want) <= tol`, naming `what`.
pub fn assert_rel(got: &Tensor, want: &Tensor, tol: f64, what: &str) {
    let e = rel_err(got, want);
    eprintln!("{what}: relative error {e:.2e} (tolerance {tol:.0e})");
    assert!(e <= tol, "{what}: relative error {e:.3e} > {tol:.0e}");
}

/// A scratch directory under the target dir, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Gradient check: `rel_err ≤ 1e-3`, or an absolute error ≤ 1e-6 for gradients that vanish in exact
/// arithmetic (BERT's key bias: softmax ignores a constant added to a whole row of scores, so both
/// sides hold only rounding noise there).
pub fn assert_grad(got: &Tensor, want: &Tensor, what: &str) {
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    let diff = g
        .iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    if diff <= 1e-6 {
        return;
    }
    assert_rel(got, want, 1e-3, what);
}

/// Checks the gradient of `loss` for every parameter against the fixture's `grad.<name>`, then one
/// AdamW step (lr 1e-2, weight decay 0.1, the fixture script's settings) on the reference
/// gradients against `adamw.<name>` (1e-5): the optimizer checked on its own.
pub fn check_grads_and_step(
    params: &ptm_nn::ParamStore,
    loss: &Tensor,
    exp: &BTreeMap<String, Tensor>,
    what: &str,
) {
    let grads = loss.backward().unwrap();
    let all = params.all();
    assert_eq!(
        all.len(),
        exp.keys().filter(|k| k.starts_with("grad.")).count(),
        "{what}: parameter count"
    );
    let mut reference = GradStore::new();
    for (name, p) in &all {
        let g = grads
            .get(&p.tensor())
            .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        assert_grad(
            g,
            &exp[&format!("grad.{name}")],
            &format!("{what} grad {name}"),
        );
        reference.insert(&p.tensor(), exp[&format!("grad.{name}")].clone());
    }
    let cfg = AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.1,
        ..Default::default()
    };
    AdamW::new(all.clone(), cfg, |_| true)
        .unwrap()
        .step(&reference)
        .unwrap();
    for (name, p) in &all {
        assert_rel(
            &p.tensor(),
            &exp[&format!("adamw.{name}")],
            1e-5,
            &format!("{what} adamw {name}"),
        );
    }
}

/// The cache directory of a fetched dataset, or `None` (with a printed reason) when it is not
/// fetched; with PTM_REQUIRE_FETCHED set (CI) a missing dataset fails the test instead.
pub fn fetched(name: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("PTM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|p| PathBuf::from(p).join("ptm")))
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ptm")
        });
    let dir = cache.join(name);
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
