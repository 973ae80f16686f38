//! Each kernel against a plain f64 reference written here, on odd shapes (1, 3, 17, 63, 65, ...),
//! strided operands and extreme values. Tolerances: f64 1e-12, f32 1e-5 relative to the row scale.

use proptest::prelude::*;
use ptm_cpu::cross_entropy::{cross_entropy_bwd, cross_entropy_fwd};
use ptm_cpu::layer_norm::{layer_norm_bwd, layer_norm_fwd};
use ptm_cpu::matmul::{matmul, matmul_batched, matmul_isa, matmul_naive, MatRef};
use ptm_cpu::rows::{layer_norm_row_isa, softmax_bwd_row_isa, softmax_row_isa};
use ptm_cpu::softmax::{log_softmax_fwd, softmax_bwd, softmax_fwd};
use ptm_cpu::Isa;

const ODD: [usize; 8] = [1, 2, 3, 15, 17, 63, 65, 130];
/// Matmul sizes: odd ones, and ones that cross the packed driver's row and column blocks (MC 96,
/// NC 256; deep k is `matmul_deeper_than_a_k_slice`).
const MM: [usize; 10] = [1, 2, 3, 13, 17, 33, 65, 97, 130, 300];

mod common;
use common::data;

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * (1.0 + want.abs())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every ISA path this CPU has; A and B each row-major or transposed (read in place); beta 0
    /// (C starts as NaN, which must not leak) or 1 (accumulate).
    #[test]
    fn matmul_matches_the_reference_on_every_path(mi in 0usize..10, ni in 0usize..10, ki in 0usize..10, ta in any::<bool>(), tb in any::<bool>(), acc in any::<bool>()) {
        let (m, n, k) = (MM[mi], MM[ni], MM[ki]);
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        // Stored transposed means element (i, p) sits at p*m + i.
        let ma = if ta { MatRef { data: &a, offset: 0, row_stride: 1, col_stride: m } } else { MatRef::row_major(&a, k) };
        let mb = if tb { MatRef { data: &b, offset: 0, row_stride: 1, col_stride: k } } else { MatRef::row_major(&b, n) };
        let init = data(m * n, 3);
        let beta = if acc { 1.0 } else { 0.0 };
        let mut want = init.clone();
        matmul_naive(m, n, k, ma, mb, &mut want, beta);
        let (a32, b32): (Vec<f32>, Vec<f32>) = (a.iter().map(|&x| x as f32).collect(), b.iter().map(|&x| x as f32).collect());
        let ma32 = MatRef { data: &a32[..], offset: ma.offset, row_stride: ma.row_stride, col_stride: ma.col_stride };
        let mb32 = MatRef { data: &b32[..], offset: mb.offset, row_stride: mb.row_stride, col_stride: mb.col_stride };
        for isa in Isa::available() {
            let mut got = if acc { init.clone() } else { vec![f64::NAN; m * n] };
            matmul_isa(isa, m, n, k, ma, mb, &mut got, beta);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!(close(*g, *w, 1e-12), "f64 {isa:?} {m}x{n}x{k}: {g} vs {w}");
            }
            // f32: |error| ≤ 1e-6·(k+1), the rounding of k products of values in [-1, 1).
            let mut got32 = if acc { init.iter().map(|&x| x as f32).collect() } else { vec![f32::NAN; m * n] };
            matmul_isa(isa, m, n, k, ma32, mb32, &mut got32, beta as f32);
            for (idx, (g, w)) in got32.iter().zip(&want).enumerate() {
                prop_assert!((*g as f64 - w).abs() <= 1e-6 * (k as f64 + 1.0), "f32 {isa:?} {m}x{n}x{k} ta={ta} tb={tb} at {idx}: {g} vs {w}");
            }
        }
    }
}

