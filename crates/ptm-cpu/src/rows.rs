//! f32 row kernels written in 16 independent lanes — softmax forward and backward and layer norm
//! of one row — compiled
//! once per instruction set, so that each loop becomes AVX-512 (or AVX2) code.
//!
//! The generic kernels fold a row with one running value, a chain of dependent additions that
//! neither vectorises nor pipelines; here every reduction keeps 16 partial values and combines them
//! at the end of each 256-element block in f64 (a 50257-wide f32 running sum drifts by ~1e-5).
//! Each body is `#[inline(always)]` into a `#[target_feature]` wrapper per ISA; [`Isa::selected`]
//! picks the wrapper, [`softmax_row_isa`] and [`layer_norm_row_isa`] take the path explicitly
//! (tests run every path on one machine).

use crate::isa::Isa;
use crate::vmath::{exp, exp_fma};

const LANES: usize = 16;
const BLOCK: usize = 256;

/// The largest value of `x` (NaNs skipped: they reach the output through `exp` anyway).
#[inline(always)]
fn max_lanes(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    let mut mx = f32::NEG_INFINITY;
    for &v in m.iter().chain(chunks.remainder()) {
        mx = if v > mx { v } else { mx };
    }
    mx
}

/// Σ f(x) in lanes, each block's lanes added in f64.
#[inline(always)]
fn sum_lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut total = 0.0f64;
    for block in x.chunks(BLOCK) {
        let mut s = [0.0f32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                s[l] += f(c[l]);
            }
        }
        let mut t = 0.0f64;
        for &v in s.iter() {
            t += v as f64;
        }
        for &v in chunks.remainder() {
            t += f(v) as f64;
        }
        total += t;
    }
    total
}

/// `y = exp(x − max(x)) / Σ exp(x − max(x))` in place: one pass for the max, one writing the
/// exponentials and summing them, one scaling. Returns the max and `1/Σ` (what attention's
/// backward needs to rebuild the weights).
/// `exp` is [`exp_fma`] on the FMA paths, [`exp`] on the scalar one.
#[inline(always)]
fn softmax_body(y: &mut [f32], exp: impl Fn(f32) -> f32) -> (f32, f32) {
    let mx = max_lanes(y);
    let mut total = 0.0f64;
    for yb in y.chunks_mut(BLOCK) {
        let mut s = [0.0f32; LANES];
        let mut yc = yb.chunks_exact_mut(LANES);
        for ys in &mut yc {
            for l in 0..LANES {
                let e = exp(ys[l] - mx);
                ys[l] = e;
                s[l] += e;
            }
        }
        let mut t = 0.0f64;
        for &v in s.iter() {
            t += v as f64;
        }
        for yv in yc.into_remainder() {
            let e = exp(*yv - mx);
            *yv = e;
            t += e as f64;
        }
        total += t;
    }
    let inv = (1.0 / total) as f32;
    for v in y.iter_mut() {
        *v *= inv;
    }
    (mx, inv)
}

/// [`softmax_body`] from `x` into `y`: the max read from `x`, and the exponentials written
/// straight to `y` (no copy of the row first).
#[inline(always)]
fn softmax_into_body(x: &[f32], y: &mut [f32], exp: impl Fn(f32) -> f32) -> (f32, f32) {
    let mx = max_lanes(x);
    let mut total = 0.0f64;
    for (xb, yb) in x.chunks(BLOCK).zip(y.chunks_mut(BLOCK)) {
        let mut s = [0.0f32; LANES];
        let (mut xc, mut yc) = (xb.chunks_exact(LANES), yb.chunks_exact_mut(LANES));
        for (xs, ys) in (&mut xc).zip(&mut yc) {
            for l in 0..LANES {
                let e = exp(xs[l] - mx);
                ys[l] = e;
                s[l] += e;
            }
        }
        let mut t = 0.0f64;
        for &v in s.iter() {
            t += v as f64;
        }
        for (&xv, yv) in xc.remainder().iter().zip(yc.into_remainder()) {
            let e = exp(xv - mx);
            *yv = e;
            t += e as f64;
        }
        total += t;
    }
    let inv = (1.0 / total) as f32;
    for v in y.iter_mut() {
        *v *= inv;
    }
    (mx, inv)
}

/// `dx = y ∘ (dy − Σ dy∘y)`: the softmax backward of one row from its output `y`.
#[inline(always)]
fn softmax_bwd_body(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let mut total = 0.0f64;
    for (yb, gb) in y.chunks(BLOCK).zip(dy.chunks(BLOCK)) {
        let mut s = [0.0f32; LANES];
        let mut yc = yb.chunks_exact(LANES);
        let mut gc = gb.chunks_exact(LANES);
        for (ys, gs) in (&mut yc).zip(&mut gc) {
            for l in 0..LANES {
                s[l] += ys[l] * gs[l];
            }
        }
        let mut t = 0.0f64;
        for &v in s.iter() {
            t += v as f64;
        }
        for (&a, &b) in yc.remainder().iter().zip(gc.remainder()) {
            t += (a * b) as f64;
        }
        total += t;
    }
    let dot = total as f32;
    for ((d, &yv), &g) in dx.iter_mut().zip(y).zip(dy) {
        *d = yv * (g - dot);
    }
}

