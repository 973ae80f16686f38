//! When to split work across threads.

use rayon::prelude::*;

/// Below this many scalar operations a kernel runs on the calling thread: rayon's hand-off costs
/// a few microseconds, more than the work itself.
pub const MIN_PARALLEL_WORK: usize = 1 << 15;

/// Runs `f(row_index, out_row)` for each `row_len`-long row of `out`, in parallel when the total
/// work (`out.len() * cost_per_element`) pays for it.
pub fn for_each_row<T: Send>(
    out: &mut [T],
    row_len: usize,
    cost_per_element: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if row_len == 0 {
        return;
    }
    if out.len().saturating_mul(cost_per_element) < MIN_PARALLEL_WORK {
        out.chunks_mut(row_len)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        out.par_chunks_mut(row_len)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    }
}
