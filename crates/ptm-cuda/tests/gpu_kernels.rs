//! Every kernel against an independent CPU reference on fresh random inputs with odd shapes.
//! Outputs are poisoned (all bytes 0xFF: NaN) before each run, so an element a kernel forgot to
//! write shows as a mismatch.
//!
//! With no GPU (or no driver, or no NVRTC) each test prints why and passes, unless
//! `PTM_REQUIRE_GPU=1` (the gpu-check bundle sets it), which turns the skip into a failure.
//!
//! References: f64 loops written here or ptm-cpu's f64 kernels (tested against their own f64
//! references in ptm-cpu). Tolerances per element: f64 1e-12 relative + 1e-14 absolute, f32 2e-6
//! relative + 1e-6 absolute (CUDA's f32 transcendentals are within 2 ulp), f16 / bf16 one unit in
//! the last place of the output (2⁻⁹ / 2⁻⁶ relative: the kernel's and the reference's roundings may
//! fall on either side of a boundary); row kernels allow 4× that for their sums.

use half::{bf16, f16};
use ptm_cuda::memory::Layout;
use ptm_cuda::ops::elementwise::{self as ew, Binary, Unary};
use ptm_cuda::ops::{conv, embedding, optim, rows, FloatType};
use ptm_cuda::{Buffer, Device};

fn device() -> Option<Device> {
    match Device::new(0) {
        Ok(d) => {
            eprintln!("GPU: {d:?}");
            Some(d)
        }
        Err(e) => {
            if std::env::var("PTM_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("PTM_REQUIRE_GPU=1 but {e}");
            }
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// Deterministic uniform values in [lo, hi) (a 64-bit LCG; each test uses its own seed).
fn data(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// A float type under test: conversions and its tolerance.
trait Elem: FloatType {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// (relative, absolute) tolerance for one computed element.
    const TOL: (f64, f64);
}
impl Elem for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    const TOL: (f64, f64) = (1e-12, 1e-14);
}
impl Elem for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    const TOL: (f64, f64) = (2e-6, 1e-6);
}
impl Elem for f16 {
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    const TOL: (f64, f64) = (2.0 / 1024.0, 1e-4);
}
impl Elem for bf16 {
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    const TOL: (f64, f64) = (2.0 / 128.0, 1e-3);
}

/// Values as stored in `T` (so references see the inputs the kernel sees).
fn rounded<T: Elem>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}
fn widened<T: Elem>(v: &[T]) -> Vec<f64> {
    v.iter().map(|&x| x.to_f64()).collect()
}

/// Fails with the first elements outside `|got − want| ≤ rel·|want| + abs` (NaN must match NaN).
fn assert_close(what: &str, got: &[f64], want: &[f64], (rel, abs): (f64, f64)) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (&g, &w))| {
            if w.is_nan() || g.is_nan() {
                !(w.is_nan() && g.is_nan())
            } else if w.is_infinite() {
                g != w
            } else {
                (g - w).abs() > rel * w.abs() + abs
            }
        })
        .take(5)
        .map(|(i, (g, w))| format!("[{i}] got {g} want {w}"))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} mismatches, first: {}",
        bad.len(),
        bad.join(", ")
    );
}

fn upload<T: Elem>(dev: &Device, v: &[f64]) -> Buffer<T> {
    dev.upload(&rounded::<T>(v)).expect("upload")
}
fn download<T: Elem>(b: &Buffer<T>) -> Vec<f64> {
    widened(&b.to_vec().expect("download"))
}

const ODD: &[usize] = &[1, 3, 17, 63, 65, 257, 1000];

fn unary_ref(op: Unary, p: f64, x: f64) -> f64 {
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    match op {
        Unary::Neg => -x,
        Unary::Abs => x.abs(),
        Unary::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Sqrt => x.sqrt(),
        Unary::Rsqrt => 1.0 / x.sqrt(),
        Unary::PowF => x.powf(p),
        Unary::Tanh => x.tanh(),
        Unary::Sigmoid => sig(x),
        Unary::Relu => x.max(0.0),
        Unary::GeluTanh => {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        }
        Unary::GeluErf => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        Unary::Silu => x * sig(x),
        Unary::AddScalar => x + p,
        Unary::MulScalar => x * p,
    }
}

const UNARY: &[Unary] = &[
    Unary::Neg,
    Unary::Abs,
    Unary::Sign,
    Unary::Exp,
    Unary::Log,
    Unary::Sqrt,
    Unary::Rsqrt,
    Unary::PowF,
    Unary::Tanh,
    Unary::Sigmoid,
    Unary::Relu,
    Unary::GeluTanh,
    Unary::GeluErf,
    Unary::Silu,
    Unary::AddScalar,
    Unary::MulScalar,
];

/// Inputs in the op's domain.
fn domain(op: Unary) -> (f64, f64) {
    match op {
        Unary::Log | Unary::Sqrt | Unary::Rsqrt | Unary::PowF => (0.1, 4.0),
        Unary::Exp => (-20.0, 20.0),
        _ => (-6.0, 6.0),
    }
}

fn check_unary<T: Elem>(dev: &Device) {
    for (k, &op) in UNARY.iter().enumerate() {
        let (lo, hi) = domain(op);
        let p = 1.7;
        // A [r, c] view read transposed from a [c, r] buffer, r·c elements.
        for &(r, c) in &[(1usize, 1usize), (3, 17), (65, 63), (257, 4)] {
            let x = data(r * c, 100 + k as u64, lo, hi);
            let xb = upload::<T>(dev, &x);
            let xs = widened(&rounded::<T>(&x));
            let lx = Layout::strided(&[r, c], &[1, r as isize], 0).unwrap();
            let mut y = dev.poisoned::<T>(r * c).unwrap();
            ew::unary(op, p, &xb, &lx, &mut y).unwrap();
            let want: Vec<f64> = (0..r * c)
                .map(|i| unary_ref(op, p, xs[(i % c) * r + i / c]))
                .collect();
            let want: Vec<f64> = want.iter().map(|&w| T::from_f64(w).to_f64()).collect();
            // Exp over [-20, 20] has a large dynamic range: an f32 ulp-level relative bound.
            assert_close(
                &format!("unary {op:?} {} [{r},{c}] transposed", T::NAME),
                &download(&y),
                &want,
                T::TOL,
            );
        }
    }
}

#[test]
fn unary_ops_match_f64_references_on_strided_inputs() {
    let Some(dev) = device() else { return };
    check_unary::<f64>(&dev);
    check_unary::<f32>(&dev);
    check_unary::<f16>(&dev);
    check_unary::<bf16>(&dev);
}