/// `y = (x − mean)·rstd·w + b` with the mean and the (biased) variance of the row, two passes for
/// the statistics as PyTorch computes them.
#[inline(always)]
fn layer_norm_body(x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, eps: f32, y: &mut [f32]) {
    let n = x.len() as f64;
    let mean = (sum_lanes(x, |v| v) / n) as f32;
    let var = sum_lanes(x, |v| (v - mean) * (v - mean)) / n;
    let rstd = (1.0 / (var + eps as f64).sqrt()) as f32;
    match (w, b) {
        (Some(w), Some(b)) => {
            for (((yv, &xv), &wv), &bv) in y.iter_mut().zip(x).zip(w).zip(b) {
                *yv = (xv - mean) * rstd * wv + bv;
            }
        }
        (Some(w), None) => {
            for ((yv, &xv), &wv) in y.iter_mut().zip(x).zip(w) {
                *yv = (xv - mean) * rstd * wv;
            }
        }
        (None, Some(b)) => {
            for ((yv, &xv), &bv) in y.iter_mut().zip(x).zip(b) {
                *yv = (xv - mean) * rstd + bv;
            }
        }
        (None, None) => {
            for (yv, &xv) in y.iter_mut().zip(x) {
                *yv = (xv - mean) * rstd;
            }
        }
    }
}

macro_rules! per_isa {
    ($softmax:ident, $softmax_into:ident, $softmax_bwd:ident, $layer_norm:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $softmax_bwd(y: &[f32], dy: &[f32], dx: &mut [f32]) {
            softmax_bwd_body(y, dy, dx)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $softmax(y: &mut [f32]) -> (f32, f32) {
            softmax_body(y, exp_fma)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $softmax_into(x: &[f32], y: &mut [f32]) -> (f32, f32) {
            softmax_into_body(x, y, exp_fma)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $layer_norm(x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, eps: f32, y: &mut [f32]) {
            layer_norm_body(x, w, b, eps, y)
        }
    };
}

per_isa!(
    softmax_avx512,
    softmax_into_avx512,
    softmax_bwd_avx512,
    layer_norm_avx512,
    "avx512f"
);
per_isa!(
    softmax_avx2,
    softmax_into_avx2,
    softmax_bwd_avx2,
    layer_norm_avx2,
    "avx2,fma"
);

/// Softmax of one row in place on the path `isa`; returns the row's maximum and `1/Σ exp(x − max)`.
///
/// # Panics
/// If this CPU cannot run `isa`.
pub fn softmax_row_in_place_isa(isa: Isa, y: &mut [f32]) -> (f32, f32) {
    assert!(
        isa.is_available(),
        "rows: this CPU cannot run the {} path",
        isa.name()
    );
    match isa {
        // SAFETY: AVX-512F availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { softmax_avx512(y) },
        // SAFETY: AVX2 and FMA availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { softmax_avx2(y) },
        _ => softmax_body(y, exp),
    }
}

/// Softmax of one row on the path `isa`; returns the row's maximum and `1/Σ exp(x − max)`.
///
/// # Panics
/// If this CPU cannot run `isa`, or the row lengths differ.
pub fn softmax_row_isa(isa: Isa, x: &[f32], y: &mut [f32]) -> (f32, f32) {
    assert_eq!(x.len(), y.len(), "softmax row: x and y differ in length");
    assert!(
        isa.is_available(),
        "rows: this CPU cannot run the {} path",
        isa.name()
    );
    match isa {
        // SAFETY: AVX-512F availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { softmax_into_avx512(x, y) },
        // SAFETY: AVX2 and FMA availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { softmax_into_avx2(x, y) },
        _ => softmax_into_body(x, y, exp),
    }
}

/// Softmax backward of one row on the path `isa`: `dx = y ∘ (dy − Σ dy∘y)`.
///
/// # Panics
/// If this CPU cannot run `isa`, or the lengths differ.
pub fn softmax_bwd_row_isa(isa: Isa, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        isa.is_available(),
        "rows: this CPU cannot run the {} path",
        isa.name()
    );
    assert!(
        y.len() == dy.len() && dy.len() == dx.len(),
        "softmax backward row: lengths differ"
    );
    match isa {
        // SAFETY: AVX-512F availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { softmax_bwd_avx512(y, dy, dx) },
        // SAFETY: AVX2 and FMA availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { softmax_bwd_avx2(y, dy, dx) },
        _ => softmax_bwd_body(y, dy, dx),
    }
}

/// [`softmax_bwd_row_isa`] on the selected path.
pub fn softmax_bwd_row(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    softmax_bwd_row_isa(Isa::selected(), y, dy, dx)
}

/// Layer norm of one row on the path `isa`; `w`, `b` as long as the row when given.
///
/// # Panics
/// If this CPU cannot run `isa`, or the lengths differ.
pub fn layer_norm_row_isa(
    isa: Isa,
    x: &[f32],
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    eps: f32,
    y: &mut [f32],
) {
    assert!(
        isa.is_available(),
        "rows: this CPU cannot run the {} path",
        isa.name()
    );
    let n = x.len();
    assert!(
        y.len() == n && w.is_none_or(|w| w.len() == n) && b.is_none_or(|b| b.len() == n),
        "layer norm row: lengths differ"
    );
    match isa {
        // SAFETY: AVX-512F availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { layer_norm_avx512(x, w, b, eps, y) },
        // SAFETY: AVX2 and FMA availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { layer_norm_avx2(x, w, b, eps, y) },
        _ => layer_norm_body(x, w, b, eps, y),
    }
}

/// [`softmax_row_isa`] on the selected path.
pub fn softmax_row(x: &[f32], y: &mut [f32]) -> (f32, f32) {
    softmax_row_isa(Isa::selected(), x, y)
}

/// [`softmax_row_in_place_isa`] on the selected path.
pub fn softmax_row_in_place(y: &mut [f32]) -> (f32, f32) {
    softmax_row_in_place_isa(Isa::selected(), y)
}

/// [`layer_norm_row_isa`] on the selected path.
pub fn layer_norm_row(x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, eps: f32, y: &mut [f32]) {
    layer_norm_row_isa(Isa::selected(), x, w, b, eps, y)
}
