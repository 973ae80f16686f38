//! Vectorisable f32 transcendentals: `exp`, `expm1`, `tanh`, `sigmoid`, `erf`.
//!
//! libm's scalar `expf`/`tanhf` are calls the compiler cannot vectorise, and they dominated
//! elementwise-heavy steps. These are branch-free (both sides computed, then selected) with plain
//! arithmetic and bit casts, so a loop over a slice compiles to SIMD; the slice functions
//! ([`map_f32`]) are compiled once per instruction set and chosen with [`crate::Isa`].
//! Results are bit-identical on every path (Rust never contracts `a*b+c` into an FMA by itself).
//!
//! Accuracy, the worst case measured against f64 in `tests/vmath.rs` (which asserts the bounds in
//! brackets): `exp` 1.16 ulp over its whole range (≤ 2), `expm1` 1.49 (≤ 3), `tanh` 2.11 (≤ 3),
//! `sigmoid` 2.09 (≤ 3), `erf` (≤ 3, see the test's printout). libm's scalar versions are within
//! 1 ulp.

use crate::isa::Isa;

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in a high part with trailing zero bits (so `n·LN2_HI` is exact) and the rest.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// 1.5·2^23: adding and subtracting it rounds an f32 of magnitude < 2^22 to the nearest integer.
const ROUNDER: f32 = 12_582_912.0;
/// Above this `exp` overflows to infinity.
const EXP_MAX: f32 = 88.722_84;
/// Below this `exp` underflows to zero.
const EXP_MIN: f32 = -103.972_08;

/// e^r for |r| ≤ ln2/2: Taylor to degree 7 (truncation 5.6e-9 relative), Horner form.
#[inline(always)]
fn exp_reduced(r: f32) -> f32 {
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    p * r + 1.0
}

/// e^x.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, EXP_MAX);
    let t = xc * LOG2_E + ROUNDER;
    let n = t - ROUNDER;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    scale_exp(x, t, exp_reduced(r))
}

/// `p · 2^n` with n read from `t` (= 1.5·2^23 + n, the rounding step of the range reduction),
/// then the out-of-range and NaN inputs: the common end of [`exp`] and [`exp_fma`].
#[inline(always)]
fn scale_exp(x: f32, t: f32, p: f32) -> f32 {
    // n as an integer, read from t's low mantissa bits (t = 1.5·2^23 + n exactly). A float-to-int
    // cast would saturate, which the compiler does one lane at a time.
    let ni = t.to_bits() as i32 - ROUNDER.to_bits() as i32;
    // 2^n in two halves so that n down to -150 (subnormal results) stays representable.
    let (h1, h2) = (ni >> 1, ni - (ni >> 1));
    let s1 = f32::from_bits(((h1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((h2 + 127) as u32) << 23);
    let y = p * s1 * s2;
    let y = if x > EXP_MAX { f32::INFINITY } else { y };
    let y = if x < EXP_MIN { 0.0 } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// e^x as [`exp`] computes it, with fused multiply-adds in the range reduction and the
/// polynomial: about a third fewer vector operations where the instruction set has FMA. For code
/// compiled with FMA enabled (the AVX2 and AVX-512 wrappers: [`map_f32`], the row kernels); in
/// other code each `mul_add` is a library call. Accurate to the same bound as [`exp`]; results may
/// differ from it in the last bit.
#[inline(always)]
pub fn exp_fma(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, EXP_MAX);
    let t = xc.mul_add(LOG2_E, ROUNDER);
    let n = t - ROUNDER;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let p = (1.0f32 / 5040.0).mul_add(r, 1.0 / 720.0);
    let p = p.mul_add(r, 1.0 / 120.0);
    let p = p.mul_add(r, 1.0 / 24.0);
    let p = p.mul_add(r, 1.0 / 6.0);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r, 1.0);
    scale_exp(x, t, p.mul_add(r, 1.0))
}

/// e^x − 1, accurate near 0 (no cancellation).
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    // |x| ≤ 1.1: the series without its constant term, degree 11 (truncation ≤ 6e-9 relative).
    // Beyond ln 3 ≈ 1.0986, e^x and e^x − 1 share a binade, so `exp(x) − 1` loses nothing.
    let p = 1.0 / 39_916_800.0;
    let p = p * x + 1.0 / 3_628_800.0;
    let p = p * x + 1.0 / 362_880.0;
    let p = p * x + 1.0 / 40_320.0;
    let p = p * x + 1.0 / 5_040.0;
    let p = p * x + 1.0 / 720.0;
    let p = p * x + 1.0 / 120.0;
    let p = p * x + 1.0 / 24.0;
    let p = p * x + 1.0 / 6.0;
    let p = p * x + 0.5;
    let small = (p * x) * x + x;
    let large = exp(x) - 1.0;
    if x.abs() <= 1.1 {
        small
    } else {
        large
    }
}

