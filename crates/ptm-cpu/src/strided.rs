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
    let runs = Runs2::new(shape, strides_a, strides_b);
    let (n, sa, sb) = (runs.len, runs.stride_a, runs.stride_b);
    runs.for_each(offset_a, offset_b, |oa, ob| {
        for i in 0..n {
            f(oa + i * sa, ob + i * sb);
        }
    });
}

/// Two views of one shape walked as runs: the shape with adjacent dims merged wherever both views
/// step through them as one (and size-1 dims dropped), so that the innermost dim — one run — is
/// as long as it can be. Kernels then work a run at a time: a slice when its stride is 1, one
/// value when it is 0 (broadcast).
#[derive(Clone, Debug)]
pub struct Runs2 {
    outer: Vec<usize>,
    outer_a: Vec<usize>,
    outer_b: Vec<usize>,
    /// Elements per run (0 when the shape is empty).
    pub len: usize,
    /// Stride of view A within a run.
    pub stride_a: usize,
    /// Stride of view B within a run.
    pub stride_b: usize,
}

impl Runs2 {
    /// The runs of two views sharing `shape`.
    pub fn new(shape: &[usize], strides_a: &[usize], strides_b: &[usize]) -> Runs2 {
        // Merged dims, innermost first: (size, stride in a, stride in b).
        let mut dims: Vec<(usize, usize, usize)> = vec![];
        if shape.contains(&0) {
            return Runs2 {
                outer: vec![],
                outer_a: vec![],
                outer_b: vec![],
                len: 0,
                stride_a: 0,
                stride_b: 0,
            };
        }
        for d in (0..shape.len()).rev() {
            let (n, a, b) = (shape[d], strides_a[d], strides_b[d]);
            if n == 1 {
                continue;
            }
            match dims.last_mut() {
                Some((m, ia, ib)) if a == *ia * *m && b == *ib * *m => *m *= n,
                _ => dims.push((n, a, b)),
            }
        }
        let (len, stride_a, stride_b) = if dims.is_empty() {
            (1, 0, 0)
        } else {
            dims.remove(0)
        };
        dims.reverse();
        Runs2 {
            outer: dims.iter().map(|d| d.0).collect(),
            outer_a: dims.iter().map(|d| d.1).collect(),
            outer_b: dims.iter().map(|d| d.2).collect(),
            len,
            stride_a,
            stride_b,
        }
    }

    /// Calls `f(start_a, start_b)` for every run, in row-major order.
    pub fn for_each(&self, offset_a: usize, offset_b: usize, mut f: impl FnMut(usize, usize)) {
        if self.len == 0 {
            return;
        }
        let rank = self.outer.len();
        let mut index = vec![0usize; rank];
        let (mut a, mut b) = (offset_a, offset_b);
        loop {
            f(a, b);
            let mut d = rank;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                index[d] += 1;
                a += self.outer_a[d];
                b += self.outer_b[d];
                if index[d] < self.outer[d] {
                    break;
                }
                a -= self.outer_a[d] * self.outer[d];
                b -= self.outer_b[d] * self.outer[d];
                index[d] = 0;
            }
        }
    }
}

/// Copies a strided view into a new contiguous row-major vector.
pub fn gather<T: Copy>(src: &[T], shape: &[usize], strides: &[usize], offset: usize) -> Vec<T> {
    let runs = Runs2::new(shape, strides, strides);
    let mut out = Vec::with_capacity(shape.iter().product());
    let (n, s) = (runs.len, runs.stride_a);
    runs.for_each(offset, offset, |o, _| {
        if s == 1 {
            out.extend_from_slice(&src[o..o + n]);
        } else {
            out.extend((0..n).map(|i| src[o + i * s]));
        }
    });
    out
}