#[test]
fn unary_backward_matches_central_differences_in_f64() {
    let Some(dev) = device() else { return };
    let h = 1e-5;
    for (k, &op) in UNARY.iter().enumerate() {
        if matches!(op, Unary::Sign | Unary::Abs | Unary::Relu) {
            continue; // kinks: checked below at points away from 0
        }
        let (lo, hi) = domain(op);
        let n = 257;
        let x = data(n, 200 + k as u64, lo, hi);
        let dy = data(n, 300 + k as u64, -1.0, 1.0);
        let (xb, dyb) = (upload::<f64>(&dev, &x), upload::<f64>(&dev, &dy));
        let mut dx = dev.poisoned::<f64>(n).unwrap();
        ew::unary_bwd(op, 1.7, &xb, &dyb, &mut dx, false).unwrap();
        let want: Vec<f64> = (0..n)
            .map(|i| {
                dy[i] * (unary_ref(op, 1.7, x[i] + h) - unary_ref(op, 1.7, x[i] - h)) / (2.0 * h)
            })
            .collect();
        assert_close(
            &format!("unary_bwd {op:?} f64"),
            &download(&dx),
            &want,
            (1e-7, 1e-8),
        );
    }
    // Kinked ops away from their kink, and accumulation into dx.
    let x: Vec<f64> = data(65, 7, -3.0, 3.0)
        .into_iter()
        .map(|v| if v.abs() < 0.1 { 0.5 } else { v })
        .collect();
    let dy = data(65, 8, -1.0, 1.0);
    let prior = data(65, 9, -1.0, 1.0);
    for op in [Unary::Abs, Unary::Relu, Unary::Sign] {
        let (xb, dyb) = (upload::<f64>(&dev, &x), upload::<f64>(&dev, &dy));
        let mut dx = upload::<f64>(&dev, &prior);
        ew::unary_bwd(op, 0.0, &xb, &dyb, &mut dx, true).unwrap();
        let want: Vec<f64> = (0..65)
            .map(|i| {
                prior[i]
                    + dy[i] * (unary_ref(op, 0.0, x[i] + 1e-6) - unary_ref(op, 0.0, x[i] - 1e-6))
                        / 2e-6
            })
            .collect();
        assert_close(
            &format!("unary_bwd {op:?} accumulate"),
            &download(&dx),
            &want,
            (1e-8, 1e-9),
        );
    }
}

fn check_binary<T: Elem>(dev: &Device) {
    // a: [5, 1, 7] broadcast over dim 1; b: [1, 3, 7] broadcast over dim 0; out [5, 3, 7].
    let (a, b) = (data(35, 11, -3.0, 3.0), data(21, 12, 0.5, 3.0));
    let (ab, bb) = (upload::<T>(dev, &a), upload::<T>(dev, &b));
    let (a_s, b_s) = (widened(&rounded::<T>(&a)), widened(&rounded::<T>(&b)));
    let la = Layout::strided(&[5, 3, 7], &[7, 0, 1], 0).unwrap();
    let lb = Layout::strided(&[5, 3, 7], &[0, 7, 1], 0).unwrap();
    for op in [
        Binary::Add,
        Binary::Sub,
        Binary::Mul,
        Binary::Div,
        Binary::Maximum,
        Binary::Minimum,
    ] {
        let mut y = dev.poisoned::<T>(105).unwrap();
        ew::binary(op, &ab, &la, &bb, &lb, &mut y).unwrap();
        let want: Vec<f64> = (0..105)
            .map(|i| {
                let (i0, i2) = (i / 21, i % 7);
                let i1 = (i / 7) % 3;
                let (x, z) = (a_s[i0 * 7 + i2], b_s[i1 * 7 + i2]);
                let v = match op {
                    Binary::Add => x + z,
                    Binary::Sub => x - z,
                    Binary::Mul => x * z,
                    Binary::Div => x / z,
                    Binary::Maximum => x.max(z),
                    Binary::Minimum => x.min(z),
                };
                T::from_f64(v).to_f64()
            })
            .collect();
        assert_close(
            &format!("binary {op:?} {} broadcast", T::NAME),
            &download(&y),
            &want,
            T::TOL,
        );
    }
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let Some(dev) = device() else { return };
    check_binary::<f64>(&dev);
    check_binary::<f32>(&dev);
    check_binary::<f16>(&dev);
    check_binary::<bf16>(&dev);
    // NaN propagates through maximum and minimum.
    let a = dev.upload(&[f32::NAN, 1.0]).unwrap();
    let b = dev.upload(&[0.0f32, f32::NAN]).unwrap();
    let l = Layout::contiguous(&[2]).unwrap();
    for op in [Binary::Maximum, Binary::Minimum] {
        let mut y = dev.zeros::<f32>(2).unwrap();
        ew::binary(op, &a, &l, &b, &l, &mut y).unwrap();
        assert!(
            y.to_vec().unwrap().iter().all(|v| v.is_nan()),
            "{op:?} drops a NaN"
        );
    }
}

#[test]
fn copy_cast_fill_and_where() {
    let Some(dev) = device() else { return };
    // A narrowed, transposed view with an offset: rows 1..4 of a [6, 5] buffer, transposed.
    let x = data(30, 21, -2.0, 2.0);
    let xb = upload::<f32>(&dev, &x);
    let lx = Layout::strided(&[5, 3], &[1, 5], 5).unwrap();
    let mut y = dev.poisoned::<f32>(15).unwrap();
    ew::copy(&xb, &lx, &mut y).unwrap();
    let want: Vec<f64> = (0..15)
        .map(|i| x[5 + (i % 3) * 5 + i / 3] as f32 as f64)
        .collect();
    assert_close("copy transposed narrow", &download(&y), &want, (0.0, 0.0));

    // Casts: exactly the half crate's round-to-nearest-even.
    let v: Vec<f64> = data(1000, 22, -70000.0, 70000.0)
        .into_iter()
        .chain([0.0, -0.0, 1e-8, 65504.0, 65520.0, f64::INFINITY, f64::NAN])
        .collect();
    let src32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let b32 = dev.upload(&src32).unwrap();
    let mut h = dev.poisoned::<f16>(v.len()).unwrap();
    ew::cast(&b32, &mut h).unwrap();
    let want: Vec<f64> = src32.iter().map(|&x| f16::from_f32(x).to_f64()).collect();
    assert_close("cast f32→f16", &download(&h), &want, (0.0, 0.0));
    let mut bf = dev.poisoned::<bf16>(v.len()).unwrap();
    ew::cast(&b32, &mut bf).unwrap();
    let want: Vec<f64> = src32.iter().map(|&x| bf16::from_f32(x).to_f64()).collect();
    assert_close("cast f32→bf16", &download(&bf), &want, (0.0, 0.0));
    let mut back = dev.poisoned::<f64>(v.len()).unwrap();
    ew::cast(&bf, &mut back).unwrap();
    assert_close("cast bf16→f64", &download(&back), &want, (0.0, 0.0));

    let mut f = dev.poisoned::<bf16>(1001).unwrap();
    ew::fill(&mut f, 0.3).unwrap();
    assert!(f
        .to_vec()
        .unwrap()
        .iter()
        .all(|&e| e == bf16::from_f64(0.3)));

    // where: condition broadcast along rows.
    let c: Vec<u8> = (0..7).map(|i| (i % 3 == 0) as u8).collect();
    let cb = dev.upload(&c).unwrap();
    let (a, b) = (data(35, 23, -1.0, 1.0), data(35, 24, -1.0, 1.0));
    let (ab, bb) = (upload::<f64>(&dev, &a), upload::<f64>(&dev, &b));
    let lc = Layout::strided(&[5, 7], &[0, 1], 0).unwrap();
    let l = Layout::contiguous(&[5, 7]).unwrap();
    let mut y = dev.poisoned::<f64>(35).unwrap();
    ew::where_cond(&cb, &lc, &ab, &l, &bb, &l, &mut y).unwrap();
    let want: Vec<f64> = (0..35)
        .map(|i| if c[i % 7] != 0 { a[i] } else { b[i] })
        .collect();
    assert_close("where", &download(&y), &want, (0.0, 0.0));
}