/// tanh x = expm1(2x) / (expm1(2x) + 2), odd-symmetric, saturating at |x| ≥ 9 (tanh 9 rounds to 1).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs().min(9.0);
    let e = expm1(2.0 * a);
    let t = e / (e + 2.0);
    let t = if x.is_nan() { x } else { t };
    t.copysign(x)
}

/// 1 / (1 + e^−x), computed from the side where e^−|x| ≤ 1 so it never overflows.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let pos = 1.0 / (1.0 + e);
    let neg = e / (1.0 + e);
    if x >= 0.0 {
        pos
    } else {
        neg
    }
}

/// erf(x)/x ≈ P(x²) on |x| < 1: least-squares fit (relative error 1.4e-9 in f64) made for this
/// module with numpy against Python's `math.erf`, coefficients rounded to f32.
const ERF_SMALL: [f32; 7] = [
    std::f32::consts::FRAC_2_SQRT_PI,
    -0.376_126_3,
    0.112_836_12,
    -0.026_854_81,
    0.005_190_053_5,
    -0.000_802_435_4,
    7.898_21e-5,
];
/// erfc(x)·e^(x²) ≈ Q(x − 2.5) on 1 ≤ x ≤ 4, fitted the same way (relative error 6e-9).
const ERFC_LARGE: [f32; 13] = [
    0.210_806_37,
    -0.074_347_34,
    0.024_938_008,
    -0.008_001_68,
    0.002_466_997_6,
    -0.000_733_188_5,
    0.000_211_051_14,
    -5.948_642_5e-5,
    1.599_714_6e-5,
    -3.763_825_8e-6,
    1.023_505_7e-6,
    -4.237_686e-7,
    9.592_293e-8,
];

/// Horner evaluation of `c[0] + c[1]·t + …`.
#[inline(always)]
fn horner(c: &[f32], t: f32) -> f32 {
    c.iter().rev().fold(0.0, |p, &a| p * t + a)
}

/// The error function: `x·P(x²)` below 1 in magnitude, `1 − e^(−x²)·Q(|x| − 2.5)` up to 4 (beyond
/// which erf rounds to ±1), odd-symmetric.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs().min(4.0);
    let small = a * horner(&ERF_SMALL, a * a);
    let large = 1.0 - exp(-(a * a)) * horner(&ERFC_LARGE, a - 2.5);
    let y = if a < 1.0 { small } else { large };
    let y = if x.is_nan() { x } else { y };
    y.copysign(x)
}

/// `v[i] = f(v[i])`, inlined into each instruction-set wrapper below.
#[inline(always)]
fn map_inplace(v: &mut [f32], f: impl Fn(f32) -> f32) {
    v.iter_mut().for_each(|x| *x = f(*x));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn map_avx512(v: &mut [f32], f: impl Fn(f32) -> f32) {
    map_inplace(v, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn map_avx2(v: &mut [f32], f: impl Fn(f32) -> f32) {
    map_inplace(v, f)
}

/// `v[i] = f(v[i])` for every element, compiled for the widest vectors `isa` allows. `f` should be
/// built from this module's `#[inline(always)]` functions so that it vectorises.
///
/// # Panics
/// If this CPU cannot run `isa`.
pub fn map_f32_isa(isa: Isa, v: &mut [f32], f: impl Fn(f32) -> f32) {
    assert!(
        isa.is_available(),
        "vmath: this CPU cannot run the {} path",
        isa.name()
    );
    match isa {
        // SAFETY: AVX-512F availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { map_avx512(v, f) },
        // SAFETY: AVX2 and FMA availability was asserted above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { map_avx2(v, f) },
        _ => map_inplace(v, f),
    }
}

/// [`map_f32_isa`] on the selected path.
pub fn map_f32(v: &mut [f32], f: impl Fn(f32) -> f32) {
    map_f32_isa(Isa::selected(), v, f)
}
