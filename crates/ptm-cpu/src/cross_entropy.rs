//! Fused softmax + cross-entropy over rows of `c` logits, PyTorch's semantics: targets equal to
//! `ignore_index` contribute nothing, and the mean is over the remaining rows. The probabilities
//! are never stored: the forward keeps one log-sum-exp per row, the backward recomputes them.

use crate::element::Float;

/// `softmax(row)` into `p` (one exponential per logit, through the row kernel: vectorised for f32)
/// and `ln Σ exp(row)` (= max + ln Σ exp(row − max), the sum taken in f64 by the kernel).
fn softmax_lse<T: Float>(row: &[T], p: &mut [T]) -> f64 {
    let (mx, inv) = T::softmax_row(row, p);
    mx.to_f64() - inv.to_f64().ln()
}

/// Sum over counted rows of `lse(row) − row[target]`, and the number of counted rows.
/// Every target must be `ignore_index` or in `0..c` (the caller checks).
pub fn cross_entropy_fwd<T: Float>(
    logits: &[T],
    targets: &[i64],
    c: usize,
    ignore_index: i64,
) -> (f64, usize) {
    let (mut total, mut count) = (0.0f64, 0usize);
    let mut scratch = vec![T::ZERO; c];
    for (row, &t) in logits.chunks(c).zip(targets) {
        if t == ignore_index {
            continue;
        }
        total += softmax_lse(row, &mut scratch) - row[t as usize].to_f64();
        count += 1;
    }
    (total, count)
}

/// `dlogits = scale · (softmax(row) − onehot(target))` for counted rows, zero for ignored ones.
/// For the mean loss `scale` is `upstream_grad / count`.
pub fn cross_entropy_bwd<T: Float>(
    logits: &[T],
    targets: &[i64],
    c: usize,
    ignore_index: i64,
    scale: T,
    dlogits: &mut [T],
) {
    for ((row, &t), g) in logits.chunks(c).zip(targets).zip(dlogits.chunks_mut(c)) {
        if t == ignore_index {
            g.fill(T::ZERO);
            continue;
        }
        softmax_lse(row, g);
        g.iter_mut().for_each(|v| *v *= scale);
        g[t as usize] -= scale;
    }
}

/// Forward and backward in one pass, rows in parallel: returns the summed loss over counted rows
/// and their number, and writes `dlogits = scale · (softmax(row) − onehot(target))` (zero rows for
/// ignored targets). Each row's exponentials are computed once, straight into `dlogits`, and
/// scaled there.
pub fn cross_entropy_fwd_bwd<T: Float>(
    logits: &[T],
    targets: &[i64],
    c: usize,
    ignore_index: i64,
    scale: T,
    dlogits: &mut [T],
) -> (f64, usize) {
    assert_eq!(
        logits.len(),
        dlogits.len(),
        "cross_entropy_fwd_bwd: buffers differ"
    );
    let rows = targets.len();
    let mut losses = vec![0.0f64; rows];
    let work = |i: usize, g: &mut [T]| -> f64 {
        let t = targets[i];
        if t == ignore_index {
            g.fill(T::ZERO);
            return 0.0;
        }
        let row = &logits[i * c..(i + 1) * c];
        let loss = softmax_lse(row, g) - row[t as usize].to_f64();
        g.iter_mut().for_each(|v| *v *= scale);
        g[t as usize] -= scale;
        loss
    };
    if c == 0 {
        return (0.0, 0);
    }
    if dlogits.len().saturating_mul(8) < crate::parallel::MIN_PARALLEL_WORK {
        for (i, (g, l)) in dlogits.chunks_mut(c).zip(&mut losses).enumerate() {
            *l = work(i, g);
        }
    } else {
        use rayon::prelude::*;
        dlogits
            .par_chunks_mut(c)
            .zip(losses.par_iter_mut())
            .enumerate()
            .for_each(|(i, (g, l))| *l = work(i, g));
    }
    let count = targets.iter().filter(|&&t| t != ignore_index).count();
    (losses.iter().sum(), count)
}