fn softmax_ref(x: &[f64], n: usize, log: bool) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    if log {
        ptm_cpu::softmax::log_softmax_fwd(x, &mut y, n);
    } else {
        ptm_cpu::softmax::softmax_fwd(x, &mut y, n);
    }
    y
}

fn check_softmax<T: Elem>(dev: &Device) {
    for &n in &[1usize, 3, 17, 1000, 50257] {
        for &r in &[1usize, 7] {
            let mut x = data(r * n, (n * 31 + r) as u64, -8.0, 8.0);
            if n > 3 {
                x[1] = f64::NEG_INFINITY; // a masked entry
                x[2] = 900.0; // a large logit
            }
            let xs = widened(&rounded::<T>(&x));
            let xb = upload::<T>(dev, &x);
            for log in [false, true] {
                let mut y = dev.poisoned::<T>(r * n).unwrap();
                rows::softmax_fwd(&xb, &mut y, n, log).unwrap();
                let want = softmax_ref(&xs, n, log);
                let want: Vec<f64> = want.iter().map(|&w| T::from_f64(w).to_f64()).collect();
                // log-softmax of a -inf entry is -inf; of the rest, absolute error scales with
                // the row's log-sum-exp.
                let tol = if log {
                    (T::TOL.0, T::TOL.0 * 1000.0)
                } else {
                    T::TOL
                };
                assert_close(
                    &format!("softmax log={log} {} [{r},{n}]", T::NAME),
                    &download(&y),
                    &want,
                    tol,
                );

                // Backward from the kernel's own output, against ptm-cpu's on the same y.
                let yv = download(&y);
                let dy = data(r * n, 77, -1.0, 1.0);
                let dys = widened(&rounded::<T>(&dy));
                let mut dx = dev.poisoned::<T>(r * n).unwrap();
                rows::softmax_bwd(&y, &upload::<T>(dev, &dy), &mut dx, n, log, false).unwrap();
                let mut want = vec![0.0; r * n];
                if log {
                    ptm_cpu::softmax::log_softmax_bwd(&yv, &dys, &mut want, n);
                } else {
                    ptm_cpu::softmax::softmax_bwd(&yv, &dys, &mut want, n);
                }
                let want: Vec<f64> = want.iter().map(|&w| T::from_f64(w).to_f64()).collect();
                let tol = (T::TOL.0 * 4.0, T::TOL.1 * 4.0);
                assert_close(
                    &format!("softmax_bwd log={log} {} [{r},{n}]", T::NAME),
                    &download(&dx),
                    &want,
                    tol,
                );
            }
        }
    }
}

#[test]
fn softmax_and_log_softmax_match_ptm_cpu() {
    let Some(dev) = device() else { return };
    check_softmax::<f64>(&dev);
    check_softmax::<f32>(&dev);
    check_softmax::<bf16>(&dev);
}

fn check_layer_norm<T: Elem>(dev: &Device) {
    for &n in &[1usize, 17, 768, 1000] {
        for &r in &[1usize, 5, 300] {
            let x = data(r * n, (n + r) as u64, -3.0, 5.0);
            let (w, b) = (data(n, 1, 0.5, 1.5), data(n, 2, -0.5, 0.5));
            let dy = data(r * n, 3, -1.0, 1.0);
            let (xs, ws, bs, dys) = (
                widened(&rounded::<T>(&x)),
                widened(&rounded::<T>(&w)),
                widened(&rounded::<T>(&b)),
                widened(&rounded::<T>(&dy)),
            );
            let (xb, wb, bb, dyb) = (
                upload::<T>(dev, &x),
                upload::<T>(dev, &w),
                upload::<T>(dev, &b),
                upload::<T>(dev, &dy),
            );
            let mut y = dev.poisoned::<T>(r * n).unwrap();
            let stats = rows::layer_norm_fwd(&xb, Some(&wb), Some(&bb), 1e-5, n, &mut y).unwrap();
            let mut want = vec![0.0; r * n];
            ptm_cpu::layer_norm::layer_norm_fwd(&xs, Some(&ws), Some(&bs), 1e-5, n, &mut want);
            let want: Vec<f64> = want.iter().map(|&v| T::from_f64(v).to_f64()).collect();
            let tol = (T::TOL.0 * 4.0, T::TOL.1 * 4.0);
            assert_close(
                &format!("layer_norm_fwd {} [{r},{n}]", T::NAME),
                &download(&y),
                &want,
                tol,
            );

            let mut dx = dev.poisoned::<T>(r * n).unwrap();
            let (mut dw, mut db) = (dev.poisoned::<T>(n).unwrap(), dev.poisoned::<T>(n).unwrap());
            rows::layer_norm_bwd(
                &xb,
                Some(&wb),
                &stats,
                &dyb,
                n,
                &mut dx,
                Some(&mut dw),
                Some(&mut db),
                false,
            )
            .unwrap();
            let (mut wdx, mut wdw, mut wdb) = (vec![0.0; r * n], vec![0.0; n], vec![0.0; n]);
            ptm_cpu::layer_norm::layer_norm_bwd(
                &xs,
                Some(&ws),
                1e-5,
                n,
                &dys,
                &mut wdx,
                Some(&mut wdw),
                Some(&mut wdb),
            );
            let wdx: Vec<f64> = wdx.iter().map(|&v| T::from_f64(v).to_f64()).collect();
            assert_close(
                &format!("layer_norm_bwd dx {} [{r},{n}]", T::NAME),
                &download(&dx),
                &wdx,
                tol,
            );
            // Sums over up to 300 rows: an absolute tolerance scaled by the row count.
            let sum_tol = (tol.0, tol.1 * r as f64);
            assert_close(
                &format!("layer_norm_bwd dw {} [{r},{n}]", T::NAME),
                &download(&dw),
                &wdw,
                sum_tol,
            );
            assert_close(
                &format!("layer_norm_bwd db {} [{r},{n}]", T::NAME),
                &download(&db),
                &wdb,
                sum_tol,
            );
        }
    }
}

#[test]
fn layer_norm_forward_and_backward_match_ptm_cpu() {
    let Some(dev) = device() else { return };
    check_layer_norm::<f64>(&dev);
    check_layer_norm::<f32>(&dev);
    check_layer_norm::<bf16>(&dev);
}

