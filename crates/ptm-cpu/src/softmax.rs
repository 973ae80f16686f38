//! Row-wise softmax and log-softmax, forward and backward, over rows of length `d`.

use crate::element::Float;
use crate::parallel::for_each_row;

pub(crate) fn row_max<T: Float>(x: &[T]) -> T {
    x.iter().fold(T::NEG_INFINITY, |m, &v| m.max_of(v))
}

/// Σ v, in 16 independent lanes over 256-element blocks (which the compiler vectorises), each
/// block's total added in f64: an f32 running sum over a 50257-wide row drifts by ~1e-5.
pub(crate) fn sum_f64<T: Float>(v: &[T]) -> f64 {
    v.chunks(256)
        .map(|block| {
            let mut lanes = [T::ZERO; 16];
            let mut chunks = block.chunks_exact(16);
            for c in &mut chunks {
                for (l, &x) in lanes.iter_mut().zip(c) {
                    *l += x;
                }
            }
            let tail = chunks.remainder().iter().fold(T::ZERO, |s, &x| s + x);
            lanes.iter().fold(tail.to_f64(), |s, l| s + l.to_f64())
        })
        .sum()
}

/// `out = exp(x − shift)`, vectorised.
pub(crate) fn exp_shifted<T: Float>(x: &[T], shift: T, out: &mut [T]) {
    out.copy_from_slice(x);
    T::map_slice(out, |v| (v - shift).exp());
}

/// `y = softmax(x)` for each row of length `d`.
pub fn softmax_fwd<T: Float>(x: &[T], y: &mut [T], d: usize) {
    assert_eq!(x.len(), y.len(), "softmax_fwd: x and y differ in length");
    for_each_row(y, d, 8, |r, yr| {
        T::softmax_row(&x[r * d..(r + 1) * d], yr);
    });
}

/// One row of [`softmax_fwd`] for any float type (f64's path; f32 has [`crate::rows`]); returns the
/// row's maximum and `1/Σ exp(x − max)`.
pub fn softmax_row_generic<T: Float>(xr: &[T], yr: &mut [T]) -> (T, T) {
    yr.copy_from_slice(xr);
    softmax_row_in_place_generic(yr)
}

/// [`softmax_row_generic`] in place; returns the row's maximum and `1/Σ exp(x − max)`.
pub fn softmax_row_in_place_generic<T: Float>(y: &mut [T]) -> (T, T) {
    let mx = row_max(y);
    T::map_slice(y, |v| (v - mx).exp());
    let inv = T::from_f64(1.0 / sum_f64(y));
    y.iter_mut().for_each(|v| *v *= inv);
    (mx, inv)
}

/// `dx = y ⊙ (dy − Σ dy⊙y)` for each row, from the forward output `y`.
pub fn softmax_bwd<T: Float>(y: &[T], dy: &[T], dx: &mut [T], d: usize) {
    assert!(
        y.len() == dy.len() && dy.len() == dx.len(),
        "softmax_bwd: lengths differ"
    );
    for_each_row(dx, d, 4, |r, dxr| {
        T::softmax_bwd_row(&y[r * d..(r + 1) * d], &dy[r * d..(r + 1) * d], dxr)
    });
}

/// One row of [`softmax_bwd`] for any float type (f64's path; f32 has [`crate::rows`]).
pub fn softmax_bwd_row_generic<T: Float>(yr: &[T], dyr: &[T], dxr: &mut [T]) {
    let dot = yr.iter().zip(dyr).fold(T::ZERO, |s, (&a, &b)| s + a * b);
    for ((g, &yv), &dyv) in dxr.iter_mut().zip(yr).zip(dyr) {
        *g = yv * (dyv - dot);
    }
}

/// `y = x − max − ln Σ exp(x − max)` for each row.
pub fn log_softmax_fwd<T: Float>(x: &[T], y: &mut [T], d: usize) {
    assert_eq!(
        x.len(),
        y.len(),
        "log_softmax_fwd: x and y differ in length"
    );
    for_each_row(y, d, 8, |r, yr| {
        let xr = &x[r * d..(r + 1) * d];
        let mx = row_max(xr);
        exp_shifted(xr, mx, yr); // scratch for the sum
        let lse = mx + T::from_f64(sum_f64(yr).ln());
        for (yv, &xv) in yr.iter_mut().zip(xr) {
            *yv = xv - lse;
        }
    });
}

/// `dx = dy − exp(y) Σ dy` for each row, from the forward output `y`.
pub fn log_softmax_bwd<T: Float>(y: &[T], dy: &[T], dx: &mut [T], d: usize) {
    assert!(
        y.len() == dy.len() && dy.len() == dx.len(),
        "log_softmax_bwd: lengths differ"
    );
    for_each_row(dx, d, 6, |r, dxr| {
        let (yr, dyr) = (&y[r * d..(r + 1) * d], &dy[r * d..(r + 1) * d]);
        let sum = dyr.iter().fold(T::ZERO, |s, &v| s + v);
        for ((g, &yv), &dyv) in dxr.iter_mut().zip(yr).zip(dyr) {
            *g = dyv - yv.exp() * sum;
        }
    });
}
