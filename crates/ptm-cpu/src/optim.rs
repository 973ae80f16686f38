//! Optimizer updates on flat f32 slices, in the operation order PyTorch's single-tensor
//! implementations use, so one step matches `torch.optim` to f32 rounding.

/// Hyper-parameters of one AdamW update (PyTorch's decoupled weight decay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (0 for biases and norms by convention).
    pub weight_decay: f64,
}

/// One fused AdamW step over a parameter, its gradient and its two moments; `step` counts from 1.
///
/// ```text
/// p ← p·(1 − lr·wd)
/// m ← m + (1 − β1)·(g − m)
/// v ← β2·v + (1 − β2)·g²
/// p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
/// ```
pub fn adamw_step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamW, step: u64) {
    assert!(
        g.len() == p.len() && m.len() == p.len() && v.len() == p.len(),
        "adamw_step: slices differ in length"
    );
    let AdamWFactors {
        decay,
        step_size,
        w1,
        b2,
        w2,
        bc2_sqrt,
        eps,
    } = h.factors(step);
    for i in 0..p.len() {
        let gi = g[i];
        let pi = p[i] * decay;
        let mi = m[i] + w1 * (gi - m[i]);
        let vi = v[i] * b2 + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * (mi / (vi.sqrt() / bc2_sqrt + eps));
    }
}

/// The f32 scalars of one AdamW step, formed in f64 from [`AdamW`] and the step number. Every
/// AdamW kernel (CPU, CUDA) takes these, so the paths differ only by their rounding of the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWFactors {
    /// `1 − lr·wd`.
    pub decay: f32,
    /// `lr / (1 − β1ᵗ)`.
    pub step_size: f32,
    /// `1 − β1`.
    pub w1: f32,
    /// `β2`.
    pub b2: f32,
    /// `1 − β2`.
    pub w2: f32,
    /// `√(1 − β2ᵗ)`.
    pub bc2_sqrt: f32,
    /// `eps`.
    pub eps: f32,
}

impl AdamW {
    /// The scalars of the update at `step` (counted from 1; 0 counts as 1).
    pub fn factors(&self, step: u64) -> AdamWFactors {
        let t = step.max(1) as i32;
        AdamWFactors {
            decay: (1.0 - self.lr * self.weight_decay) as f32,
            step_size: (self.lr / (1.0 - self.beta1.powi(t))) as f32,
            w1: (1.0 - self.beta1) as f32,
            b2: self.beta2 as f32,
            w2: (1.0 - self.beta2) as f32,
            bc2_sqrt: (1.0 - self.beta2.powi(t)).sqrt() as f32,
            eps: self.eps as f32,
        }
    }
}

/// Hyper-parameters of one SGD update (PyTorch's, without Nesterov or dampening).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 for plain SGD).
    pub momentum: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

/// One SGD step; `buf` is the momentum buffer, `first` says it is still empty.
pub fn sgd_step(p: &mut [f32], g: &[f32], buf: &mut [f32], h: &Sgd, first: bool) {
    assert!(
        g.len() == p.len() && buf.len() == p.len(),
        "sgd_step: slices differ in length"
    );
    let (lr, mom, wd) = (h.lr as f32, h.momentum as f32, h.weight_decay as f32);
    for i in 0..p.len() {
        let mut d = g[i];
        if wd != 0.0 {
            d += wd * p[i];
        }
        if mom != 0.0 {
            buf[i] = if first { d } else { mom * buf[i] + d };
            d = buf[i];
        }
        p[i] -= lr * d;
    }
}