#[test]
fn cross_entropy_matches_ptm_cpu_with_ignored_rows() {
    let Some(dev) = device() else { return };
    for &c in &[3usize, 1000, 50257] {
        let r = 9;
        let x = data(r * c, c as u64, -6.0, 6.0);
        let t: Vec<i64> = (0..r as i64)
            .map(|i| {
                if i % 4 == 1 {
                    -100
                } else {
                    (i * 7919) % c as i64
                }
            })
            .collect();
        let xb = upload::<f32>(&dev, &x);
        let tb = dev.upload(&t).unwrap();
        let ce = rows::cross_entropy_fwd(&xb, &tb, &t, c, -100).unwrap();
        let xs = widened(&rounded::<f32>(&x));
        let (total, count) = ptm_cpu::cross_entropy::cross_entropy_fwd(&xs, &t, c, -100);
        let got: f64 = ce.loss.to_vec().unwrap().iter().map(|&v| v as f64).sum();
        assert!(
            (got - total).abs() <= 1e-5 * total.abs(),
            "CE sum {got} vs {total}"
        );
        let dloss = dev.upload(&[2.0f32]).unwrap();
        let mut g = dev.poisoned::<f32>(r * c).unwrap();
        rows::cross_entropy_bwd(
            &xb,
            &tb,
            c,
            -100,
            &ce,
            &dloss,
            1.0 / count as f64,
            &mut g,
            false,
        )
        .unwrap();
        let mut want = vec![0.0; r * c];
        ptm_cpu::cross_entropy::cross_entropy_bwd(&xs, &t, c, -100, 2.0 / count as f64, &mut want);
        // The f32 log-sum-exp carries ~1e-6 absolute error into every exp(x − lse).
        assert_close(
            &format!("cross_entropy_bwd c={c}"),
            &download(&g),
            &want,
            (1e-5, 1e-9),
        );
    }
    // A target outside the classes is an error naming it, not a wild read.
    let xb = upload::<f32>(&dev, &[0.0; 6]);
    let tb = dev.upload(&[0i64, 3]).unwrap();
    let err = rows::cross_entropy_fwd(&xb, &tb, &[0, 3], 3, -100)
        .err()
        .expect("target 3 of 3 classes");
    assert!(err.to_string().contains("target 3"), "{err}");
}

#[test]
fn reductions_over_rows() {
    let Some(dev) = device() else { return };
    for &n in ODD {
        let r = 5;
        let mut x = data(r * n, n as u64, -10.0, 10.0);
        x[n / 2] = 11.0; // row 0's maximum
        if n > 1 {
            x[n + n - 1] = 11.0; // row 1: the maximum at the end, then a tie earlier below
            x[n] = 11.0;
        }
        let xb = upload::<f32>(&dev, &x);
        let xs = widened(&rounded::<f32>(&x));
        for (op, f) in [
            (
                rows::Reduce::Sum,
                (|a: &[f64]| a.iter().sum::<f64>()) as fn(&[f64]) -> f64,
            ),
            (rows::Reduce::Max, |a: &[f64]| {
                a.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            }),
            (rows::Reduce::Min, |a: &[f64]| {
                a.iter().cloned().fold(f64::INFINITY, f64::min)
            }),
        ] {
            let mut y = dev.poisoned::<f32>(r).unwrap();
            rows::reduce_rows(op, &xb, n, &mut y).unwrap();
            let want: Vec<f64> = xs.chunks(n).map(f).collect();
            // f32 sums of up to 1000 values of ±10.
            assert_close(
                &format!("reduce {op:?} n={n}"),
                &download(&y),
                &want,
                (1e-5, 1e-4),
            );
        }
        let mut idx = dev.poisoned::<i64>(r).unwrap();
        rows::arg_rows(true, &xb, n, &mut idx).unwrap();
        let want: Vec<i64> = xs
            .chunks(n)
            .map(|row| {
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                row.iter().position(|&v| v == m).unwrap() as i64
            })
            .collect();
        assert_eq!(idx.to_vec().unwrap(), want, "argmax n={n}");
    }
}

#[test]
fn adamw_matches_ptm_cpu() {
    let Some(dev) = device() else { return };
    let n = 100_003;
    let h = optim::AdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let p: Vec<f32> = data(n, 1, -1.0, 1.0).iter().map(|&v| v as f32).collect();
    let g: Vec<f32> = data(n, 2, -1.0, 1.0).iter().map(|&v| v as f32).collect();
    let (mut pc, mut mc, mut vc) = (p.clone(), vec![0.0f32; n], vec![0.0f32; n]);
    let mut pb = dev.upload(&p).unwrap();
    let gb = dev.upload(&g).unwrap();
    let (mut mb, mut vb) = (dev.zeros::<f32>(n).unwrap(), dev.zeros::<f32>(n).unwrap());
    for step in 1..=3 {
        ptm_cpu::optim::adamw_step(&mut pc, &g, &mut mc, &mut vc, &h, step);
        optim::adamw_step(&mut pb, &gb, &mut mb, &mut vb, &h, step).unwrap();
    }
    let got: Vec<f64> = pb.to_vec().unwrap().iter().map(|&v| v as f64).collect();
    let want: Vec<f64> = pc.iter().map(|&v| v as f64).collect();
    // Same formula and factors; fused multiply-adds may round differently.
    assert_close("adamw p after 3 steps", &got, &want, (1e-6, 1e-7));
}

#[test]
fn embedding_lookup_and_scatter_add() {
    let Some(dev) = device() else { return };
    let (vocab, d) = (50, 17);
    let table = data(vocab * d, 5, -1.0, 1.0);
    let ids: Vec<i64> = vec![3, 0, 49, 3, 3, 17, 0];
    let tb = upload::<f32>(&dev, &table);
    let ib = dev.upload(&ids).unwrap();
    let mut y = dev.poisoned::<f32>(ids.len() * d).unwrap();
    embedding::embedding_fwd(&ib, &ids, &tb, d, &mut y).unwrap();
    let want: Vec<f64> = ids
        .iter()
        .flat_map(|&i| {
            table[i as usize * d..(i as usize + 1) * d]
                .iter()
                .map(|&v| v as f32 as f64)
        })
        .collect();
    assert_close("embedding_fwd", &download(&y), &want, (0.0, 0.0));

    let dy = data(ids.len() * d, 6, -1.0, 1.0);
    let dyb = upload::<f32>(&dev, &dy);
    let mut dt = dev.zeros::<f32>(vocab * d).unwrap();
    embedding::embedding_bwd(&ib, &ids, &dyb, d, &mut dt).unwrap();
    let mut want = vec![0.0f64; vocab * d];
    for (r, &i) in ids.iter().enumerate() {
        for j in 0..d {
            want[i as usize * d + j] += dy[r * d + j] as f32 as f64;
        }
    }
    assert_close("embedding_bwd", &download(&dt), &want, (1e-6, 1e-6));
    let err = embedding::embedding_fwd(&ib, &[3, 0, 50, 3, 3, 17, 0], &tb, d, &mut y)
        .expect_err("id 50 of 50");
    assert!(err.to_string().contains("id 50"), "{err}");
}

/// A reference integer operation.
type IntOp<T> = fn(T, T) -> T;

