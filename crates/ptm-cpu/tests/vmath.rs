//! The vectorisable f32 math against f64 references: error in ulps of the correctly rounded
//! result over dense sweeps and awkward points, special values, and bit-identical results on every
//! instruction-set path.

use ptm_cpu::vmath::{erf, exp, exp_fma, expm1, map_f32_isa, sigmoid, tanh};
use ptm_cpu::Isa;

/// |y − reference| in units of the f32 spacing at the reference.
fn ulps(y: f32, reference: f64) -> f64 {
    let r = (reference as f32).abs();
    let spacing = if r == 0.0 {
        f32::from_bits(1) as f64
    } else {
        (f32::from_bits(r.to_bits() + 1) - r) as f64
    };
    (y as f64 - reference).abs() / spacing
}

/// A named f32 function under test.
type Named = (&'static str, fn(f32) -> f32);

fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f32 / n as f32)
        .collect()
}

/// Magnitudes from 1e-30 to 1 on a log scale, both signs: where cancellation would show.
fn tiny() -> Vec<f32> {
    (0..=600)
        .flat_map(|i| {
            let v = 10f32.powf(-30.0 + 30.0 * i as f32 / 600.0);
            [v, -v]
        })
        .collect()
}

fn worst(xs: &[f32], f: fn(f32) -> f32, reference: fn(f64) -> f64) -> (f64, f32) {
    xs.iter()
        .map(|&x| (ulps(f(x), reference(x as f64)), x))
        .fold((0.0, 0.0), |m, v| if v.0 > m.0 { v } else { m })
}

#[test]
fn exp_is_within_2_ulp_on_its_whole_range() {
    let mut xs = sweep(-103.9, 88.7, 400_000);
    xs.extend(tiny());
    let (e, at) = worst(&xs, exp, f64::exp);
    println!("exp: worst {e:.2} ulp at {at}");
    assert!(e <= 2.0, "exp: {e} ulp at {at}");
    assert_eq!(exp(0.0), 1.0);
    assert_eq!(exp(89.0), f32::INFINITY);
    assert_eq!(exp(f32::INFINITY), f32::INFINITY);
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp(-105.0), 0.0);
    assert!(exp(f32::NAN).is_nan());
    assert!(exp(-100.0) > 0.0, "subnormal results are kept");
}

/// The FMA form, on every path (the scalar path's `mul_add` is libm's correctly rounded fmaf).
#[test]
fn exp_fma_is_within_2_ulp_on_its_whole_range_on_every_path() {
    let mut xs = sweep(-103.9, 88.7, 400_000);
    xs.extend(tiny());
    for isa in Isa::available() {
        let mut got = xs.clone();
        map_f32_isa(isa, &mut got, exp_fma);
        let (e, at) = got
            .iter()
            .zip(&xs)
            .map(|(&y, &x)| (ulps(y, (x as f64).exp()), x))
            .fold((0.0, 0.0), |m, v| if v.0 > m.0 { v } else { m });
        println!("exp_fma on {isa:?}: worst {e:.2} ulp at {at}");
        assert!(e <= 2.0, "exp_fma on {isa:?}: {e} ulp at {at}");
    }
    for (x, want) in [
        (0.0, 1.0),
        (89.0, f32::INFINITY),
        (f32::INFINITY, f32::INFINITY),
        (f32::NEG_INFINITY, 0.0),
        (-105.0, 0.0),
    ] {
        assert_eq!(exp_fma(x), want, "exp_fma({x})");
    }
    assert!(exp_fma(f32::NAN).is_nan());
    assert!(exp_fma(-100.0) > 0.0, "subnormal results are kept");
}

#[test]
fn expm1_is_within_3_ulp_including_near_zero() {
    let mut xs = sweep(-20.0, 20.0, 200_000);
    xs.extend(tiny());
    let (e, at) = worst(&xs, expm1, f64::exp_m1);
    println!("expm1: worst {e:.2} ulp at {at}");
    assert!(e <= 3.0, "expm1: {e} ulp at {at}");
}

#[test]
fn tanh_is_within_3_ulp_and_odd() {
    let mut xs = sweep(-12.0, 12.0, 200_000);
    xs.extend(tiny());
    let (e, at) = worst(&xs, tanh, f64::tanh);
    println!("tanh: worst {e:.2} ulp at {at}");
    assert!(e <= 3.0, "tanh: {e} ulp at {at}");
    assert_eq!(tanh(f32::INFINITY), 1.0);
    assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
    assert!(tanh(-0.0).is_sign_negative());
    assert!(tanh(f32::NAN).is_nan());
    for &x in &sweep(-5.0, 5.0, 1000) {
        assert_eq!(tanh(-x), -tanh(x));
    }
}

#[test]
fn sigmoid_is_within_3_ulp_and_never_overflows() {
    let xs = sweep(-100.0, 100.0, 200_000);
    let (e, at) = worst(&xs, sigmoid, |x| 1.0 / (1.0 + (-x).exp()));
    println!("sigmoid: worst {e:.2} ulp at {at}");
    assert!(e <= 3.0, "sigmoid: {e} ulp at {at}");
    assert_eq!(sigmoid(f32::INFINITY), 1.0);
    assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
}

#[test]
fn erf_is_within_3_ulp_odd_and_saturating() {
    let mut xs = sweep(-6.0, 6.0, 400_000);
    xs.extend(tiny());
    // Both sides of the switch between the two approximations at |x| = 1.
    xs.extend([0.999_999_94, 1.0, 1.000_000_1, -0.999_999_94, -1.0]);
    let (e, at) = worst(&xs, erf, libm::erf);
    println!("erf: worst {e:.2} ulp at {at}");
    assert!(e <= 3.0, "erf: {e} ulp at {at}");
    assert_eq!(erf(0.0), 0.0);
    assert!(erf(-0.0).is_sign_negative());
    assert_eq!(erf(f32::INFINITY), 1.0);
    assert_eq!(erf(-10.0), -1.0);
    assert!(erf(f32::NAN).is_nan());
    for &x in &sweep(-5.0, 5.0, 1000) {
        assert_eq!(erf(-x), -erf(x));
    }
}

#[test]
fn every_path_gives_bit_identical_results() {
    let xs: Vec<f32> = sweep(-110.0, 95.0, 10_007)
        .into_iter()
        .chain(tiny())
        .chain([f32::NAN, f32::INFINITY, -0.0])
        .collect();
    let fns: [Named; 6] = [
        ("erf", erf),
        ("exp", exp),
        ("exp_fma", exp_fma),
        ("expm1", expm1),
        ("tanh", tanh),
        ("sigmoid", sigmoid),
    ];
    for (name, f) in fns {
        let want: Vec<u32> = xs.iter().map(|&x| f(x).to_bits()).collect();
        for isa in Isa::available() {
            let mut v = xs.clone();
            map_f32_isa(isa, &mut v, f);
            let got: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
            assert!(
                got == want,
                "{name} on {isa:?} differs from the scalar result"
            );
        }
    }
}
