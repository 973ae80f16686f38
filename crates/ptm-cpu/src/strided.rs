//! Walking strided views in row-major order.
//!
//! A view is `(shape, strides, offset)` over a flat buffer, strides in elements. Broadcast dims
//! have stride 0. These walkers are the one place that turns a view into element offsets.

/// Calls `f(offset)` for every element of the view, in row-major order of `shape`.
pub fn for_each_offset(
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    mut f: impl FnMut(usize),
) {
    for_each_offset2(shape, strides, offset, strides, offset, |o, _| f(o));
}

/// Calls `f(offset_a, offset_b)` for every element of two views that share `shape`.
pub fn for_each_offset2(
    shape: &[usize],
    strides_a: &[usize],
    offset_a: usize,
    strides_b: &[usize],
    offset_b: usize,
    mut f: impl FnMut(usize, usize),
) {
    if shape.contains(&0) {
        return;
    }
    let rank = shape.len();
    if rank == 0 {
        f(offset_a, offset_b);
        return;
    }
    let n = shape[rank - 1];
    let (sa, sb) = (strides_a[rank - 1], strides_b[rank - 1]);
    let mut index = vec![0usize; rank - 1];
    let (mut base_a, mut base_b) = (offset_a, offset_b);
    loop {
        let (mut oa, mut ob) = (base_a, base_b);
        for _ in 0..n {
            f(oa, ob);
            oa += sa;
            ob += sb;
        }
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            base_a += strides_a[d];
            base_b += strides_b[d];
            if index[d] < shape[d] {
                break;
            }
            base_a -= strides_a[d] * shape[d];
            base_b -= strides_b[d] * shape[d];
            index[d] = 0;
        }
    }
}

/// Copies a strided view into a new contiguous row-major vector.
pub fn gather<T: Copy>(src: &[T], shape: &[usize], strides: &[usize], offset: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(shape.iter().product());
    if is_contiguous(shape, strides) {
        let n: usize = shape.iter().product();
        out.extend_from_slice(&src[offset..offset + n]);
    } else {
        for_each_offset(shape, strides, offset, |o| out.push(src[o]));
    }
    out
}

/// Row-major strides of a contiguous tensor of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut s = 1;
    for (st, &d) in strides.iter_mut().zip(shape).rev() {
        *st = s;
        s *= d;
    }
    strides
}

/// Whether a view with these strides covers a contiguous row-major block (dims of size 1 may carry
/// any stride).
pub fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected *= d;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_transposed_view() {
        // 2x3 buffer viewed as its 3x2 transpose.
        let mut seen = vec![];
        for_each_offset(&[3, 2], &[1, 3], 0, |o| seen.push(o));
        assert_eq!(seen, vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn walks_a_broadcast_pair() {
        let mut seen = vec![];
        for_each_offset2(&[2, 2], &[0, 1], 1, &[1, 0], 0, |a, b| seen.push((a, b)));
        assert_eq!(seen, vec![(1, 0), (2, 0), (1, 1), (2, 1)]);
    }

    #[test]
    fn contiguity_ignores_unit_dims() {
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