#[test]
fn integer_copies_casts_reductions_and_lookups() {
    let Some(dev) = device() else { return };
    // Casts involving an integer follow Rust's `as` through f64: truncation toward zero,
    // saturation, NaN to 0.
    let f: Vec<f32> = vec![
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -1.5,
        -0.7,
        2.7,
        3e9,
        5e9,
        -3e19,
        4294967295.0,
        1e19,
    ];
    let fb = dev.upload(&f).unwrap();
    let mut u = dev.poisoned::<u32>(f.len()).unwrap();
    ew::cast(&fb, &mut u).unwrap();
    let want: Vec<u32> = f.iter().map(|&x| x as f64 as u32).collect();
    assert_eq!(u.to_vec().unwrap(), want, "f32→u32");
    let mut l = dev.poisoned::<i64>(f.len()).unwrap();
    ew::cast(&fb, &mut l).unwrap();
    let want: Vec<i64> = f.iter().map(|&x| x as f64 as i64).collect();
    assert_eq!(l.to_vec().unwrap(), want, "f32→i64");

    let ints: Vec<i64> = vec![
        0,
        -1,
        7,
        1 << 40,
        -(1 << 53) - 1,
        i64::MAX,
        i64::MIN,
        4_294_967_296,
        2049,
    ];
    let ib = dev.upload(&ints).unwrap();
    let mut u = dev.poisoned::<u32>(ints.len()).unwrap();
    ew::cast(&ib, &mut u).unwrap();
    let want: Vec<u32> = ints.iter().map(|&x| x as f64 as u32).collect();
    assert_eq!(u.to_vec().unwrap(), want, "i64→u32");
    let mut h = dev.poisoned::<f16>(ints.len()).unwrap();
    ew::cast(&ib, &mut h).unwrap();
    let want: Vec<f16> = ints.iter().map(|&x| f16::from_f64(x as f64)).collect();
    assert_eq!(h.to_vec().unwrap(), want, "i64→f16");
    let mut s = dev.poisoned::<f32>(ints.len()).unwrap();
    ew::cast(&ib, &mut s).unwrap();
    let want: Vec<f32> = ints.iter().map(|&x| x as f64 as f32).collect();
    assert_eq!(s.to_vec().unwrap(), want, "i64→f32");
    let ub = dev.upload(&[0u32, 1, u32::MAX, 12345]).unwrap();
    let mut l = dev.poisoned::<i64>(4).unwrap();
    ew::cast(&ub, &mut l).unwrap();
    assert_eq!(
        l.to_vec().unwrap(),
        vec![0, 1, u32::MAX as i64, 12345],
        "u32→i64"
    );

    // A transposed copy of an i64 matrix.
    let m: Vec<i64> = (0..35).map(|i| i * 1_000_000_007 - 17).collect();
    let mb = dev.upload(&m).unwrap();
    let lt = Layout::strided(&[7, 5], &[1, 7], 0).unwrap();
    let mut t = dev.poisoned::<i64>(35).unwrap();
    ew::copy(&mb, &lt, &mut t).unwrap();
    let want: Vec<i64> = (0..35).map(|i| m[(i % 5) * 7 + i / 5]).collect();
    assert_eq!(t.to_vec().unwrap(), want, "i64 transposed copy");

    // Wrapping integer arithmetic with a broadcast operand, division toward zero.
    let a: Vec<i64> = vec![i64::MAX, i64::MIN, -7, 7, 1 << 62, -5];
    let b: Vec<i64> = vec![1, -1, 2];
    let (ab, bb) = (dev.upload(&a).unwrap(), dev.upload(&b).unwrap());
    let la = Layout::contiguous(&[2, 3]).unwrap();
    let lb = Layout::strided(&[2, 3], &[0, 1], 0).unwrap();
    let ops: [(Binary, IntOp<i64>); 6] = [
        (Binary::Add, i64::wrapping_add),
        (Binary::Sub, i64::wrapping_sub),
        (Binary::Mul, i64::wrapping_mul),
        (Binary::Div, i64::wrapping_div),
        (Binary::Maximum, |x, y| x.max(y)),
        (Binary::Minimum, |x, y| x.min(y)),
    ];
    for (op, f) in ops {
        let mut y = dev.poisoned::<i64>(6).unwrap();
        ew::binary(op, &ab, &la, &bb, &lb, &mut y).unwrap();
        let want: Vec<i64> = (0..6).map(|i| f(a[i], b[i % 3])).collect();
        assert_eq!(y.to_vec().unwrap(), want, "i64 {op:?}");
    }
    let (au, bu) = (vec![u32::MAX, 5, 0, 100], vec![2u32, 7, 1, u32::MAX]);
    let (aub, bub) = (dev.upload(&au).unwrap(), dev.upload(&bu).unwrap());
    let l4 = Layout::contiguous(&[4]).unwrap();
    let ops: [(Binary, IntOp<u32>); 4] = [
        (Binary::Add, u32::wrapping_add),
        (Binary::Sub, u32::wrapping_sub),
        (Binary::Mul, u32::wrapping_mul),
        (Binary::Div, u32::wrapping_div),
    ];
    for (op, f) in ops {
        let mut y = dev.poisoned::<u32>(4).unwrap();
        ew::binary(op, &aub, &l4, &bub, &l4, &mut y).unwrap();
        let want: Vec<u32> = (0..4).map(|i| f(au[i], bu[i])).collect();
        assert_eq!(y.to_vec().unwrap(), want, "u32 {op:?}");
    }

    // Row reductions of integers (exact; u32 sums wrap) and argmax with ties.
    for &n in ODD {
        let r = 4;
        let x: Vec<i64> = data(r * n, n as u64 + 7, -1e12, 1e12)
            .iter()
            .map(|&v| v as i64)
            .collect();
        let xb = dev.upload(&x).unwrap();
        for (op, f) in [
            (
                rows::Reduce::Sum,
                (|a: &[i64]| a.iter().sum::<i64>()) as fn(&[i64]) -> i64,
            ),
            (rows::Reduce::Max, |a: &[i64]| *a.iter().max().unwrap()),
            (rows::Reduce::Min, |a: &[i64]| *a.iter().min().unwrap()),
        ] {
            let mut y = dev.poisoned::<i64>(r).unwrap();
            rows::reduce_rows(op, &xb, n, &mut y).unwrap();
            let want: Vec<i64> = x.chunks(n).map(f).collect();
            assert_eq!(y.to_vec().unwrap(), want, "i64 {op:?} n={n}");
        }
        let xu: Vec<u32> = data(r * n, n as u64 + 8, 0.0, 4e9)
            .iter()
            .map(|&v| v as u32)
            .collect();
        let xub = dev.upload(&xu).unwrap();
        let mut y = dev.poisoned::<u32>(r).unwrap();
        rows::reduce_rows(rows::Reduce::Sum, &xub, n, &mut y).unwrap();
        let want: Vec<u32> = xu
            .chunks(n)
            .map(|a| a.iter().fold(0u32, |s, &v| s.wrapping_add(v)))
            .collect();
        assert_eq!(y.to_vec().unwrap(), want, "u32 wrapping sum n={n}");
        let mut ties: Vec<i64> = x.iter().map(|&v| v % 5).collect();
        ties[n - 1] = 9; // row 0: the maximum last
        let tb = dev.upload(&ties).unwrap();
        let mut idx = dev.poisoned::<i64>(r).unwrap();
        rows::arg_rows(true, &tb, n, &mut idx).unwrap();
        let want: Vec<i64> = ties
            .chunks(n)
            .map(|a| {
                let m = *a.iter().max().unwrap();
                a.iter().position(|&v| v == m).unwrap() as i64
            })
            .collect();
        assert_eq!(idx.to_vec().unwrap(), want, "i64 argmax n={n}");
    }

    // A lookup by flat offset (width 1) from a u32 table.
    let table: Vec<u32> = (0..100).map(|i| i * 3 + 1).collect();
    let tb = dev.upload(&table).unwrap();
    let offs: Vec<i64> = vec![99, 0, 5, 5, 42];
    let ob = dev.upload(&offs).unwrap();
    let mut y = dev.poisoned::<u32>(offs.len()).unwrap();
    embedding::embedding_fwd(&ob, &offs, &tb, 1, &mut y).unwrap();
    let want: Vec<u32> = offs.iter().map(|&o| table[o as usize]).collect();
    assert_eq!(y.to_vec().unwrap(), want, "u32 lookup");
}

