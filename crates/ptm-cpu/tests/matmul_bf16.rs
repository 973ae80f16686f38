//! bf16 × bf16 → f32 products against an f64 reference on the same bf16 values: odd sizes that
//! cross the packing blocks (MR 6, NR 64, KC 768 pairs, slabs), odd k (a padded last pair), every
//! operand layout (row-major, transposed, and a strided view that no fast reader takes), beta 0
//! on NaN-poisoned C, 1 and 0.5; the `vdpbf16ps` path (where the CPU has it) and the widened f32
//! path.
//!
//! Tolerance: products of two bf16 are exact in f32, so the only error is the f32 summation:
//! |got − want| ≤ 2·k·2⁻²⁴·Σ|a·b| + 2⁻²⁴·|beta·c| (twice the classical bound).

mod common;

use common::data;
use half::bf16;
use ptm_cpu::matmul::{bf16_dot_available, matmul_bf16, matmul_bf16_widened, MatRef};

/// An operand stored in one of three ways: row-major, transposed (column-major), or every other
/// element of a row-major buffer twice as wide (col stride 2).
#[derive(Clone, Copy, Debug)]
enum Store {
    RowMajor,
    Transposed,
    Strided,
}

fn store(v: &[bf16], rows: usize, cols: usize, how: Store) -> (Vec<bf16>, usize, usize) {
    match how {
        Store::RowMajor => (v.to_vec(), cols, 1),
        Store::Transposed => {
            let mut t = vec![bf16::ZERO; rows * cols];
            for i in 0..rows {
                for j in 0..cols {
                    t[j * rows + i] = v[i * cols + j];
                }
            }
            (t, 1, rows)
        }
        Store::Strided => {
            let mut w = vec![bf16::from_f32(7.0); rows * cols * 2];
            for i in 0..rows {
                for j in 0..cols {
                    w[i * cols * 2 + j * 2] = v[i * cols + j];
                }
            }
            (w, cols * 2, 2)
        }
    }
}

type Product = fn(usize, usize, usize, MatRef<bf16>, MatRef<bf16>, &mut [f32], f32);

fn check(product: Product, name: &str) {
    let sizes = [
        (1, 1, 1),
        (3, 5, 7),
        (7, 65, 2),
        (13, 130, 17),
        (65, 63, 300),
        (97, 257, 513),
        (6, 64, 1),
        (7, 70, 1601), // deeper than a k slice (768 pairs), odd k
    ];
    let layouts = [Store::RowMajor, Store::Transposed, Store::Strided];
    for (si, &(m, n, k)) in sizes.iter().enumerate() {
        let av: Vec<bf16> = data(m * k, si as u64)
            .iter()
            .map(|&x| bf16::from_f64(x))
            .collect();
        let bv: Vec<bf16> = data(k * n, 100 + si as u64)
            .iter()
            .map(|&x| bf16::from_f64(x))
            .collect();
        let c0: Vec<f32> = data(m * n, 200 + si as u64)
            .iter()
            .map(|&x| x as f32)
            .collect();
        for la in layouts {
            for lb in layouts {
                let (ad, ars, acs) = store(&av, m, k, la);
                let (bd, brs, bcs) = store(&bv, k, n, lb);
                let a = MatRef {
                    data: &ad,
                    offset: 0,
                    row_stride: ars,
                    col_stride: acs,
                };
                let b = MatRef {
                    data: &bd,
                    offset: 0,
                    row_stride: brs,
                    col_stride: bcs,
                };
                for beta in [0.0f32, 1.0, 0.5] {
                    let mut c = if beta == 0.0 {
                        vec![f32::NAN; m * n]
                    } else {
                        c0.clone()
                    };
                    product(m, n, k, a, b, &mut c, beta);
                    for i in 0..m {
                        for j in 0..n {
                            let (mut s, mut mag) = (0.0f64, 0.0f64);
                            for p in 0..k {
                                let x = av[i * k + p].to_f64() * bv[p * n + j].to_f64();
                                s += x;
                                mag += x.abs();
                            }
                            let prior = beta as f64 * c0[i * n + j] as f64;
                            let want = s + prior;
                            let tol = 2.0 * k as f64 * f32::EPSILON as f64 / 2.0 * mag
                                + f32::EPSILON as f64 * prior.abs();
                            let got = c[i * n + j] as f64;
                            assert!(
                                (got - want).abs() <= tol,
                                "{name} {m}x{n}x{k} A {la:?} B {lb:?} beta {beta}: C[{i},{j}] = {got}, want {want} (tol {tol:e})"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn bf16_products_match_f64_on_every_layout() {
    eprintln!("vdpbf16ps path available: {}", bf16_dot_available());
    check(matmul_bf16, "matmul_bf16");
    check(matmul_bf16_widened, "matmul_bf16_widened");
}

#[test]
fn bf16_product_over_a_vocabulary_wide_operand_crosses_slabs() {
    // n = 5000 crosses the 4096-column slab of packed B.
    let (m, n, k) = (7, 5000, 33);
    let av: Vec<bf16> = data(m * k, 1).iter().map(|&x| bf16::from_f64(x)).collect();
    let bv: Vec<bf16> = data(k * n, 2).iter().map(|&x| bf16::from_f64(x)).collect();
    let mut c = vec![f32::NAN; m * n];
    matmul_bf16(
        m,
        n,
        k,
        MatRef::row_major(&av, k),
        MatRef::row_major(&bv, n),
        &mut c,
        0.0,
    );
    let mut w = vec![f32::NAN; m * n];
    matmul_bf16_widened(
        m,
        n,
        k,
        MatRef::row_major(&av, k),
        MatRef::row_major(&bv, n),
        &mut w,
        0.0,
    );
    for (i, (&x, &y)) in c.iter().zip(&w).enumerate() {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "[{i}] {x} vs {y}");
    }
}
