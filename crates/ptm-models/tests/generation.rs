//! Sampling warpers against their definitions (transformers' TopK/TopP/Temperature), and the
//! sampler's frequencies against the distribution it claims.

use ptm_models::generation::{argmax, pick_token, sampling_distribution, GenerationConfig};
use ptm_tensor::Rng;

fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

fn close(a: &[f64], b: &[f64]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
    }
}

#[test]
fn temperature_top_k_and_top_p_keep_what_transformers_keeps() {
    let logits = [1.0f32, 3.0, 2.0, 0.5, 3.0];
    let cfg = |t: f64, k: Option<usize>, p: Option<f64>| GenerationConfig {
        do_sample: true,
        temperature: t,
        top_k: k,
        top_p: p,
        ..Default::default()
    };
    let l: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
    close(
        &sampling_distribution(&logits, &cfg(1.0, None, None)),
        &softmax(&l),
    );
    let halved: Vec<f64> = l.iter().map(|x| x / 0.5).collect();
    close(
        &sampling_distribution(&logits, &cfg(0.5, None, None)),
        &softmax(&halved),
    );
    // top-k 2 keeps both 3.0s; top-k 3 keeps them and the 2.0.
    let p = sampling_distribution(&logits, &cfg(1.0, Some(2), None));
    close(&p, &[0.0, 0.5, 0.0, 0.0, 0.5]);
    let p = sampling_distribution(&logits, &cfg(1.0, Some(3), None));
    let s = softmax(&[3.0, 2.0, 3.0]);
    close(&p, &[0.0, s[0], s[1], 0.0, s[2]]);
    // top-p: the two 3.0s hold ~0.37 each; p = 0.5 keeps a token while the more likely ones sum
    // to less than 0.5, so both 3.0s stay and nothing else.
    let full = softmax(&l);
    assert!(full[1] < 0.5 && full[1] + full[4] > 0.5);
    let p = sampling_distribution(&logits, &cfg(1.0, None, Some(0.5)));
    close(&p, &[0.0, 0.5, 0.0, 0.0, 0.5]);
    assert_eq!(
        argmax(&logits),
        1,
        "ties go to the first index, as torch.argmax"
    );
}

#[test]
fn sampled_frequencies_follow_the_distribution() {
    let logits = [0.0f32, 1.0, 2.0, -1.0];
    let cfg = GenerationConfig {
        do_sample: true,
        top_k: Some(3),
        seed: 9,
        ..Default::default()
    };
    let want = sampling_distribution(&logits, &cfg);
    let mut rng = Rng::new(cfg.seed);
    let n = 20_000;
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[pick_token(&logits, &cfg, &mut rng) as usize] += 1;
    }
    assert_eq!(counts[3], 0, "a token outside top-k was drawn");
    for i in 0..3 {
        let f = counts[i] as f64 / n as f64;
        // Binomial standard error at n = 20000 is at most 0.0036; allow 5 of them.
        assert!(
            (f - want[i]).abs() < 0.018,
            "token {i}: frequency {f}, probability {}",
            want[i]
        );
    }
}