fn check_conv<T: Elem>(dev: &Device) {
    use ptm_cuda::ops::conv::Conv2dGeometry;
    let geoms = [
        (2, 3, 7, 5, 3, 2, 2, 1),   // padding, stride 2
        (1, 1, 17, 15, 4, 4, 4, 0), // ViT-like patches, a ragged edge
        (2, 2, 5, 5, 5, 5, 1, 2),   // kernel as large as the input
        (1, 2, 9, 8, 2, 2, 3, 1),   // stride larger than the kernel: gaps
        (3, 1, 1, 1, 1, 1, 1, 0),
    ];
    for (i, &(n, c, h, w, kh, kw, stride, padding)) in geoms.iter().enumerate() {
        let g = Conv2dGeometry {
            n,
            c,
            h,
            w,
            kh,
            kw,
            stride,
            padding,
        };
        let (oh, ow) = (g.out_h().unwrap(), g.out_w().unwrap());
        let cols_len = n * c * kh * kw * oh * ow;
        let x = widened(&rounded::<T>(&data(
            n * c * h * w,
            40 + i as u64,
            -1.0,
            1.0,
        )));
        let mut want = vec![0.0f64; cols_len];
        ptm_cpu::conv::im2col(&x, &g, &mut want);
        let xb = upload::<T>(dev, &x);
        let mut cols = dev.poisoned::<T>(cols_len).unwrap();
        conv::im2col(&xb, &g, &mut cols).unwrap();
        assert_close(
            &format!("im2col {} geometry {i}", T::NAME),
            &download(&cols),
            &want,
            (0.0, 0.0),
        );

        let dc = widened(&rounded::<T>(&data(cols_len, 50 + i as u64, -1.0, 1.0)));
        let mut want = vec![0.0f64; n * c * h * w];
        ptm_cpu::conv::col2im(&dc, &g, &mut want);
        let dcb = upload::<T>(dev, &dc);
        let mut dx = dev.poisoned::<T>(n * c * h * w).unwrap();
        conv::col2im(&dcb, &g, &mut dx).unwrap();
        // Sums of at most kh·kw/stride² terms, in the accumulation type, rounded once to T.
        assert_close(
            &format!("col2im {} geometry {i}", T::NAME),
            &download(&dx),
            &want,
            T::TOL,
        );
    }
    let bad = Conv2dGeometry {
        n: 1,
        c: 1,
        h: 2,
        w: 2,
        kh: 3,
        kw: 3,
        stride: 1,
        padding: 0,
    };
    let xb = upload::<T>(dev, &[0.0; 4]);
    let mut cols = dev.poisoned::<T>(1).unwrap();
    let err = conv::im2col(&xb, &bad, &mut cols).expect_err("3×3 kernel on a 2×2 input");
    assert!(err.to_string().contains("does not fit"), "{err}");
}

#[test]
fn im2col_and_its_adjoint_match_ptm_cpu() {
    let Some(dev) = device() else { return };
    check_conv::<f64>(&dev);
    check_conv::<f32>(&dev);
    check_conv::<f16>(&dev);
    check_conv::<bf16>(&dev);
}

#[test]
fn sgd_matches_ptm_cpu() {
    let Some(dev) = device() else { return };
    let n = 70_001;
    let p: Vec<f32> = data(n, 61, -1.0, 1.0).iter().map(|&v| v as f32).collect();
    let g: Vec<f32> = data(n, 62, -1.0, 1.0).iter().map(|&v| v as f32).collect();
    for (momentum, weight_decay) in [(0.9, 0.01), (0.0, 0.0), (0.0, 0.1)] {
        let h = optim::Sgd {
            lr: 0.05,
            momentum,
            weight_decay,
        };
        let (mut pc, mut bc) = (p.clone(), vec![0.0f32; n]);
        let mut pb = dev.upload(&p).unwrap();
        let gb = dev.upload(&g).unwrap();
        let mut bb = if momentum != 0.0 {
            dev.poisoned::<f32>(n).unwrap() // the first step must not read it
        } else {
            dev.alloc::<f32>(0).unwrap()
        };
        for step in 0..3 {
            ptm_cpu::optim::sgd_step(&mut pc, &g, &mut bc, &h, step == 0);
            optim::sgd_step(&mut pb, &gb, &mut bb, &h, step == 0).unwrap();
        }
        let got: Vec<f64> = pb.to_vec().unwrap().iter().map(|&v| v as f64).collect();
        let want: Vec<f64> = pc.iter().map(|&v| v as f64).collect();
        // The same f32 formula; contraction into fused multiply-adds may round differently.
        assert_close(
            &format!("sgd p after 3 steps (momentum {momentum}, wd {weight_decay})"),
            &got,
            &want,
            (1e-6, 1e-7),
        );
    }
}

#[test]
fn the_pool_reuses_freed_blocks() {
    let Some(dev) = device() else { return };
    let before = dev.pool_stats();
    for _ in 0..10 {
        let a = dev.alloc::<f32>(1_000_000).unwrap();
        let b = dev.alloc::<f32>(999_999).unwrap(); // same size class as a
        drop((a, b));
    }
    let after = dev.pool_stats();
    assert!(
        after.driver_allocs - before.driver_allocs <= 2,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.reuses - before.reuses >= 18,
        "{before:?} -> {after:?}"
    );
}

