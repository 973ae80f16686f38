//! Elementwise launchers (`kernels/elementwise.cu`): unary ops and their backward, broadcasting
//! binary ops, strided copies, casts, fill and select.

use super::{expect_len, launched, FloatType, Numeric};
use crate::device::Buffer;
use crate::error::{Error, Result};
use crate::memory::{DType, Layout};
use cudarc::driver::PushKernelArg;

const FILE: &str = "elementwise.cu";

/// Unary ops, numbered as `kernels/elementwise.cu` numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Unary {
    /// `-x`
    Neg = 0,
    /// `|x|`
    Abs,
    /// `sign(x)`
    Sign,
    /// `e^x`
    Exp,
    /// `ln x`
    Log,
    /// `√x`
    Sqrt,
    /// `1/√x`
    Rsqrt,
    /// `x^p`
    PowF,
    /// `tanh x`
    Tanh,
    /// `1/(1+e^-x)`
    Sigmoid,
    /// `max(x, 0)`
    Relu,
    /// GELU, tanh form
    GeluTanh,
    /// GELU, erf form
    GeluErf,
    /// `x·sigmoid(x)`
    Silu,
    /// `x + p`
    AddScalar,
    /// `x · p`
    MulScalar,
}

/// Binary ops, numbered as `kernels/elementwise.cu` numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Binary {
    /// `a + b`
    Add = 0,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `max(a, b)`, NaN propagating
    Maximum,
    /// `min(a, b)`, NaN propagating
    Minimum,
}

/// `y[i] = op(x[lx(i)], p)`: `y` is contiguous with `lx.numel()` elements.
pub fn unary<T: FloatType>(
    op: Unary,
    p: f64,
    x: &Buffer<T>,
    lx: &Layout,
    y: &mut Buffer<T>,
) -> Result<()> {
    let name = format!("unary_{}", T::NAME);
    lx.check_within(x.len(), &name)?;
    expect_len(&name, "y", y.len(), lx.numel())?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (op, n, xp, yp) = (op as i32, y.len() as i64, x.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&op).arg(&p).arg(&n).arg(&xp).arg(lx).arg(&yp);
    // SAFETY: arguments match `unary_T(int, double, i64, const T*, Layout, T*)`; x holds every
    // element lx reaches and y holds n elements (checked above).
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// `dx (+)= dy · op'(x)`, all contiguous and of one length.
pub fn unary_bwd<T: FloatType>(
    op: Unary,
    p: f64,
    x: &Buffer<T>,
    dy: &Buffer<T>,
    dx: &mut Buffer<T>,
    accumulate: bool,
) -> Result<()> {
    let name = format!("unary_bwd_{}", T::NAME);
    expect_len(&name, "dy", dy.len(), x.len())?;
    expect_len(&name, "dx", dx.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let dev = dx.device().clone();
    let f = dev.function(FILE, &name)?;
    let (op, n, acc) = (op as i32, x.len() as i64, accumulate as i32);
    let (xp, dyp, dxp) = (x.ptr(), dy.ptr(), dx.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&op)
        .arg(&p)
        .arg(&n)
        .arg(&xp)
        .arg(&dyp)
        .arg(&dxp)
        .arg(&acc);
    // SAFETY: arguments match `unary_bwd_T(int, double, i64, const T*, const T*, T*, int)`; all
    // three buffers hold n elements.
    launched(unsafe { l.launch(dev.grid_1d(x.len(), 256)) }, &name)
}

fn same_shape(name: &str, a: &Layout, b: &Layout) -> Result<()> {
    if a.shape() == b.shape() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{name}: operand views have shapes {:?} and {:?} (broadcast them to the output's first)",
            a.shape(),
            b.shape()
        )))
    }
}

