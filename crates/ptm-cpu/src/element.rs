//! The element traits the kernels are generic over.

use crate::isa::Isa;
use crate::matmul::MatRef;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A numeric element: the four arithmetic operations plus an order. Implemented for the floating
/// types and for the integer id types (`u32`, `i64`), whose arithmetic wraps and whose division
/// reports a zero divisor instead of panicking.
pub trait Element: Copy + Send + Sync + PartialOrd + Debug + Default + 'static {
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;
    /// `self + rhs` (wrapping for integers).
    fn add(self, rhs: Self) -> Self;
    /// `self - rhs` (wrapping for integers).
    fn sub(self, rhs: Self) -> Self;
    /// `self * rhs` (wrapping for integers).
    fn mul(self, rhs: Self) -> Self;
    /// `self / rhs`, toward zero and wrapping for integers (`i64::MIN / -1` is `i64::MIN`); `None`
    /// for an integer division by zero.
    fn div(self, rhs: Self) -> Option<Self>;
    /// Converts from f64 (saturating and truncating for integers).
    fn from_f64(x: f64) -> Self;
    /// Converts to f64.
    fn to_f64(self) -> f64;
    /// The larger of the two; NaN propagates for floats.
    fn max_of(self, rhs: Self) -> Self;
    /// The smaller of the two; NaN propagates for floats.
    fn min_of(self, rhs: Self) -> Self;
}

macro_rules! int_element {
    ($t:ty) => {
        impl Element for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            fn add(self, rhs: Self) -> Self {
                self.wrapping_add(rhs)
            }
            fn sub(self, rhs: Self) -> Self {
                self.wrapping_sub(rhs)
            }
            fn mul(self, rhs: Self) -> Self {
                self.wrapping_mul(rhs)
            }
            fn div(self, rhs: Self) -> Option<Self> {
                // Wrapping like the other integer ops (i64::MIN / -1 is i64::MIN); None only for
                // a zero divisor.
                (rhs != 0).then(|| self.wrapping_div(rhs))
            }
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn max_of(self, rhs: Self) -> Self {
                Ord::max(self, rhs)
            }
            fn min_of(self, rhs: Self) -> Self {
                Ord::min(self, rhs)
            }
        }
    };
}
int_element!(u32);
int_element!(i64);

