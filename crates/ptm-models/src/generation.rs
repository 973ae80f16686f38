//! Choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p
//! (applied in that order, as transformers' logits warpers), from a seeded stream.

use crate::error::{input_err, Result};
use ptm_tensor::Rng;

/// How to pick tokens and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationConfig {
    /// Tokens to add at most.
    pub max_new_tokens: usize,
    /// Sample (true) or take the most likely token (false: greedy).
    pub do_sample: bool,
    /// Divides the logits before sampling (1.0: unchanged).
    pub temperature: f64,
    /// Keep only the k most likely tokens (None: all).
    pub top_k: Option<usize>,
    /// Keep the most likely tokens whose probabilities sum to at least p (None: all).
    pub top_p: Option<f64>,
    /// Seed of the sampling stream.
    pub seed: u64,
    /// Stop after emitting this token (GPT-2's `<|endoftext|>`).
    pub eos_token_id: Option<u32>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 20,
            do_sample: false,
            temperature: 1.0,
            top_k: None,
            top_p: None,
            seed: 0,
            eos_token_id: None,
        }
    }
}

impl GenerationConfig {
    /// Checks the options; errors name the option and value.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(input_err(
                "temperature",
                format!("{} must be positive", self.temperature),
            ));
        }
        if self.top_k == Some(0) {
            return Err(input_err("top_k", "must be at least 1"));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(input_err("top_p", format!("{p} is outside (0, 1]")));
            }
        }
        Ok(())
    }
}

/// The index of the largest logit (the first on ties, as `torch.argmax`).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

/// The next token for one row of logits.
pub fn pick_token(logits: &[f32], cfg: &GenerationConfig, rng: &mut Rng) -> u32 {
    if !cfg.do_sample {
        return argmax(logits) as u32;
    }
    let probs = sampling_distribution(logits, cfg);
    let u = rng.uniform();
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            acc += p;
            last = i;
            if u < acc {
                return i as u32;
            }
        }
    }
    last as u32
}

/// The probabilities sampling draws from: softmax of the logits after temperature, with tokens
/// outside top-k and outside the top-p nucleus set to 0.
pub fn sampling_distribution(logits: &[f32], cfg: &GenerationConfig) -> Vec<f64> {
    let scaled: Vec<f64> = logits.iter().map(|&x| x as f64 / cfg.temperature).collect();
    let mut order: Vec<usize> = (0..scaled.len()).collect();
    order.sort_by(|&a, &b| scaled[b].total_cmp(&scaled[a]).then(a.cmp(&b)));
    let mut keep = vec![true; scaled.len()];
    if let Some(k) = cfg.top_k {
        // transformers keeps every logit at least as large as the k-th largest.
        let kth = scaled[order[k.min(order.len()) - 1]];
        for (i, x) in scaled.iter().enumerate() {
            keep[i] = *x >= kth;
        }
    }
    let softmax = |keep: &[bool]| {
        let m = scaled
            .iter()
            .zip(keep)
            .filter(|(_, &k)| k)
            .map(|(x, _)| *x)
            .fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scaled
            .iter()
            .zip(keep)
            .map(|(x, &k)| if k { (x - m).exp() } else { 0.0 })
            .collect();
        let z: f64 = e.iter().sum();
        e.into_iter().map(|x| x / z).collect::<Vec<f64>>()
    };
    let mut probs = softmax(&keep);
    if let Some(p) = cfg.top_p {
        // Keep a token when the tokens more likely than it sum to less than p.
        let mut before = 0.0;
        for &i in &order {
            if !keep[i] {
                continue;
            }
            if before >= p {
                keep[i] = false;
            }
            before += probs[i];
        }
        probs = softmax(&keep);
    }
    probs
}
