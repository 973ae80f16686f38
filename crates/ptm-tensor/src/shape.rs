//! Shapes, dimension arguments and the broadcasting rule.

use crate::error::{Error, Result};

/// The sizes of a tensor's dimensions, outermost first. `[]` is a scalar.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// The dims as a slice.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major strides of a contiguous tensor of this shape.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        ptm_cpu::strided::contiguous_strides(&self.0)
    }
    /// The dims of a rank-2 shape.
    pub fn dims2(&self, op: &'static str) -> Result<(usize, usize)> {
        match self.0[..] {
            [a, b] => Ok((a, b)),
            _ => Err(Error::BadShape {
                op,
                shape: self.clone(),
                msg: "expected rank 2".into(),
            }),
        }
    }
    /// The dims of a rank-4 shape.
    pub fn dims4(&self, op: &'static str) -> Result<(usize, usize, usize, usize)> {
        match self.0[..] {
            [a, b, c, d] => Ok((a, b, c, d)),
            _ => Err(Error::BadShape {
                op,
                shape: self.clone(),
                msg: "expected rank 4".into(),
            }),
        }
    }
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}
impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape(vec![])
    }
}

/// A dimension argument: a `usize` counts from the front, a negative `i32`/`i64` from the back
/// (`-1` is the last dim), as in PyTorch.
pub trait Dim: Copy {
    /// Resolves against a shape, or names the op and shape in the error.
    fn resolve(self, shape: &Shape, op: &'static str) -> Result<usize>;
}

fn resolve_signed(d: i64, shape: &Shape, op: &'static str) -> Result<usize> {
    let rank = shape.rank() as i64;
    let r = if d < 0 { d + rank } else { d };
    if r < 0 || r >= rank {
        return Err(Error::DimOutOfRange {
            op,
            dim: d,
            shape: shape.clone(),
        });
    }
    Ok(r as usize)
}

impl Dim for usize {
    fn resolve(self, shape: &Shape, op: &'static str) -> Result<usize> {
        resolve_signed(self as i64, shape, op)
    }
}
impl Dim for i32 {
    fn resolve(self, shape: &Shape, op: &'static str) -> Result<usize> {
        resolve_signed(self as i64, shape, op)
    }
}
impl Dim for i64 {
    fn resolve(self, shape: &Shape, op: &'static str) -> Result<usize> {
        resolve_signed(self, shape, op)
    }
}

/// The numpy broadcast of two shapes: align from the right; sizes must match or one must be 1.
pub fn broadcast_shape(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
    let rank = a.rank().max(b.rank());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = dim_from_right(a, rank - 1 - i);
        let db = dim_from_right(b, rank - 1 - i);
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: a.clone(),
                    rhs: b.clone(),
                    note: "not broadcastable".into(),
                })
            }
        };
    }
    Ok(Shape(out))
}

fn dim_from_right(s: &Shape, i: usize) -> usize {
    if i < s.rank() {
        s.0[s.rank() - 1 - i]
    } else {
        1
    }
}