#[test]
fn bad_sizes_are_errors_naming_the_kernel() {
    let Some(dev) = device() else { return };
    let x = dev.zeros::<f32>(10).unwrap();
    let mut y = dev.zeros::<f32>(9).unwrap();
    let e = rows::softmax_fwd(&x, &mut y, 5, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("softmax_fwd_f32") && e.contains("9"), "{e}");
    let e = rows::softmax_fwd(&x, &mut y, 3, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not whole rows of 3"), "{e}");
    let far = Layout::strided(&[4], &[3], 0).unwrap();
    let mut z = dev.zeros::<f32>(4).unwrap();
    let e = ew::unary(Unary::Exp, 0.0, &x, &far, &mut z)
        .unwrap_err()
        .to_string();
    assert!(e.contains("0..10") || e.contains("reaches"), "{e}");
}

/// Runs on every machine: without CUDA, opening a device is an error that says so.
#[test]
fn opening_a_device_without_cuda_is_an_error_not_a_panic() {
    match Device::new(0) {
        Ok(d) => eprintln!("a GPU is present: {d:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("CUDA unavailable"), "{msg}");
        }
    }
    let e = Device::new(1000).expect_err("no machine has 1001 GPUs");
    assert!(e.to_string().contains("CUDA unavailable"), "{e}");
}

/// C = alpha·A·B + beta·C₀ + bias in f64 from the operands as stored; also Σ|a||b| per element,
/// the scale of the accumulation's rounding error.
#[allow(clippy::too_many_arguments)]
fn gemm_ref(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &dyn Fn(usize, usize, usize) -> f64,
    b: &dyn Fn(usize, usize, usize) -> f64,
    c0: &[f64],
    alpha: f64,
    beta: f64,
    bias: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>) {
    let (mut c, mut scale) = (vec![0.0; batch * m * n], vec![0.0; batch * m * n]);
    for e in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut sa) = (0.0, 0.0);
                for p in 0..k {
                    s += a(e, i, p) * b(e, p, j);
                    sa += (a(e, i, p) * b(e, p, j)).abs();
                }
                let idx = (e * m + i) * n + j;
                let mut v = alpha * s + if beta != 0.0 { beta * c0[idx] } else { 0.0 };
                if let Some(bias) = bias {
                    v += bias[j];
                }
                c[idx] = v;
                scale[idx] = sa.abs() * alpha.abs()
                    + beta.abs() * c0[idx].abs()
                    + bias.map_or(0.0, |b| b[j].abs());
            }
        }
    }
    (c, scale)
}

/// |got − want| ≤ rel·|want| + acc·scale per element.
fn assert_gemm_close(what: &str, got: &[f64], want: &[f64], scale: &[f64], rel: f64, acc: f64) {
    let bad: Vec<String> = (0..got.len())
        .filter(|&i| {
            let err = (got[i] - want[i]).abs();
            err.is_nan() || err > rel * want[i].abs() + acc * scale[i]
        })
        .take(5)
        .map(|i| format!("[{i}] got {} want {} (scale {})", got[i], want[i], scale[i]))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: first mismatches: {}",
        bad.join(", ")
    );
}

/// Every layout pair of A and B (row-major or transposed storage), odd sizes, a batch of 2 with
/// B shared (batch stride 0), beta 0 on a poisoned C and beta 1 onto a prior C, with and without a
/// bias. Half types must take the tensor-core path whenever the layout allows it.
fn check_gemm<T: Elem>(dev: &Device, force_simt: bool, acc_tol: f64) {
    use ptm_cuda::ops::matmul::{gemm, Gemm, GemmPath, Operand};
    let half = T::NAME == "f16" || T::NAME == "bf16";
    for &(m, n, k) in &[
        (1usize, 1usize, 1usize),
        (3, 17, 5),
        (65, 63, 129),
        (128, 136, 40),
        (257, 130, 300),
    ] {
        for a_trans in [false, true] {
            for b_trans in [false, true] {
                let batch = 2;
                // Stored shapes: A as [batch, m, k] or [batch, k, m]; B as [k, n] or [n, k].
                let ad = data(batch * m * k, (m * 7 + k) as u64, -1.0, 1.0);
                let bd = data(k * n, (n * 13 + k) as u64, -1.0, 1.0);
                let (ab, bb) = (upload::<T>(dev, &ad), upload::<T>(dev, &bd));
                let (a_s, b_s) = (widened(&rounded::<T>(&ad)), widened(&rounded::<T>(&bd)));
                let a_op = if a_trans {
                    Operand::row_major(&ab, k, m).t()
                } else {
                    Operand::row_major(&ab, m, k)
                };
                let mut b_op = if b_trans {
                    Operand::row_major(&bb, n, k).t()
                } else {
                    Operand::row_major(&bb, k, n)
                };
                b_op.batch_stride = 0;
                let a_at = |e: usize, i: usize, p: usize| {
                    if a_trans {
                        a_s[(e * k + p) * m + i]
                    } else {
                        a_s[(e * m + i) * k + p]
                    }
                };
                let b_at = |_e: usize, p: usize, j: usize| {
                    if b_trans {
                        b_s[j * k + p]
                    } else {
                        b_s[p * n + j]
                    }
                };
                for (beta, with_bias) in [(0.0, false), (1.0, true)] {
                    let c0d = data(batch * m * n, 5, -1.0, 1.0);
                    let c0s = widened(&rounded::<T>(&c0d));
                    let biasd = data(n, 6, -1.0, 1.0);
                    let bias_s = widened(&rounded::<T>(&biasd));
                    let bias_b = upload::<T>(dev, &biasd);
                    let mut c = if beta == 0.0 {
                        dev.poisoned::<T>(batch * m * n).unwrap()
                    } else {
                        upload::<T>(dev, &c0d)
                    };
                    let g = Gemm {
                        batch,
                        m,
                        n,
                        k,
                        alpha: 0.5,
                        beta,
                    };
                    let path = gemm(
                        &g,
                        a_op,
                        b_op,
                        &mut c,
                        0,
                        n,
                        m * n,
                        with_bias.then_some(&bias_b),
                        force_simt,
                    )
                    .unwrap();
                    let mma_layout_ok = (a_trans && m % 8 == 0 || !a_trans && k % 8 == 0)
                        && (b_trans && k % 8 == 0 || !b_trans && n % 8 == 0)
                        && (m * k) % 8 == 0;
                    if half && !force_simt && mma_layout_ok {
                        assert!(
                            matches!(path, GemmPath::TensorCore(..)),
                            "{} {m}x{n}x{k}: took {path:?}",
                            T::NAME
                        );
                    }
                    let (want, scale) = gemm_ref(
                        batch,
                        m,
                        n,
                        k,
                        &a_at,
                        &b_at,
                        &c0s,
                        0.5,
                        beta,
                        with_bias.then_some(&bias_s[..]),
                    );
                    let what = format!(
                        "gemm {} {path:?} {m}x{n}x{k} a_t={a_trans} b_t={b_trans} beta={beta}",
                        T::NAME
                    );
                    assert_gemm_close(&what, &download(&c), &want, &scale, T::TOL.0, acc_tol);
                }
            }
        }
    }
}

#[test]
fn matmul_every_layout_matches_f64() {
    let Some(dev) = device() else { return };
    // Accumulation error bound relative to Σ|a·b|: f64 1e-13, f32 ~K·2⁻²⁴ (K ≤ 300: 2e-5).
    check_gemm::<f64>(&dev, false, 1e-13);
    check_gemm::<f32>(&dev, false, 2e-5);
    // Tensor cores accumulate in f32; products of halves are exact.
    check_gemm::<f16>(&dev, false, 2e-5);
    check_gemm::<bf16>(&dev, false, 2e-5);
    check_gemm::<bf16>(&dev, true, 2e-5);
}

