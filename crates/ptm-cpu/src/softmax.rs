//! Row-wise softmax and log-softmax, forward and backward, over rows of length `d`.

use crate::element::Float;
use crate::parallel::for_each_row;

fn row_max<T: Float>(x: &[T]) -> T {
    x.iter().fold(T::NEG_INFINITY, |m, &v| m.max_of(v))
}

/// `y = softmax(x)` for each row of length `d`.
pub fn softmax_fwd<T: Float>(x: &[T], y: &mut [T], d: usize) {
    assert_eq!(x.len(), y.len(), "softmax_fwd: x and y differ in length");
    for_each_row(y, d, 8, |r, yr| {
        let xr = &x[r * d..(r + 1) * d];
        let mx = row_max(xr);
        // f64 running sum: an f32 one drifts by ~1e-5 over a 50k-wide row.
        let mut sum = 0.0f64;
        for (yv, &xv) in yr.iter_mut().zip(xr) {
            *yv = (xv - mx).exp();
            sum += yv.to_f64();
        }
        let inv = T::from_f64(1.0 / sum);
        yr.iter_mut().for_each(|v| *v *= inv);
    });
}

/// `dx = y ⊙ (dy − Σ dy⊙y)` for each row, from the forward output `y`.
pub fn softmax_bwd<T: Float>(y: &[T], dy: &[T], dx: &mut [T], d: usize) {
    assert!(
        y.len() == dy.len() && dy.len() == dx.len(),
        "softmax_bwd: lengths differ"
    );
    for_each_row(dx, d, 4, |r, dxr| {
        let (yr, dyr) = (&y[r * d..(r + 1) * d], &dy[r * d..(r + 1) * d]);
        let dot = yr.iter().zip(dyr).fold(T::ZERO, |s, (&a, &b)| s + a * b);
        for ((g, &yv), &dyv) in dxr.iter_mut().zip(yr).zip(dyr) {
            *g = yv * (dyv - dot);
        }
    });
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
        let sum = xr.iter().fold(0.0f64, |s, &v| s + (v - mx).exp().to_f64());
        let lse = mx + T::from_f64(sum.ln());
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