/// A batch of views into shared buffers (attention's heads, read transposed for the backward),
/// both small products spread over entries and large ones run one after another: each entry as
/// the reference computes it, beta 0 over a NaN-poisoned C and beta 1 accumulating.
#[test]
fn batched_matmul_matches_the_reference_per_entry() {
    for (batch, m, n, k) in [
        (12, 17, 17, 24),
        (7, 3, 65, 15),
        (3, 130, 97, 65),
        (1, 5, 3, 2),
        (0, 4, 4, 4),
    ] {
        let (a, b) = (data(batch * m * k, 4), data(batch * k * n, 5));
        let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&x| x as f32).collect();
        // A row-major per entry; B stored transposed per entry (element (p, j) at j*k + p).
        let va = |e: usize| MatRef {
            data: &a32[..],
            offset: e * m * k,
            row_stride: k,
            col_stride: 1,
        };
        let vb = |e: usize| MatRef {
            data: &b32[..],
            offset: e * k * n,
            row_stride: 1,
            col_stride: k,
        };
        let (ma, mb): (Vec<_>, Vec<_>) = (0..batch).map(|e| (va(e), vb(e))).unzip();
        let init: Vec<f32> = data(batch * m * n, 6).iter().map(|&x| x as f32).collect();
        for beta in [0.0f32, 1.0] {
            let mut got = if beta == 0.0 {
                vec![f32::NAN; batch * m * n]
            } else {
                init.clone()
            };
            matmul_batched(m, n, k, &ma, &mb, &mut got, beta);
            for e in 0..batch {
                let a64 = MatRef {
                    data: &a[..],
                    offset: e * m * k,
                    row_stride: k,
                    col_stride: 1,
                };
                let b64 = MatRef {
                    data: &b[..],
                    offset: e * k * n,
                    row_stride: 1,
                    col_stride: k,
                };
                let mut want: Vec<f64> = init[e * m * n..(e + 1) * m * n]
                    .iter()
                    .map(|&x| x as f64)
                    .collect();
                matmul_naive(m, n, k, a64, b64, &mut want, beta as f64);
                for (i, (g, w)) in got[e * m * n..(e + 1) * m * n]
                    .iter()
                    .zip(&want)
                    .enumerate()
                {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-6 * (k as f64 + 1.0),
                        "batch {batch} {m}x{n}x{k} beta {beta} entry {e} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// A row-major A is read in place (its last, partial row panel packed): a view narrowed from a
/// wider matrix, with an offset and a row stride larger than k, with and without an edge panel.
#[test]
fn matmul_reads_a_row_major_view_in_place() {
    for (m, n, k) in [(97, 130, 300), (6, 64, 5), (12, 70, 33), (1, 3, 2)] {
        let (wide, off) = (k + 5, 3);
        let a = data(off + m * wide, 31);
        let b = data(k * n, 32);
        let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&x| x as f32).collect();
        fn view<T>(d: &[T], off: usize, wide: usize) -> MatRef<'_, T> {
            MatRef {
                data: d,
                offset: off,
                row_stride: wide,
                col_stride: 1,
            }
        }
        let mut want = vec![0.0f64; m * n];
        matmul_naive(
            m,
            n,
            k,
            view(&a[..], off, wide),
            MatRef::row_major(&b, n),
            &mut want,
            0.0,
        );
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; m * n];
            matmul_isa(
                isa,
                m,
                n,
                k,
                view(&a32[..], off, wide),
                MatRef::row_major(&b32, n),
                &mut got,
                0.0,
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() <= 1e-6 * (k as f64 + 1.0),
                    "{isa:?} {m}x{n}x{k} at {i}: {g} vs {w}"
                );
            }
        }
    }
}

/// A k deeper than two of the driver's k slices (KC = 768 steps, the last one partial), with row
/// and column edges, on every path, A and B each read transposed too: each slice after the first
/// accumulates into C, over a NaN-poisoned C (beta 0) and a filled one (beta 1). With m = 13 the
/// transposed A is small enough to be read in place, with m = 100 it is packed.
#[test]
fn matmul_deeper_than_a_k_slice() {
    for m in [100, 13] {
        deeper_than_a_k_slice(m);
    }
}

