//! The linear probe and bag-of-words features behind `bert-features`.

use ptm_tensor::{Device, Tensor};
use ptm_train::data::BagOfWords;
use ptm_train::probe::{fit_linear_probe, ProbeSettings};

fn settings(steps: usize) -> ProbeSettings {
    ProbeSettings {
        steps,
        learning_rate: 0.1,
        weight_decay: 0.0,
        log_every: 1,
    }
}

/// From zero weights every logit is 0, so the first loss is ln(classes) exactly, and AdamW's first
/// step moves each weight by lr·g/(|g|+eps): the curve's second point is computed here by hand.
#[test]
fn first_step_is_adams_sign_step() {
    let x = vec![1.0f32, 2.0, -1.0, 0.5, 0.0, -3.0];
    let y = [0usize, 1, 2];
    let xt = Tensor::from_vec(x.clone(), [3, 2], &Device::Cpu).unwrap();
    let r = fit_linear_probe((&xt, &y), (&xt, &y), 3, settings(1)).unwrap();
    assert!((r.curve[0].loss - 3f64.ln()).abs() < 1e-6, "{:?}", r.curve);
    // g_W[c][k] = mean_i (1/3 − [y_i = c]) x_ik; g_b[c] = mean_i (1/3 − [y_i = c]) = 0.
    let mut w = [[0f64; 2]; 3];
    for (c, row) in w.iter_mut().enumerate() {
        for (k, wk) in row.iter_mut().enumerate() {
            let g: f64 = (0..3)
                .map(|i| (1.0 / 3.0 - if y[i] == c { 1.0 } else { 0.0 }) * x[2 * i + k] as f64)
                .sum::<f64>()
                / 3.0;
            *wk = -0.1 * g / (g.abs() + 1e-8);
        }
    }
    let mut loss = 0.0;
    for i in 0..3 {
        let z: Vec<f64> = (0..3)
            .map(|c| w[c][0] * x[2 * i] as f64 + w[c][1] * x[2 * i + 1] as f64)
            .collect();
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        loss += (lse - z[y[i]]) / 3.0;
    }
    assert!(
        (r.curve[1].loss - loss).abs() < 1e-5,
        "{} vs {loss}",
        r.curve[1].loss
    );
}

#[test]
fn separable_data_is_learned_and_bad_shapes_are_refused() {
    let x = Tensor::from_vec(
        vec![2.0f32, 0.1, 1.5, -0.2, -2.0, 0.3, -1.0, 0.0],
        [4, 2],
        &Device::Cpu,
    )
    .unwrap();
    let y = [1usize, 1, 0, 0];
    let r = fit_linear_probe((&x, &y), (&x, &y), 2, settings(50)).unwrap();
    assert_eq!((r.train_accuracy, r.test_accuracy), (1.0, 1.0));
    assert!(r.curve.last().unwrap().loss < r.curve[0].loss);
    let e = fit_linear_probe((&x, &y[..3]), (&x, &y), 2, settings(5)).unwrap_err();
    assert!(e.to_string().contains("labels"), "{e}");
}

#[test]
fn bag_of_words_keeps_words_seen_twice() {
    let train: Vec<String> = ["a good film", "A bad film", "good"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let bow = BagOfWords::fit(train.iter(), 2);
    assert_eq!(bow.vocab, vec!["a", "film", "good"]);
    let x = bow
        .features([String::from("Good good unknown film")].iter())
        .unwrap();
    assert_eq!(x.to_vec::<f32>().unwrap(), vec![0.0, 1.0, 1.0]);
}