/// Writes the transpose of the `rows × cols` matrix `src` (row stride `src_stride`) into `dst`
/// (`cols × rows`, row stride `dst_stride`). In 16 × 16 tiles read as fixed-size rows, so the
/// tile's 16 destination rows stay in L1 and the copies compile without bounds checks; the edges
/// go element by element.
///
/// # Panics
/// If either matrix overruns its slice.
pub fn transpose<T: Copy>(
    src: &[T],
    (rows, cols, src_stride): (usize, usize, usize),
    dst: &mut [T],
    dst_stride: usize,
) {
    const TILE: usize = 16;
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * src_stride + cols <= src.len() && (cols - 1) * dst_stride + rows <= dst.len(),
        "transpose: {rows}×{cols} overruns its source ({}) or destination ({})",
        src.len(),
        dst.len()
    );
    let (full_r, full_c) = (rows / TILE * TILE, cols / TILE * TILE);
    for r0 in (0..full_r).step_by(TILE) {
        for c0 in (0..full_c).step_by(TILE) {
            let tile: [&[T; TILE]; TILE] = std::array::from_fn(|i| {
                let at = (r0 + i) * src_stride + c0;
                src[at..at + TILE].try_into().expect("a 16-element row")
            });
            for j in 0..TILE {
                let at = (c0 + j) * dst_stride + r0;
                let out: &mut [T; TILE] = (&mut dst[at..at + TILE])
                    .try_into()
                    .expect("a 16-element row");
                for (o, row) in out.iter_mut().zip(&tile) {
                    *o = row[j];
                }
            }
        }
    }
    // The right edge of the full rows, then the bottom rows.
    for r in 0..full_r {
        for c in full_c..cols {
            dst[c * dst_stride + r] = src[r * src_stride + c];
        }
    }
    for r in full_r..rows {
        for c in 0..cols {
            dst[c * dst_stride + r] = src[r * src_stride + c];
        }
    }
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
    fn transpose_matches_the_definition_on_odd_shapes() {
        for (rows, cols) in [
            (1, 1),
            (3, 17),
            (16, 16),
            (17, 33),
            (64, 64),
            (100, 65),
            (512, 64),
        ] {
            let (ss, ds) = (cols + 3, rows + 5);
            let src: Vec<u32> = (0..rows * ss).map(|i| i as u32).collect();
            let mut dst = vec![u32::MAX; cols * ds];
            transpose(&src, (rows, cols, ss), &mut dst, ds);
            for c in 0..cols {
                for r in 0..ds {
                    let want = if r < rows { src[r * ss + c] } else { u32::MAX };
                    assert_eq!(dst[c * ds + r], want, "{rows}×{cols} at ({c}, {r})");
                }
            }
        }
    }

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
    fn runs_merge_what_both_views_walk_as_one() {
        // [2,3,4] contiguous plus a broadcast bias over the last dim: rows of 4, both unit stride.
        let r = Runs2::new(&[2, 3, 4], &[12, 4, 1], &[0, 0, 1]);
        assert_eq!((r.len, r.stride_a, r.stride_b), (4, 1, 1));
        assert_eq!(r.outer, [6]);
        // Both contiguous: one run of everything.
        let r = Runs2::new(&[2, 3, 4], &[12, 4, 1], &[12, 4, 1]);
        assert_eq!((r.len, r.outer.len()), (24, 0));
        // A per-row scalar: runs of 4 against stride 0; unit dims vanish.
        let r = Runs2::new(&[2, 1, 4], &[4, 7, 1], &[1, 9, 0]);
        assert_eq!((r.len, r.stride_a, r.stride_b), (4, 1, 0));
        let mut starts = vec![];
        r.for_each(5, 0, |a, b| starts.push((a, b)));
        assert_eq!(starts, [(5, 0), (9, 1)]);
        // Empty and scalar shapes.
        assert_eq!(Runs2::new(&[3, 0], &[0, 1], &[0, 1]).len, 0);
        let r = Runs2::new(&[], &[], &[]);
        assert_eq!((r.len, r.outer.len()), (1, 0));
    }

    #[test]
    fn gather_matches_the_elementwise_walk() {
        let src: Vec<u32> = (0..60).collect();
        for (shape, strides, off) in [
            (vec![3usize, 4, 5], vec![20usize, 5, 1], 0usize),
            (vec![5, 4, 3], vec![1, 5, 20], 0),
            (vec![2, 3, 4], vec![20, 1, 3], 7),
            (vec![3, 2, 5], vec![0, 5, 1], 10),
        ] {
            let mut want = vec![];
            for i in 0..shape.iter().product::<usize>() {
                let (mut rem, mut o) = (i, off);
                for d in (0..shape.len()).rev() {
                    o += (rem % shape[d]) * strides[d];
                    rem /= shape[d];
                }
                want.push(src[o]);
            }
            assert_eq!(
                gather(&src, &shape, &strides, off),
                want,
                "{shape:?} {strides:?}"
            );
        }
    }

    #[test]
    fn contiguity_ignores_unit_dims() {
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
