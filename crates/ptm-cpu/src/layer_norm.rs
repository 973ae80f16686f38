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
    let rows = dx.len() / d;
    // Rows in chunks that run in parallel, each adding its rows' weight and bias gradients into
    // its own partial; the partials are then added in chunk order (the same sum on any thread
    // count).
    let chunk_rows = ROWS_PER_CHUNK.max(1);
    let chunks = rows.div_ceil(chunk_rows);
    let mut partial = vec![T::ZERO; 2 * d * chunks];
    let work = |(c, (dxc, part)): (usize, (&mut [T], &mut [T]))| {
        let (pdw, pdb) = part.split_at_mut(d);
        let mut xhat = vec![T::ZERO; d];
        for (i, dxr) in dxc.chunks_mut(d).enumerate() {
            let r = c * chunk_rows + i;
            let (xr, dyr) = (&x[r * d..(r + 1) * d], &dy[r * d..(r + 1) * d]);
            layer_norm_bwd_row(xr, dyr, w, eps, &mut xhat, dxr, pdw, pdb);
        }
    };
    if dx.len().saturating_mul(8) >= crate::parallel::MIN_PARALLEL_WORK && chunks > 1 {
        use rayon::prelude::*;
        dx.par_chunks_mut(chunk_rows * d)
            .zip(partial.par_chunks_mut(2 * d))
            .enumerate()
            .for_each(work);
    } else {
        dx.chunks_mut(chunk_rows * d)
            .zip(partial.chunks_mut(2 * d))
            .enumerate()
            .for_each(work);
    }
    for part in partial.chunks(2 * d) {
        let (pdw, pdb) = part.split_at(d);
        if let Some(dw) = dw.as_deref_mut() {
            dw.iter_mut().zip(pdw).for_each(|(a, &p)| *a += p);
        }
        if let Some(db) = db.as_deref_mut() {
            db.iter_mut().zip(pdb).for_each(|(a, &p)| *a += p);
        }
    }
}

/// Rows per parallel chunk of [`layer_norm_bwd`].
const ROWS_PER_CHUNK: usize = 32;

/// One row of [`layer_norm_bwd`]: `dx`, and the row's terms added into `pdw` / `pdb`; `xhat` is
/// scratch of the row's length.
#[allow(clippy::too_many_arguments)]
fn layer_norm_bwd_row<T: Float>(
    xr: &[T],
    dyr: &[T],
    w: Option<&[T]>,
    eps: T,
    xhat: &mut [T],
    dxr: &mut [T],
    pdw: &mut [T],
    pdb: &mut [T],
) {
    let n = T::from_f64(xr.len() as f64);
    let (mean, rstd) = row_stats(xr, eps);
    for (h, &xv) in xhat.iter_mut().zip(xr) {
        *h = (xv - mean) * rstd;
    }
    // g = dy·w, kept in dx until the means are known.
    match w {
        Some(w) => {
            for ((g, &d), &wv) in dxr.iter_mut().zip(dyr).zip(w) {
                *g = d * wv;
            }
        }
        None => dxr.copy_from_slice(dyr),
    }
    let (mut sum_g, mut sum_gx) = (T::ZERO, T::ZERO);
    for (&g, &h) in dxr.iter().zip(xhat.iter()) {
        sum_g += g;
        sum_gx += g * h;
    }
    for ((a, &d), &h) in pdw.iter_mut().zip(dyr).zip(xhat.iter()) {
        *a += d * h;
    }
    for (a, &d) in pdb.iter_mut().zip(dyr) {
        *a += d;
    }
    let (mean_g, mean_gx) = (sum_g / n, sum_gx / n);
    for (g, &h) in dxr.iter_mut().zip(xhat.iter()) {
        *g = rstd * (*g - mean_g - h * mean_gx);
    }
}
