//! How a tensor's elements sit in its storage: shape, strides (in elements) and offset. Every view
//! op is a pure function from one layout to another; no data moves.

use crate::error::{Error, Result};
use crate::Shape;

/// Shape, strides and start offset of a view into a storage buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A contiguous row-major layout starting at 0.
    pub fn contiguous(shape: Shape) -> Self {
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }
    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// The dims.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    /// Strides in elements.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    /// Offset of the first element in the storage.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// Whether the view is a contiguous row-major block.
    pub fn is_contiguous(&self) -> bool {
        ptm_cpu::strided::is_contiguous(self.dims(), &self.strides)
    }

    /// The same elements under a new shape; only valid for contiguous layouts.
    pub(crate) fn reshaped(&self, shape: Shape) -> Layout {
        Layout {
            strides: shape.contiguous_strides(),
            shape,
            offset: self.offset,
        }
    }

    /// Swaps two dims.
    pub(crate) fn transposed(&self, d0: usize, d1: usize) -> Layout {
        let mut l = self.clone();
        let mut dims = l.shape.dims().to_vec();
        dims.swap(d0, d1);
        l.strides.swap(d0, d1);
        l.shape = dims.into();
        l
    }

    /// Reorders dims: new dim `i` is old dim `perm[i]`.
    pub(crate) fn permuted(&self, perm: &[usize]) -> Layout {
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims()[p]).collect();
        let strides = perm.iter().map(|&p| self.strides[p]).collect();
        Layout {
            shape: dims.into(),
            strides,
            offset: self.offset,
        }
    }

    /// Keeps `len` entries of `dim` starting at `start`.
    pub(crate) fn narrowed(&self, dim: usize, start: usize, len: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        dims[dim] = len;
        Layout {
            shape: dims.into(),
            strides: self.strides.clone(),
            offset: self.offset + start * self.strides[dim],
        }
    }

    /// Broadcasts to `shape` (stride 0 on new and stretched dims). Errors name the dim that cannot.
    pub(crate) fn broadcast_to(&self, op: &'static str, shape: &Shape) -> Result<Layout> {
        let (r, rs) = (shape.rank(), self.shape.rank());
        if rs > r {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape.clone(),
                rhs: shape.clone(),
                note: "cannot broadcast to a lower rank".into(),
            });
        }
        let mut strides = vec![0; r];
        for i in 0..rs {
            let (src, dst) = (self.dims()[rs - 1 - i], shape.dims()[r - 1 - i]);
            strides[r - 1 - i] = if src == dst {
                self.strides[rs - 1 - i]
            } else if src == 1 {
                0
            } else {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: self.shape.clone(),
                    rhs: shape.clone(),
                    note: format!("dim {} of size {src} cannot broadcast to {dst}", rs - 1 - i),
                });
            };
        }
        Ok(Layout {
            shape: shape.clone(),
            strides,
            offset: self.offset,
        })
    }

    /// Inserts a dim of size 1 at `dim`.
    pub(crate) fn unsqueezed(&self, dim: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        let stride = if dim < dims.len() {
            dims[dim] * strides[dim]
        } else {
            1
        };
        dims.insert(dim, 1);
        strides.insert(dim, stride);
        Layout {
            shape: dims.into(),
            strides,
            offset: self.offset,
        }
    }

    /// Removes the size-1 dim `dim`.
    pub(crate) fn squeezed(&self, dim: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.remove(dim);
        strides.remove(dim);
        Layout {
            shape: dims.into(),
            strides,
            offset: self.offset,
        }
    }
}
