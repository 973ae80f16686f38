//! im2col / col2im for 2-D convolution: a convolution becomes one matmul over unfolded patches.

use crate::element::Float;

/// The geometry of a 2-D convolution over an `[n, c, h, w]` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (same in both directions).
    pub stride: usize,
    /// Zero padding on each side (same in both directions).
    pub padding: usize,
}

impl Conv2dGeometry {
    /// Output height; `None` when the kernel does not fit the padded input or the stride is 0.
    pub fn out_h(&self) -> Option<usize> {
        out_len(self.h, self.kh, self.stride, self.padding)
    }
    /// Output width; `None` when the kernel does not fit the padded input or the stride is 0.
    pub fn out_w(&self) -> Option<usize> {
        out_len(self.w, self.kw, self.stride, self.padding)
    }
}

fn out_len(len: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = len + 2 * pad;
    (stride > 0 && k > 0 && padded >= k).then(|| (padded - k) / stride + 1)
}

/// Visits every patch entry in `cols` order (`[n, c·kh·kw, oh·ow]`), with the flat index of the
/// input element it reads in `[n, c, h, w]`, or `None` where it falls in the zero padding.
fn for_each_patch_entry(g: &Conv2dGeometry, mut f: impl FnMut(usize, Option<usize>)) {
    let (oh, ow) = (g.out_h().unwrap_or(0), g.out_w().unwrap_or(0));
    let mut idx = 0;
    for plane in 0..g.n * g.c {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                for oi in 0..oh {
                    let i = (oi * g.stride + ki) as isize - g.padding as isize;
                    for oj in 0..ow {
                        let j = (oj * g.stride + kj) as isize - g.padding as isize;
                        let inside = i >= 0 && j >= 0 && (i as usize) < g.h && (j as usize) < g.w;
                        f(
                            idx,
                            inside.then(|| (plane * g.h + i as usize) * g.w + j as usize),
                        );
                        idx += 1;
                    }
                }
            }
        }
    }
}

/// Unfolds `x` (`[n, c, h, w]`, contiguous) into `cols` (`[n, c·kh·kw, oh·ow]`).
pub fn im2col<T: Float>(x: &[T], g: &Conv2dGeometry, cols: &mut [T]) {
    for_each_patch_entry(g, |idx, src| cols[idx] = src.map_or(T::ZERO, |s| x[s]));
}

/// The adjoint of [`im2col`]: adds every patch entry of `cols` back to its input position in `dx`.
pub fn col2im<T: Float>(cols: &[T], g: &Conv2dGeometry, dx: &mut [T]) {
    for_each_patch_entry(g, |idx, dst| {
        if let Some(d) = dst {
            dx[d] += cols[idx];
        }
    });
}