fn deeper_than_a_k_slice(m: usize) {
    let (n, k) = (300, 1700);
    let (a, b) = (data(m * k, 21), data(k * n, 22));
    // A `rows × cols` row-major matrix stored as is, or transposed (cols × rows) and read with
    // unit row stride.
    let store = |x: &[f64], rows: usize, cols: usize, t: bool| -> (Vec<f64>, (usize, usize)) {
        if t {
            let s = (0..rows * cols)
                .map(|i| x[(i % rows) * cols + i / rows])
                .collect();
            (s, (1, rows))
        } else {
            (x.to_vec(), (cols, 1))
        }
    };
    fn at<T: Copy>(data: &[T], (row_stride, col_stride): (usize, usize)) -> MatRef<'_, T> {
        MatRef {
            data,
            offset: 0,
            row_stride,
            col_stride,
        }
    }
    let narrow = |x: &[f64]| -> Vec<f32> { x.iter().map(|&v| v as f32).collect() };
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (a_store, sa) = store(&a, m, k, ta);
        let (b_store, sb) = store(&b, k, n, tb);
        let (a32, b32) = (narrow(&a_store), narrow(&b_store));
        for beta in [0.0, 1.0] {
            let init = data(m * n, 23);
            let mut want = init.clone();
            matmul_naive(
                m,
                n,
                k,
                at(&a_store[..], sa),
                at(&b_store[..], sb),
                &mut want,
                beta,
            );
            for isa in Isa::available() {
                let mut got: Vec<f32> = if beta == 1.0 {
                    init.iter().map(|&x| x as f32).collect()
                } else {
                    vec![f32::NAN; m * n]
                };
                let (a_ref, b_ref) = (at(&a32[..], sa), at(&b32[..], sb));
                matmul_isa(isa, m, n, k, a_ref, b_ref, &mut got, beta as f32);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    // f32 sums of 1700 products of values in [-1, 1].
                    assert!(
                        (*g as f64 - w).abs() <= 1e-6 * (k as f64 + 1.0),
                        "{isa:?} m {m} transposed A {ta} B {tb} beta {beta} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// A row-major B read in place at its row stride: exactly one micro-kernel panel wide (16 columns
/// for AVX2, 64 for AVX-512: an attention head's V at d = 64), contiguous or the first columns of
/// a wider, offset matrix; or small and padded so that its last panel's full width is readable
/// (a head's transposed keys); the unpadded one is packed. k crosses the driver's slices where
/// the size allows, m its row edges; beta 0 over NaN and beta 1.
#[test]
fn matmul_reads_small_b_in_place() {
    // (n, k, row stride, offset, padding after the last row)
    let cases = [
        (16, 1700, 16, 0, 0),
        (64, 1700, 64, 0, 0),
        (64, 1700, 83, 7, 0),
        (30, 1700, 40, 3, 64),
        (100, 300, 128, 5, 64),
        (100, 300, 100, 0, 0),
    ];
    let m = 100;
    for (n, k, row_stride, offset, pad) in cases {
        let a = data(m * k, 31);
        let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        let b = data(offset + k * row_stride + pad, 32);
        let b32: Vec<f32> = b.iter().map(|&x| x as f32).collect();
        let b64 = MatRef {
            data: &b[..],
            offset,
            row_stride,
            col_stride: 1,
        };
        for beta in [0.0, 1.0] {
            let init = data(m * n, 33);
            let mut want = init.clone();
            matmul_naive(m, n, k, MatRef::row_major(&a, k), b64, &mut want, beta);
            for isa in Isa::available() {
                let mut got: Vec<f32> = if beta == 1.0 {
                    init.iter().map(|&x| x as f32).collect()
                } else {
                    vec![f32::NAN; m * n]
                };
                let br = MatRef {
                    data: &b32[..],
                    offset,
                    row_stride,
                    col_stride: 1,
                };
                let ar = MatRef::row_major(&a32[..], k);
                matmul_isa(isa, m, n, k, ar, br, &mut got, beta as f32);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-6 * (k as f64 + 1.0),
                        "{isa:?} n {n} k {k} row stride {row_stride} beta {beta} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// Wide products cross the driver's column slabs (B is packed 4096 columns at a time): every
/// path, B row-major and transposed (a tied output layer reads the embedding table transposed),
/// overwriting a NaN-poisoned C and accumulating into a filled one.
#[test]
fn matmul_across_column_slabs() {
    let (m, n, k) = (7, 2 * 4096 + 77, 300);
    let (a, b) = (data(m * k, 11), data(k * n, 12));
    let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
    let b32: Vec<f32> = b.iter().map(|&x| x as f32).collect();
    for tb in [false, true] {
        let mb = if tb {
            MatRef {
                data: &b,
                offset: 0,
                row_stride: 1,
                col_stride: k,
            }
        } else {
            MatRef::row_major(&b, n)
        };
        let mb32 = MatRef {
            data: &b32[..],
            offset: 0,
            row_stride: mb.row_stride,
            col_stride: mb.col_stride,
        };
        for beta in [0.0, 1.0] {
            let init = data(m * n, 13);
            let mut want = init.clone();
            matmul_naive(m, n, k, MatRef::row_major(&a, k), mb, &mut want, beta);
            for isa in Isa::available() {
                let mut got: Vec<f32> = if beta == 1.0 {
                    init.iter().map(|&x| x as f32).collect()
                } else {
                    vec![f32::NAN; m * n]
                };
                matmul_isa(
                    isa,
                    m,
                    n,
                    k,
                    MatRef::row_major(&a32, k),
                    mb32,
                    &mut got,
                    beta as f32,
                );
                for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-6 * (k as f64 + 1.0),
                        "{isa:?} tb={tb} beta={beta} at {idx}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_reads_an_offset_submatrix() {
    // A 3x2 block at (1, 1) inside a 5x4 buffer.
    let buf = data(20, 4);
    let a = MatRef {
        data: &buf,
        offset: 5,
        row_stride: 4,
        col_stride: 1,
    };
    let b = data(2 * 3, 5);
    let mut got = vec![0.0; 9];
    matmul(3, 3, 2, a, MatRef::row_major(&b, 3), &mut got, 0.0);
    for i in 0..3 {
        for j in 0..3 {
            let want = buf[5 + i * 4] * b[j] + buf[6 + i * 4] * b[3 + j];
            assert!(close(got[i * 3 + j], want, 1e-14));
        }
    }
}

#[test]
fn softmax_rows_match_reference_including_extreme_values() {
    for &d in &ODD {
        let mut x = data(3 * d, d as u64);
        x[0] = 1000.0; // would overflow a naive exp
        x[d.min(2)] = -1000.0;
        let mut y = vec![0.0; x.len()];
        softmax_fwd(&x, &mut y, d);
        let mut ly = vec![0.0; x.len()];
        log_softmax_fwd(&x, &mut ly, d);
        for r in 0..3 {
            let row = &x[r * d..(r + 1) * d];
            let mx = row.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = row.iter().map(|v| (v - mx).exp()).sum();
            for j in 0..d {
                let want = (row[j] - mx).exp() / z;
                assert!(close(y[r * d + j], want, 1e-12), "softmax d={d}");
                assert!(
                    close(ly[r * d + j], row[j] - mx - z.ln(), 1e-12),
                    "log_softmax d={d}"
                );
            }
            assert!(y[r * d..(r + 1) * d].iter().all(|v| v.is_finite()));
        }
        // Backward: dx = y (dy - Σ dy y).
        let dy = data(x.len(), 7);
        let mut dx = vec![0.0; x.len()];
        softmax_bwd(&y, &dy, &mut dx, d);
        for r in 0..3 {
            let dot: f64 = (0..d).map(|j| y[r * d + j] * dy[r * d + j]).sum();
            for j in 0..d {
                assert!(close(
                    dx[r * d + j],
                    y[r * d + j] * (dy[r * d + j] - dot),
                    1e-12
                ));
            }
        }
    }
}

/// Row lengths for the f32 row kernels: odd ones, ones that cross their 16-lane chunks and
/// 256-element blocks, and GPT-2's vocabulary.
const ROWS_F32: [usize; 12] = [1, 2, 3, 15, 16, 17, 63, 65, 257, 1000, 4099, 50257];

/// The f32 softmax row on every ISA path against f64 on the same f32 inputs, with huge logits and
/// -inf (masked) entries: |error| ≤ 1e-6 of each probability (plus the smallest normal, for
/// results that underflow).
#[test]
fn softmax_row_f32_matches_f64_on_every_path() {
    for &d in &ROWS_F32 {
        let mut x: Vec<f32> = data(d, d as u64 + 5)
            .iter()
            .map(|&v| (v * 8.0) as f32)
            .collect();
        x[0] = 1000.0;
        x[d / 2] = -1000.0;
        if d > 3 {
            x[d - 1] = f32::NEG_INFINITY;
            x[1] = f32::NEG_INFINITY;
        }
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mx = x64.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = x64.iter().map(|v| (v - mx).exp()).sum();
        for isa in Isa::available() {
            let mut y = vec![f32::NAN; d];
            softmax_row_isa(isa, &x, &mut y);
            for j in 0..d {
                let want = (x64[j] - mx).exp() / z;
                assert!(
                    (y[j] as f64 - want).abs() <= 1e-6 * want + f32::MIN_POSITIVE as f64,
                    "{isa:?} d={d} at {j}: {} vs {want}",
                    y[j]
                );
            }
        }
    }
    // A NaN anywhere in a row makes the whole row NaN, as PyTorch's does.
    let mut x = vec![0.5f32; 40];
    x[7] = f32::NAN;
    for isa in Isa::available() {
        let mut y = vec![0.0f32; 40];
        softmax_row_isa(isa, &x, &mut y);
        assert!(y.iter().all(|v| v.is_nan()), "{isa:?}");
    }
}

/// The f32 softmax backward row on every ISA path against f64 on the same f32 inputs (a real
/// softmax output, with exact zeros where the forward masked): |error| ≤ 1e-5·(1 + |dx|)·scale,
/// the scale being the row's largest |dy|.
#[test]
fn softmax_bwd_row_f32_matches_f64_on_every_path() {
    for &d in &ROWS_F32 {
        let mut x: Vec<f32> = data(d, d as u64 + 21)
            .iter()
            .map(|&v| (v * 6.0) as f32)
            .collect();
        if d > 3 {
            x[1] = f32::NEG_INFINITY;
        }
        let mut y = vec![0.0f32; d];
        softmax_row_isa(Isa::Scalar, &x, &mut y);
        let dy: Vec<f32> = data(d, d as u64 + 22)
            .iter()
            .map(|&v| (v * 3.0) as f32)
            .collect();
        let (y64, dy64): (Vec<f64>, Vec<f64>) = (
            y.iter().map(|&v| v as f64).collect(),
            dy.iter().map(|&v| v as f64).collect(),
        );
        let dot: f64 = y64.iter().zip(&dy64).map(|(a, b)| a * b).sum();
        let scale = dy64.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for isa in Isa::available() {
            let mut dx = vec![f32::NAN; d];
            softmax_bwd_row_isa(isa, &y, &dy, &mut dx);
            for j in 0..d {
                let want = y64[j] * (dy64[j] - dot);
                assert!(
                    (dx[j] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()) * scale,
                    "{isa:?} d={d} at {j}: {} vs {want}",
                    dx[j]
                );
            }
            if d > 3 {
                assert_eq!(dx[1], 0.0, "{isa:?}: a masked weight gets no gradient");
            }
        }
    }
}

/// The f32 layer-norm row on every ISA path, with and without weight and bias, against f64 on the
/// same f32 inputs (offset by 100, so the two-pass statistics matter): |error| ≤ 1e-5·(1 + |y|).
#[test]
fn layer_norm_row_f32_matches_f64_on_every_path() {
    for &d in &ROWS_F32 {
        let x: Vec<f32> = data(d, d as u64 + 9)
            .iter()
            .map(|&v| (v * 50.0 + 100.0) as f32)
            .collect();
        let w: Vec<f32> = data(d, 12).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = data(d, 13).iter().map(|&v| v as f32).collect();
        let eps = 1e-5f32;
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mean = x64.iter().sum::<f64>() / d as f64;
        let var = x64.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for isa in Isa::available() {
            for (wo, bo) in [
                (Some(&w[..]), Some(&b[..])),
                (Some(&w[..]), None),
                (None, Some(&b[..])),
                (None, None),
            ] {
                let mut y = vec![f32::NAN; d];
                layer_norm_row_isa(isa, &x, wo, bo, eps, &mut y);
                for j in 0..d {
                    let want = (x64[j] - mean) * rstd * wo.map_or(1.0, |w| w[j] as f64)
                        + bo.map_or(0.0, |b| b[j] as f64);
                    assert!(
                        (y[j] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{isa:?} d={d} w={} b={} at {j}: {} vs {want}",
                        wo.is_some(),
                        bo.is_some(),
                        y[j]
                    );
                }
            }
        }
    }
}

#[test]
fn layer_norm_forward_and_backward_match_reference() {
    // 3 rows: one chunk of the backward; 100 rows of the wider sizes: chunks of 32 rows run in
    // parallel, their weight and bias gradients added afterwards.
    for (&d, rows) in ODD.iter().zip([3, 3, 3, 3, 100, 100, 100, 3]) {
        let x: Vec<f64> = data(rows * d, 11).iter().map(|v| v * 50.0 + 1e4).collect(); // large offset: two-pass stats matter
        let (w, b) = (data(d, 12), data(d, 13));
        let eps = 1e-5;
        let mut y = vec![0.0; x.len()];
        layer_norm_fwd(&x, Some(&w), Some(&b), eps, d, &mut y);
        let dy = data(x.len(), 14);
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; d], vec![0.0; d]);
        layer_norm_bwd(
            &x,
            Some(&w),
            eps,
            d,
            &dy,
            &mut dx,
            Some(&mut dw),
            Some(&mut db),
        );
        let (mut rdw, mut rdb) = (vec![0.0; d], vec![0.0; d]);
        for r in 0..rows {
            let row = &x[r * d..(r + 1) * d];
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            let xhat: Vec<f64> = row.iter().map(|v| (v - mean) * rstd).collect();
            let g: Vec<f64> = (0..d).map(|j| dy[r * d + j] * w[j]).collect();
            let (mg, mgx) = (
                g.iter().sum::<f64>() / d as f64,
                g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / d as f64,
            );
            for j in 0..d {
                assert!(
                    close(y[r * d + j], xhat[j] * w[j] + b[j], 1e-9),
                    "layer_norm fwd d={d}"
                );
                assert!(
                    close(dx[r * d + j], rstd * (g[j] - mg - xhat[j] * mgx), 1e-9),
                    "layer_norm dx d={d}"
                );
                rdw[j] += dy[r * d + j] * xhat[j];
                rdb[j] += dy[r * d + j];
            }
        }
        for j in 0..d {
            assert!(
                close(dw[j], rdw[j], 1e-9) && close(db[j], rdb[j], 1e-12),
                "layer_norm dw/db d={d}"
            );
        }
    }
}

#[test]
fn cross_entropy_matches_reference_on_a_wide_vocabulary() {
    let c = 50257; // GPT-2's vocabulary: the width the fused kernel exists for
    let rows = 3;
    let logits: Vec<f32> = data(rows * c, 21)
        .iter()
        .map(|&v| (v * 20.0) as f32)
        .collect();
    let targets = [17i64, -100, 50256];
    let (total, count) = cross_entropy_fwd(&logits, &targets, c, -100);
    assert_eq!(count, 2);
    let mut want = 0.0;
    for (r, &t) in targets.iter().enumerate() {
        if t < 0 {
            continue;
        }
        let row: Vec<f64> = logits[r * c..(r + 1) * c]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let mx = row.iter().cloned().fold(f64::MIN, f64::max);
        want += mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() - row[t as usize];
    }
    assert!(close(total, want, 1e-5), "{total} vs {want}");
    let mut g = vec![1.0f32; logits.len()];
    cross_entropy_bwd(&logits, &targets, c, -100, 0.5, &mut g);
    assert!(
        g[c..2 * c].iter().all(|&v| v == 0.0),
        "ignored row has zero gradient"
    );
    let row_sum: f64 = g[..c].iter().map(|&v| v as f64).sum();
    assert!(
        row_sum.abs() < 1e-5,
        "softmax - onehot sums to zero: {row_sum}"
    );
}

#[test]
fn gelu_gradients_match_central_differences() {
    use ptm_cpu::gelu::*;
    for x in [-6.0f64, -2.5, -1.0, -0.3, 0.0, 0.2, 1.0, 3.7, 8.0] {
        let h = 1e-6;
        let num_t = (gelu_tanh(x + h) - gelu_tanh(x - h)) / (2.0 * h);
        let num_e = (gelu_erf(x + h) - gelu_erf(x - h)) / (2.0 * h);
        assert!(close(gelu_tanh_grad(x), num_t, 1e-8), "tanh at {x}");
        assert!(close(gelu_erf_grad(x), num_e, 1e-8), "erf at {x}");
    }
}