/// A floating-point element (f32 or f64) with the transcendental functions the kernels need.
pub trait Float:
    Element
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// The most negative finite value: what attention masks fill with, as PyTorch's `finfo.min`.
    const MIN_FINITE: Self;
    /// e^x
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self` raised to a real power.
    fn powf(self, e: Self) -> Self;
    /// The error function.
    fn erf(self) -> Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// The logistic sigmoid `1/(1+e^-x)`, without overflow for large |x|.
    fn sigmoid(self) -> Self;
    /// `v[i] = f(v[i])`; for f32 compiled for the widest vectors of [`Isa::selected`].
    fn map_slice(v: &mut [Self], f: impl Fn(Self) -> Self);
    /// `C += A·B`, or `C = A·B` without reading C when `overwrite` (`C` row-major `m×n`), on
    /// the instruction-set path `isa`, which the caller has checked this CPU supports. f32 has
    /// SIMD paths; f64 always takes the portable one.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        isa: Isa,
        m: usize,
        n: usize,
        k: usize,
        a: &MatRef<Self>,
        b: &MatRef<Self>,
        c: &mut [Self],
        overwrite: bool,
    );
    /// `y = softmax(x)` of one row; returns its maximum and `1/Σ exp(x − max)`. f32 takes the
    /// lane-parallel kernel of [`crate::rows`].
    fn softmax_row(x: &[Self], y: &mut [Self]) -> (Self, Self);
    /// Softmax of one row in place; returns its maximum and `1/Σ exp(x − max)`.
    fn softmax_row_in_place(y: &mut [Self]) -> (Self, Self);
    /// Softmax backward of one row: `dx = y ∘ (dy − Σ dy∘y)`.
    fn softmax_bwd_row(y: &[Self], dy: &[Self], dx: &mut [Self]);
    /// `y = (x − mean)·rstd·w + b` of one row; f32 takes [`crate::rows`].
    fn layer_norm_row(
        x: &[Self],
        w: Option<&[Self]>,
        b: Option<&[Self]>,
        eps: Self,
        y: &mut [Self],
    );
}

macro_rules! float_element {
    ($t:ty, erf: $erf:path, exp: $exp:expr, tanh: $tanh:expr, sigmoid: $sigmoid:expr, map: $map:expr, gemm: $gemm:expr, softmax_row: $softmax_row:path, softmax_in_place: $softmax_in_place:path, softmax_bwd_row: $softmax_bwd_row:path, layer_norm_row: $layer_norm_row:path) => {
        impl Element for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn add(self, rhs: Self) -> Self {
                self + rhs
            }
            #[inline]
            fn sub(self, rhs: Self) -> Self {
                self - rhs
            }
            #[inline]
            fn mul(self, rhs: Self) -> Self {
                self * rhs
            }
            #[inline]
            fn div(self, rhs: Self) -> Option<Self> {
                Some(self / rhs)
            }
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn max_of(self, rhs: Self) -> Self {
                if self.is_nan() || self >= rhs {
                    self
                } else {
                    rhs
                }
            }
            #[inline]
            fn min_of(self, rhs: Self) -> Self {
                if self.is_nan() || self <= rhs {
                    self
                } else {
                    rhs
                }
            }
        }
        impl Float for $t {
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            const MIN_FINITE: Self = <$t>::MIN;
            // Always inlined, so that a mapped slice vectorises through it.
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            // Always inlined, so that a mapped slice vectorises through it.
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            // Always inlined, so that a mapped slice vectorises through it.
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            // Always inlined, so that a mapped slice vectorises through it.
            #[inline(always)]
            fn sigmoid(self) -> Self {
                $sigmoid(self)
            }
            #[inline]
            fn map_slice(v: &mut [Self], f: impl Fn(Self) -> Self) {
                $map(v, f)
            }
            #[inline]
            fn gemm(
                isa: Isa,
                m: usize,
                n: usize,
                k: usize,
                a: &MatRef<Self>,
                b: &MatRef<Self>,
                c: &mut [Self],
                overwrite: bool,
            ) {
                $gemm(isa, m, n, k, a, b, c, overwrite)
            }
            #[inline]
            fn softmax_row(x: &[Self], y: &mut [Self]) -> (Self, Self) {
                $softmax_row(x, y)
            }
            #[inline]
            fn softmax_row_in_place(y: &mut [Self]) -> (Self, Self) {
                $softmax_in_place(y)
            }
            #[inline]
            fn softmax_bwd_row(y: &[Self], dy: &[Self], dx: &mut [Self]) {
                $softmax_bwd_row(y, dy, dx)
            }
            #[inline]
            fn layer_norm_row(
                x: &[Self],
                w: Option<&[Self]>,
                b: Option<&[Self]>,
                eps: Self,
                y: &mut [Self],
            ) {
                $layer_norm_row(x, w, b, eps, y)
            }
        }
    };
}
/// `v[i] = f(v[i])`, a plain loop.
fn map_plain<T: Copy>(v: &mut [T], f: impl Fn(T) -> T) {
    v.iter_mut().for_each(|x| *x = f(*x));
}

/// The sigmoid from whichever side keeps `e^-|x|` ≤ 1.
fn sigmoid_f64(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

// f32 takes the vectorisable transcendentals of `vmath` (within 3 ulp); f64, which the gradient
// checks run in, keeps the correctly rounded std/libm ones.
float_element!(
    f32,
    erf: crate::vmath::erf,
    exp: crate::vmath::exp,
    tanh: crate::vmath::tanh,
    sigmoid: crate::vmath::sigmoid,
    map: crate::vmath::map_f32,
    gemm: crate::matmul::gemm_f32,
    softmax_row: crate::rows::softmax_row,
    softmax_in_place: crate::rows::softmax_row_in_place,
    softmax_bwd_row: crate::rows::softmax_bwd_row,
    layer_norm_row: crate::rows::layer_norm_row
);
float_element!(
    f64,
    erf: libm::erf,
    exp: f64::exp,
    tanh: f64::tanh,
    sigmoid: sigmoid_f64,
    map: map_plain,
    gemm: |_, m, n, k, a, b, c, overwrite| crate::matmul::gemm_portable(m, n, k, a, b, c, overwrite),
    softmax_row: crate::softmax::softmax_row_generic,
    softmax_in_place: crate::softmax::softmax_row_in_place_generic,
    softmax_bwd_row: crate::softmax::softmax_bwd_row_generic,
    layer_norm_row: crate::layer_norm::layer_norm_row_generic
);
