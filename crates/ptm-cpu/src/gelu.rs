//! GELU in both forms, forward and backward, elementwise.
//!
//! - tanh form, GPT-2's `gelu_new`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`
//! - erf form, BERT's `gelu`: `0.5·x·(1 + erf(x/√2))`

use crate::element::Float;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const CUBIC: f64 = 0.044715;

/// GPT-2's tanh approximation of GELU.
#[inline(always)]
pub fn gelu_tanh<T: Float>(x: T) -> T {
    let half = T::from_f64(0.5);
    let inner = T::from_f64(SQRT_2_OVER_PI) * (x + T::from_f64(CUBIC) * x * x * x);
    half * x * (T::ONE + inner.tanh())
}

/// d/dx of [`gelu_tanh`].
#[inline(always)]
pub fn gelu_tanh_grad<T: Float>(x: T) -> T {
    let half = T::from_f64(0.5);
    let c = T::from_f64(SQRT_2_OVER_PI);
    let a = T::from_f64(CUBIC);
    let t = (c * (x + a * x * x * x)).tanh();
    half * (T::ONE + t) + half * x * (T::ONE - t * t) * c * (T::ONE + T::from_f64(3.0) * a * x * x)
}

/// BERT's exact GELU.
#[inline(always)]
pub fn gelu_erf<T: Float>(x: T) -> T {
    T::from_f64(0.5) * x * (T::ONE + (x * T::from_f64(FRAC_1_SQRT_2)).erf())
}

/// d/dx of [`gelu_erf`]: `Φ(x) + x·φ(x)`.
#[inline(always)]
pub fn gelu_erf_grad<T: Float>(x: T) -> T {
    let cdf = T::from_f64(0.5) * (T::ONE + (x * T::from_f64(FRAC_1_SQRT_2)).erf());
    let pdf = T::from_f64(FRAC_1_SQRT_2PI) * (T::from_f64(-0.5) * x * x).exp();
    cdf + x * pdf
}
