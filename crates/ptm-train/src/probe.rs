//! A linear classifier on fixed features (a "probe"): softmax regression trained by ptm with
//! full-batch AdamW from zero weights.
//!
//! Full-batch and zero-initialised on purpose: the result depends only on the features, the labels
//! and the settings — no shuffling, no random init — so an independent implementation (PyTorch's
//! `AdamW` on `cross_entropy(x·Wᵀ + b)`, `tests/fixtures/replay_bert_features.py`) replays it.

use crate::error::{setting, Result};
use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer};
use ptm_nn::Param;
use ptm_tensor::{DType, Device, Tensor};

/// How the probe trains.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ProbeSettings {
    /// Full-batch AdamW steps.
    pub steps: usize,
    /// Learning rate (constant).
    pub learning_rate: f64,
    /// Decoupled weight decay on the weight matrix (not the bias).
    pub weight_decay: f64,
    /// Record the loss and test accuracy every this many steps.
    pub log_every: usize,
}

/// One logged point of a probe's training.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ProbePoint {
    /// Steps done.
    pub step: usize,
    /// Training loss (mean cross-entropy) at that step.
    pub loss: f64,
    /// Test accuracy at that step.
    pub test_accuracy: f64,
}

/// What a probe reached.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeResult {
    /// Accuracy on the training examples after the last step.
    pub train_accuracy: f64,
    /// Accuracy on the test examples after the last step.
    pub test_accuracy: f64,
    /// The logged curve.
    pub curve: Vec<ProbePoint>,
    /// Seconds spent training.
    pub seconds: f64,
}

fn labels_tensor(y: &[usize]) -> Result<Tensor> {
    let v: Vec<i64> = y.iter().map(|&c| c as i64).collect();
    Ok(Tensor::from_vec(v, [y.len()], &Device::Cpu)?)
}

/// Fraction of rows of `logits` `[n, classes]` whose argmax is the label.
pub fn accuracy(logits: &Tensor, y: &[usize]) -> Result<f64> {
    let pred = logits.argmax(1)?.to_dtype(DType::I64)?.to_vec::<i64>()?;
    let hits = pred
        .iter()
        .zip(y)
        .filter(|(p, t)| **p as usize == **t)
        .count();
    Ok(hits as f64 / y.len().max(1) as f64)
}

/// Trains `W` `[classes, d]`, `b` `[classes]` on `x_train` `[n, d]` (f32) and labels `y_train`;
/// reports accuracies on both sets and the curve.
pub fn fit_linear_probe(
    (x_train, y_train): (&Tensor, &[usize]),
    (x_test, y_test): (&Tensor, &[usize]),
    classes: usize,
    s: ProbeSettings,
) -> Result<ProbeResult> {
    let t0 = std::time::Instant::now();
    let d = *x_train.dims().last().unwrap_or(&0);
    if x_train.dims() != [y_train.len(), d] || x_test.dims() != [y_test.len(), d] {
        return Err(setting(
            "features",
            format!(
                "train {:?} / test {:?} do not match {} / {} labels of width {d}",
                x_train.dims(),
                x_test.dims(),
                y_train.len(),
                y_test.len()
            ),
        ));
    }
    if s.steps == 0 || s.log_every == 0 {
        return Err(setting("max_steps", "the probe needs at least one step"));
    }
    let w = Param::new(Tensor::zeros([classes, d], DType::F32, &Device::Cpu)?, true);
    let b = Param::new(Tensor::zeros([classes], DType::F32, &Device::Cpu)?, true);
    let cfg = AdamWConfig {
        lr: s.learning_rate,
        weight_decay: s.weight_decay,
        ..Default::default()
    };
    let params = vec![
        ("weight".to_string(), w.clone()),
        ("bias".to_string(), b.clone()),
    ];
    let mut opt = AdamW::new(params, cfg, |n| n == "weight")?;
    let yt = labels_tensor(y_train)?;
    // (W·Xᵀ)ᵀ rather than X·Wᵀ: the product then has `classes` rows and `n` columns, the shape
    // the matmul's register blocking suits (an output only 2 columns wide wastes most of it).
    let logits =
        |x: &Tensor| -> Result<Tensor> { Ok(w.tensor().matmul(&x.t()?)?.t()?.add(&b.tensor())?) };
    let test_acc = || -> Result<f64> {
        let _g = ptm_tensor::no_grad();
        accuracy(&logits(x_test)?, y_test)
    };
    let mut curve = vec![];
    for step in 0..s.steps {
        let loss = logits(x_train)?.cross_entropy(&yt, -100)?;
        if step % s.log_every == 0 {
            curve.push(ProbePoint {
                step,
                loss: loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
                test_accuracy: test_acc()?,
            });
        }
        let grads = loss.backward()?;
        drop(loss); // the graph holds the weights; without it the step updates them in place
        opt.step(&grads)?;
    }
    let final_loss = {
        let _g = ptm_tensor::no_grad();
        logits(x_train)?
            .cross_entropy(&yt, -100)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?
    };
    let test_accuracy = test_acc()?;
    curve.push(ProbePoint {
        step: s.steps,
        loss: final_loss,
        test_accuracy,
    });
    let train_accuracy = {
        let _g = ptm_tensor::no_grad();
        accuracy(&logits(x_train)?, y_train)?
    };
    Ok(ProbeResult {
        train_accuracy,
        test_accuracy,
        curve,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
