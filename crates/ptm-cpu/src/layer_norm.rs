//! Layer normalisation over rows of length `d`, forward and backward, as PyTorch defines it
//! (biased variance, `eps` inside the square root).

use crate::element::Float;
use crate::parallel::for_each_row;

/// Mean and `1/sqrt(var + eps)` of one row, two-pass for accuracy.
fn row_stats<T: Float>(x: &[T], eps: T) -> (T, T) {
    let n = T::from_f64(x.len() as f64);
    let mean = x.iter().fold(T::ZERO, |s, &v| s + v) / n;
    let var = x.iter().fold(T::ZERO, |s, &v| s + (v - mean) * (v - mean)) / n;
    (mean, T::ONE / (var + eps).sqrt())
}

/// `y = (x − mean) · rstd · w + b` for each row; `w`/`b` of length `d` are optional (identity).
pub fn layer_norm_fwd<T: Float>(
    x: &[T],
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: T,
    d: usize,
    y: &mut [T],
) {
    assert_eq!(x.len(), y.len(), "layer_norm_fwd: x and y differ in length");
    for_each_row(y, d, 6, |r, yr| {
        T::layer_norm_row(&x[r * d..(r + 1) * d], w, b, eps, yr)
    });
}

/// One row of [`layer_norm_fwd`] for any float type (f64's path; f32 has [`crate::rows`]).
pub fn layer_norm_row_generic<T: Float>(
    xr: &[T],
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: T,
    yr: &mut [T],
) {
    let (mean, rstd) = row_stats(xr, eps);
    for (j, (yv, &xv)) in yr.iter_mut().zip(xr).enumerate() {
        let mut v = (xv - mean) * rstd;
        if let Some(w) = w {
            v *= w[j];
        }
        if let Some(b) = b {
            v += b[j];
        }
        *yv = v;
    }
}

/// Backward of [`layer_norm_fwd`]: writes `dx`, and adds into `dw` / `db` (length `d`) when given.
///
/// With `x̂ = (x − mean)·rstd` and `g = dy·w`: `dx = rstd · (g − mean(g) − x̂ · mean(g·x̂))`,
/// `dw = Σ_rows dy·x̂`, `db = Σ_rows dy`. The statistics are recomputed rather than stored.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_bwd<T: Float>(
    x: &[T],
    w: Option<&[T]>,
    eps: T,
    d: usize,
    dy: &[T],
    dx: &mut [T],
    mut dw: Option<&mut [T]>,
    mut db: Option<&mut [T]>,
) {
    assert!(
        x.len() == dy.len() && dy.len() == dx.len(),
        "layer_norm_bwd: lengths differ"
    );
    if d == 0 {
        return;
    }
    let n = T::from_f64(d as f64);
    for (r, dxr) in dx.chunks_mut(d).enumerate() {
        let (xr, dyr) = (&x[r * d..(r + 1) * d], &dy[r * d..(r + 1) * d]);
        let (mean, rstd) = row_stats(xr, eps);
        let (mut sum_g, mut sum_gx) = (T::ZERO, T::ZERO);
        for j in 0..d {
            let xhat = (xr[j] - mean) * rstd;
            let g = dyr[j] * w.map_or(T::ONE, |w| w[j]);
            sum_g += g;
            sum_gx += g * xhat;
            if let Some(dw) = dw.as_deref_mut() {
                dw[j] += dyr[j] * xhat;
            }
            if let Some(db) = db.as_deref_mut() {
                db[j] += dyr[j];
            }
        }
        let (mean_g, mean_gx) = (sum_g / n, sum_gx / n);
        for j in 0..d {
            let xhat = (xr[j] - mean) * rstd;
            let g = dyr[j] * w.map_or(T::ONE, |w| w[j]);
            dxr[j] = rstd * (g - mean_g - xhat * mean_gx);
        }
    }
}