/// `y[i] = op(a[la(i)], b[lb(i)])`: both views already broadcast to the output's shape (stride 0
/// on broadcast dimensions); `y` contiguous. Integers wrap and divide toward zero (`i64::MIN / -1`
/// wraps); a zero integer divisor is the caller's to refuse (the result is then unspecified).
pub fn binary<T: Numeric>(
    op: Binary,
    a: &Buffer<T>,
    la: &Layout,
    b: &Buffer<T>,
    lb: &Layout,
    y: &mut Buffer<T>,
) -> Result<()> {
    let name = format!("binary_{}", T::NAME);
    same_shape(&name, la, lb)?;
    la.check_within(a.len(), &name)?;
    lb.check_within(b.len(), &name)?;
    expect_len(&name, "y", y.len(), la.numel())?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (op, n, ap, bp, yp) = (op as i32, y.len() as i64, a.ptr(), b.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&op)
        .arg(&n)
        .arg(&ap)
        .arg(la)
        .arg(&bp)
        .arg(lb)
        .arg(&yp);
    // SAFETY: arguments match `binary_T(int, i64, const T*, Layout, const T*, Layout, T*)`; the
    // views lie within their buffers and y holds n elements.
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// `y = x[lx]` gathered into contiguous order.
pub fn copy<T: Numeric>(x: &Buffer<T>, lx: &Layout, y: &mut Buffer<T>) -> Result<()> {
    let name = format!("copy_{}", T::NAME);
    lx.check_within(x.len(), &name)?;
    expect_len(&name, "y", y.len(), lx.numel())?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (n, xp, yp) = (y.len() as i64, x.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&n).arg(&xp).arg(lx).arg(&yp);
    // SAFETY: arguments match `copy_T(i64, const T*, Layout, T*)`; sizes checked above.
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// `y = x` converted element by element: between floats, rounding to nearest even; where an
/// integer is involved, through f64 as Rust's `as` (float to integer truncates toward zero and
/// saturates, NaN becomes 0).
pub fn cast<S: Numeric, D: Numeric>(x: &Buffer<S>, y: &mut Buffer<D>) -> Result<()> {
    let name = format!("cast_{}_{}", S::NAME, D::NAME);
    expect_len(&name, "y", y.len(), x.len())?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (n, xp, yp) = (y.len() as i64, x.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&n).arg(&xp).arg(&yp);
    // SAFETY: arguments match `cast_S_D(i64, const S*, D*)`; both hold n elements.
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// Every element of `y` set to `v`.
pub fn fill<T: FloatType>(y: &mut Buffer<T>, v: f64) -> Result<()> {
    let name = format!("fill_{}", T::NAME);
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (n, yp) = (y.len() as i64, y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&n).arg(&v).arg(&yp);
    // SAFETY: arguments match `fill_T(i64, double, T*)`; y holds n elements.
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// `y[i] = c[lc(i)] != 0 ? a[la(i)] : b[lb(i)]`, all views broadcast to the output's shape.
#[allow(clippy::too_many_arguments)]
pub fn where_cond<T: FloatType>(
    c: &Buffer<u8>,
    lc: &Layout,
    a: &Buffer<T>,
    la: &Layout,
    b: &Buffer<T>,
    lb: &Layout,
    y: &mut Buffer<T>,
) -> Result<()> {
    let name = format!("where_{}", T::NAME);
    same_shape(&name, lc, la)?;
    same_shape(&name, la, lb)?;
    lc.check_within(c.len(), &name)?;
    la.check_within(a.len(), &name)?;
    lb.check_within(b.len(), &name)?;
    expect_len(&name, "y", y.len(), la.numel())?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (n, cp, ap, bp, yp) = (y.len() as i64, c.ptr(), a.ptr(), b.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&n)
        .arg(&cp)
        .arg(lc)
        .arg(&ap)
        .arg(la)
        .arg(&bp)
        .arg(lb)
        .arg(&yp);
    // SAFETY: arguments match `where_T(i64, const u8*, Layout, const T*, Layout, const T*,
    // Layout, T*)`; the views lie within their buffers and y holds n elements.
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// Comparisons, numbered as `kernels/elementwise.cu` numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Compare {
    /// `a == b`
    Eq = 0,
    /// `a != b`
    Ne,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
}

/// `y[i] = (a[la(i)] op b[lb(i)]) as u32` (1 or 0), views broadcast to the output's shape.
pub fn compare<T: DType>(
    op: Compare,
    a: &Buffer<T>,
    la: &Layout,
    b: &Buffer<T>,
    lb: &Layout,
    y: &mut Buffer<u32>,
) -> Result<()> {
    let name = format!("compare_{}", T::NAME);
    same_shape(&name, la, lb)?;
    la.check_within(a.len(), &name)?;
    lb.check_within(b.len(), &name)?;
    expect_len(&name, "y", y.len(), la.numel())?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (op, n, ap, bp, yp) = (op as i32, y.len() as i64, a.ptr(), b.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&op)
        .arg(&n)
        .arg(&ap)
        .arg(la)
        .arg(&bp)
        .arg(lb)
        .arg(&yp);
    // SAFETY: arguments match `compare_T(int, i64, const T*, Layout, const T*, Layout, u32*)`;
    // the views lie within their buffers and y holds n elements.
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// `y[i] = c[lc(i)] != 0 ? a[la(i)] : b[lb(i)]` with a u32 mask, views broadcast to the output.
#[allow(clippy::too_many_arguments)]
pub fn where_mask<T: DType>(
    c: &Buffer<u32>,
    lc: &Layout,
    a: &Buffer<T>,
    la: &Layout,
    b: &Buffer<T>,
    lb: &Layout,
    y: &mut Buffer<T>,
) -> Result<()> {
    let name = format!("where_mask_{}", T::NAME);
    same_shape(&name, lc, la)?;
    same_shape(&name, la, lb)?;
    lc.check_within(c.len(), &name)?;
    la.check_within(a.len(), &name)?;
    lb.check_within(b.len(), &name)?;
    expect_len(&name, "y", y.len(), la.numel())?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (n, cp, ap, bp, yp) = (y.len() as i64, c.ptr(), a.ptr(), b.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&n)
        .arg(&cp)
        .arg(lc)
        .arg(&ap)
        .arg(la)
        .arg(&bp)
        .arg(lb)
        .arg(&yp);
    // SAFETY: arguments match `where_mask_T(i64, const u32*, Layout, const T*, Layout, const T*,
    // Layout, T*)`; the views lie within their buffers and y holds n elements.
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// `y[ly(i)] = x[lx(i)]`: writes a view into a strided region of `y` (concatenation). `ly` must not
/// write one element twice: a stride of 0 on a dimension longer than 1 is refused.
pub fn copy_into<T: DType>(
    x: &Buffer<T>,
    lx: &Layout,
    y: &mut Buffer<T>,
    ly: &Layout,
) -> Result<()> {
    let name = format!("copy_into_{}", T::NAME);
    same_shape(&name, lx, ly)?;
    lx.check_within(x.len(), &name)?;
    ly.check_within(y.len(), &name)?;
    if ly.has_broadcast() {
        return Err(Error::Invalid(format!(
            "{name}: the destination view {:?} writes some elements twice",
            ly.shape()
        )));
    }
    let n = lx.numel();
    if n == 0 {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function(FILE, &name)?;
    let (nn, xp, yp) = (n as i64, x.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&nn).arg(&xp).arg(lx).arg(&yp).arg(ly);
    // SAFETY: arguments match `copy_into_T(i64, const T*, Layout, T*, Layout)`; both views lie
    // within their buffers and the destination view writes each element once.
    launched(unsafe { l.launch(dev.grid_1d(n, 256)) }, &name)
}