/// Attention as ptm-tensor composes it, in f64: scores, masked entries set to f32::MIN (no
/// gradient through them), softmax over all keys, weights·V; and the backward by the chain rule.
/// Returns (o, dq, dk, dv).
#[allow(clippy::too_many_arguments)]
fn attention_ref(
    sh: &ptm_cuda::ops::attention::AttentionShape,
    causal: bool,
    pad: Option<&[f32]>,
    scale: f64,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dout: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (tq, tk, d, prefix) = (sh.tq, sh.tk, sh.d, sh.prefix);
    let main = tk - prefix;
    let shift = main - tq.min(main);
    let visible = |e: usize, i: usize, j: usize| {
        if j < prefix {
            return true;
        }
        let jm = j - prefix;
        !(causal && jm > i + shift) && pad.is_none_or(|p| p[e / sh.heads * main + jm] != 0.0)
    };
    let (mut o, mut dq, mut dk, mut dv) = (
        vec![0.0; q.len()],
        vec![0.0; q.len()],
        vec![0.0; k.len()],
        vec![0.0; v.len()],
    );
    for e in 0..sh.bh {
        for i in 0..tq {
            let qi = &q[(e * tq + i) * d..][..d];
            let s: Vec<f64> = (0..tk)
                .map(|j| {
                    if visible(e, i, j) {
                        scale * (0..d).map(|c| qi[c] * k[(e * tk + j) * d + c]).sum::<f64>()
                    } else {
                        f32::MIN as f64
                    }
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|&x| (x - mx).exp()).sum();
            let p: Vec<f64> = s.iter().map(|&x| (x - mx).exp() / z).collect();
            let g = &dout[(e * tq + i) * d..][..d];
            let dp: Vec<f64> = (0..tk)
                .map(|j| (0..d).map(|c| g[c] * v[(e * tk + j) * d + c]).sum())
                .collect();
            let dot: f64 = (0..tk).map(|j| p[j] * dp[j]).sum();
            for j in 0..tk {
                let ds = if visible(e, i, j) {
                    p[j] * (dp[j] - dot)
                } else {
                    0.0
                };
                for c in 0..d {
                    o[(e * tq + i) * d + c] += p[j] * v[(e * tk + j) * d + c];
                    dv[(e * tk + j) * d + c] += p[j] * g[c];
                    dq[(e * tq + i) * d + c] += scale * ds * k[(e * tk + j) * d + c];
                    dk[(e * tk + j) * d + c] += scale * ds * qi[c];
                }
            }
        }
    }
    (o, dq, dk, dv)
}

/// max |got − want| ≤ tol · max(|want|, 1e-30) over the tensor.
fn assert_normwise(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let scale = want.iter().fold(0.0f64, |m, &w| m.max(w.abs())).max(1e-30);
    let (i, err) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold((0, 0.0f64), |(bi, be), (i, e)| {
            if e > be || e.is_nan() {
                (i, e)
            } else {
                (bi, be)
            }
        });
    assert!(
        err <= tol * scale,
        "{what}: max error {err} at [{i}] (got {}, want {}) over scale {scale}",
        got[i],
        want[i]
    );
}

/// Causal with a KV offset, padding that hides every key of one batch entry (queries that see no
/// key), prefix keys, odd lengths; forward and backward against the f64 composition.
fn check_attention<T: Elem>(dev: &Device, d: usize, force_simt: bool, tol: f64) {
    use ptm_cuda::ops::attention::{attention_bwd, attention_fwd, AttentionPath, AttentionShape};
    let cases: &[(usize, usize, usize, bool, bool)] = &[
        // (tq, main keys, prefix, causal, padding)
        (1, 1, 0, true, false),
        (17, 17, 0, true, false),
        (65, 130, 0, true, true),
        (130, 130, 3, false, true),
        (70, 70, 5, true, true),
    ];
    for (ci, &(tq, main, prefix, causal, padded)) in cases.iter().enumerate() {
        let (batch, heads) = (2, 2);
        let sh = AttentionShape {
            bh: batch * heads,
            heads,
            tq,
            tk: main + prefix,
            prefix,
            d,
        };
        let tk = sh.tk;
        let seed = (ci * 1000 + d) as u64;
        let (q, k, v) = (
            data(sh.bh * tq * d, seed, -1.0, 1.0),
            data(sh.bh * tk * d, seed + 1, -1.0, 1.0),
            data(sh.bh * tk * d, seed + 2, -1.0, 1.0),
        );
        let dout = data(sh.bh * tq * d, seed + 3, -1.0, 1.0);
        // Entry 0 keeps its first 60% of keys; entry 1 has every main key padded.
        let pad: Vec<f32> = (0..batch * main)
            .map(|x| {
                if x / main == 0 && (x % main) * 5 < main * 3 + 1 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let (qs, ks, vs, gs) = (
            widened(&rounded::<T>(&q)),
            widened(&rounded::<T>(&k)),
            widened(&rounded::<T>(&v)),
            widened(&rounded::<T>(&dout)),
        );
        let scale = 1.0 / (d as f64).sqrt();
        let (wo, wdq, wdk, wdv) = attention_ref(
            &sh,
            causal,
            padded.then_some(&pad[..]),
            scale,
            &qs,
            &ks,
            &vs,
            &gs,
        );

        let (qb, kb, vb, gb) = (
            upload::<T>(dev, &q),
            upload::<T>(dev, &k),
            upload::<T>(dev, &v),
            upload::<T>(dev, &dout),
        );
        let pb = dev.upload(&pad).unwrap();
        let kp = padded.then_some(&pb);
        let mut o = dev.poisoned::<T>(q.len()).unwrap();
        let (stats, path) =
            attention_fwd(&sh, causal, kp, scale, &qb, &kb, &vb, &mut o, force_simt).unwrap();
        if (T::NAME == "bf16" || T::NAME == "f16") && !force_simt {
            assert_eq!(path, AttentionPath::TensorCore);
        }
        let what = format!("attention {} {path:?} d={d} tq={tq} tk={tk} prefix={prefix} causal={causal} pad={padded}", T::NAME);
        assert_normwise(&format!("{what}: o"), &download(&o), &wo, tol);
        let (mut dq, mut dk, mut dv) = (
            dev.poisoned::<T>(q.len()).unwrap(),
            dev.poisoned::<T>(k.len()).unwrap(),
            dev.poisoned::<T>(v.len()).unwrap(),
        );
        attention_bwd(
            &sh, causal, kp, scale, &qb, &kb, &vb, &o, &stats, &gb, &mut dq, &mut dk, &mut dv,
            force_simt,
        )
        .unwrap();
        assert_normwise(&format!("{what}: dq"), &download(&dq), &wdq, tol);
        assert_normwise(&format!("{what}: dk"), &download(&dk), &wdk, tol);
        assert_normwise(&format!("{what}: dv"), &download(&dv), &wdv, tol);
    }
}

#[test]
fn attention_simt_matches_the_f64_composition() {
    let Some(dev) = device() else { return };
    for d in [1, 5, 64, 100] {
        check_attention::<f64>(&dev, d, false, 1e-12);
        check_attention::<f32>(&dev, d, false, 1e-5);
    }
    check_attention::<bf16>(&dev, 64, true, 3e-2);
}

#[test]
fn flash_attention_on_tensor_cores_matches_the_f64_composition() {
    let Some(dev) = device() else { return };
    // Inputs and P are rounded to the half type before their products (as in FlashAttention):
    // errors of a few units of 2⁻⁸ (bf16) or 2⁻¹¹ (f16) relative to the tensor's largest entry.
    for d in [32, 64, 128] {
        check_attention::<bf16>(&dev, d, false, 3e-2);
        check_attention::<f16>(&dev, d, false, 5e-3);
    }
}
