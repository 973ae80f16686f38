//! Forward values against independent references written here as plain loops over f64.
//! (The gradient checks prove backward matches forward; these prove forward matches the math.)
//! Tolerance: 1e-12 for f64 paths, 1e-5 relative for f32 paths.

use ptm_tensor::{scaled_dot_product_attention, AttentionOptions, DType, Device, Rng, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(
        0.0,
        1.0,
        shape,
        DType::F64,
        &mut Rng::new(seed),
        &Device::Cpu,
    )
    .unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn matmul_matches_triple_loop_on_broadcast_and_transposed_operands() {
    let (a, b) = (randn(&[2, 1, 5, 7], 1), randn(&[3, 9, 7], 2)); // b used transposed
    let got = a.matmul(&b.t().unwrap()).unwrap();
    assert_eq!(got.dims(), &[2, 3, 5, 9]);
    let (av, bv) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    let mut want = vec![];
    for i in 0..2 {
        for j in 0..3 {
            for r in 0..5 {
                for c in 0..9 {
                    want.push(
                        (0..7)
                            .map(|p| av[(i * 5 + r) * 7 + p] * bv[(j * 9 + c) * 7 + p])
                            .sum(),
                    );
                }
            }
        }
    }
    assert_close(&got.to_f64_vec().unwrap(), &want, 1e-12, "matmul f64");
    let got32 = a
        .to_dtype(DType::F32)
        .unwrap()
        .matmul(&b.to_dtype(DType::F32).unwrap().t().unwrap())
        .unwrap();
    assert_close(&got32.to_f64_vec().unwrap(), &want, 1e-5, "matmul f32");
}

#[test]
fn softmax_layer_norm_and_gelu_match_their_formulas() {
    let x = randn(&[3, 6], 3);
    let xv = x.to_f64_vec().unwrap();
    let mut sm = vec![];
    let mut ln = vec![];
    for r in xv.chunks(6) {
        let z: f64 = r.iter().map(|v| v.exp()).sum();
        sm.extend(r.iter().map(|v| v.exp() / z));
        let mean = r.iter().sum::<f64>() / 6.0;
        let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0;
        ln.extend(
            r.iter()
                .map(|v| (v - mean) / (var + 1e-5).sqrt() * 2.0 + 0.5),
        );
    }
    assert_close(
        &x.softmax(-1).unwrap().to_f64_vec().unwrap(),
        &sm,
        1e-12,
        "softmax",
    );
    let lsm: Vec<f64> = sm.iter().map(|p| p.ln()).collect();
    assert_close(
        &x.log_softmax(1).unwrap().to_f64_vec().unwrap(),
        &lsm,
        1e-12,
        "log_softmax",
    );
    let (w, b) = (
        Tensor::full(2.0, [6], DType::F64, &Device::Cpu).unwrap(),
        Tensor::full(0.5, [6], DType::F64, &Device::Cpu).unwrap(),
    );
    assert_close(
        &x.layer_norm(Some(&w), Some(&b), 1e-5)
            .unwrap()
            .to_f64_vec()
            .unwrap(),
        &ln,
        1e-12,
        "layer_norm",
    );
    // GELU: the tanh form by its formula; the erf form x·Φ(x) at points where the normal CDF is
    // tabulated (Φ(1) = 0.841344746068543, Φ(-0.5) = 0.308537538725987).
    let gt: Vec<f64> = xv
        .iter()
        .map(|&v| {
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
        })
        .collect();
    assert_close(
        &x.gelu().unwrap().to_f64_vec().unwrap(),
        &gt,
        1e-12,
        "gelu tanh",
    );
    let pts = Tensor::from_vec(vec![1.0f64, -0.5], [2], &Device::Cpu).unwrap();
    assert_close(
        &pts.gelu_erf().unwrap().to_f64_vec().unwrap(),
        &[0.841344746068543, -0.5 * 0.308537538725987],
        1e-14,
        "gelu erf",
    );
}

#[test]
fn cross_entropy_matches_its_definition_and_ignores_minus_100() {
    let logits = randn(&[4, 5], 4);
    let t = Tensor::from_vec(vec![3i64, -100, 0, 4], [4], &Device::Cpu).unwrap();
    let lv = logits.to_f64_vec().unwrap();
    let mut total = 0.0;
    for (r, tgt) in [(0usize, 3usize), (2, 0), (3, 4)] {
        let row = &lv[r * 5..r * 5 + 5];
        total += row.iter().map(|v| v.exp()).sum::<f64>().ln() - row[tgt];
    }
    let got = logits
        .cross_entropy(&t, -100)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_close(&[got], &[total / 3.0], 1e-12, "cross_entropy");
}

#[test]
fn conv2d_matches_direct_convolution() {
    let (x, w, b) = (
        randn(&[2, 3, 6, 5], 5),
        randn(&[4, 3, 3, 2], 6),
        randn(&[4], 7),
    );
    let (stride, pad) = (2usize, 1usize);
    let got = x.conv2d(&w, Some(&b), stride, pad).unwrap();
    let (oh, ow) = ((6 + 2 - 3) / 2 + 1, (5 + 2 - 2) / 2 + 1);
    assert_eq!(got.dims(), &[2, 4, oh, ow]);
    let (xv, wv, bv) = (
        x.to_f64_vec().unwrap(),
        w.to_f64_vec().unwrap(),
        b.to_f64_vec().unwrap(),
    );
    let mut want = vec![];
    for n in 0..2 {
        for o in 0..4 {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = bv[o];
                    for c in 0..3 {
                        for ki in 0..3 {
                            for kj in 0..2 {
                                let (y, z) = (
                                    (i * stride + ki) as isize - pad as isize,
                                    (j * stride + kj) as isize - pad as isize,
                                );
                                if y >= 0 && z >= 0 && y < 6 && z < 5 {
                                    acc += xv[((n * 3 + c) * 6 + y as usize) * 5 + z as usize]
                                        * wv[((o * 3 + c) * 3 + ki) * 2 + kj];
                                }
                            }
                        }
                    }
                    want.push(acc);
                }
            }
        }
    }
    assert_close(&got.to_f64_vec().unwrap(), &want, 1e-12, "conv2d");
}

#[test]
fn attention_matches_explicit_loops_with_causal_padding_and_prefix() {
    let (b, h, tq, tk, p, d) = (2, 2, 3, 4, 2, 5);
    let (q, k, v) = (
        randn(&[b, h, tq, d], 8),
        randn(&[b, h, tk, d], 9),
        randn(&[b, h, tk, d], 10),
    );
    let (pk, pv) = (randn(&[1, h, p, d], 11), randn(&[1, h, p, d], 12));
    let mask = Tensor::from_vec(vec![1i64, 1, 1, 1, 0, 1, 1, 1], [b, tk], &Device::Cpu).unwrap();
    let opts = AttentionOptions {
        causal: true,
        key_padding_mask: Some(&mask),
        prefix: Some((&pk, &pv)),
        scale: None,
        dropout: None,
    };
    let got = scaled_dot_product_attention(&q, &k, &v, opts)
        .unwrap()
        .to_f64_vec()
        .unwrap();
    let (qv, kv, vv, pkv, pvv, mv) = (
        q.to_f64_vec().unwrap(),
        k.to_f64_vec().unwrap(),
        v.to_f64_vec().unwrap(),
        pk.to_f64_vec().unwrap(),
        pv.to_f64_vec().unwrap(),
        mask.to_f64_vec().unwrap(),
    );
    let mut want = vec![];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..tq {
                // Keys: prefix (always visible), then keys j visible if j <= i + (tk - tq) and not padded.
                let mut keys: Vec<(Vec<f64>, Vec<f64>)> = (0..p)
                    .map(|j| {
                        (
                            pkv[(hi * p + j) * d..][..d].to_vec(),
                            pvv[(hi * p + j) * d..][..d].to_vec(),
                        )
                    })
                    .collect();
                for j in 0..tk {
                    if j <= i + (tk - tq) && mv[bi * tk + j] != 0.0 {
                        let o = ((bi * h + hi) * tk + j) * d;
                        keys.push((kv[o..o + d].to_vec(), vv[o..o + d].to_vec()));
                    }
                }
                let qo = ((bi * h + hi) * tq + i) * d;
                let s: Vec<f64> = keys
                    .iter()
                    .map(|(kk, _)| {
                        (0..d).map(|e| qv[qo + e] * kk[e]).sum::<f64>() / (d as f64).sqrt()
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                for e in 0..d {
                    want.push(
                        keys.iter()
                            .zip(&s)
                            .map(|((_, vvv), sc)| (sc - mx).exp() / z * vvv[e])
                            .sum(),
                    );
                }
            }
        }
    }
    assert_close(&got, &want, 1e-12, "attention");
}

#[test]
fn indexing_ops_match_their_definitions() {
    let x = Tensor::arange(0.0, 12.0, DType::F32, &Device::Cpu)
        .unwrap()
        .reshape([3, 4])
        .unwrap();
    let idx = Tensor::from_vec(vec![2u32, 0], [2], &Device::Cpu).unwrap();
    assert_eq!(
        x.index_select(0, &idx).unwrap().to_vec2::<f32>().unwrap(),
        vec![vec![8.0, 9.0, 10.0, 11.0], vec![0.0, 1.0, 2.0, 3.0]]
    );
    assert_eq!(
        x.index_select(1, &idx).unwrap().to_vec2::<f32>().unwrap(),
        vec![vec![2.0, 0.0], vec![6.0, 4.0], vec![10.0, 8.0]]
    );
    let g = Tensor::from_vec(vec![3i64, 0, 1, 1, 2, 3], [3, 2], &Device::Cpu).unwrap();
    assert_eq!(
        x.gather(1, &g).unwrap().to_vec2::<f32>().unwrap(),
        vec![vec![3.0, 0.0], vec![5.0, 5.0], vec![10.0, 11.0]]
    );
    let e = x
        .embedding(&Tensor::from_vec(vec![1u32, 1, 0, 2], [2, 2], &Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(e.dims(), &[2, 2, 4]);
    assert_eq!(
        e.to_vec::<f32>().unwrap()[..8],
        [4.0, 5.0, 6.0, 7.0, 4.0, 5.0, 6.0, 7.0]
    );
    assert_eq!(
        x.argmax(0).unwrap().to_vec::<i64>().unwrap(),
        vec![2, 2, 2, 2]
    );
    assert_eq!(
        x.max(1).unwrap().to_vec::<f32>().unwrap(),
        vec![3.0, 7.0, 11.0]
    );
    assert_eq!(x.sum([0, 1]).unwrap().to_scalar::<f32>().unwrap(), 66.0);
    let masked = x.masked_fill(&x.gt_scalar(9.5).unwrap(), -1.0).unwrap();
    assert_eq!(masked.to_vec::<f32>().unwrap()[9..], [9.0, -1.0, -1.0]);
}

#[test]
fn argmax_takes_the_first_maximum_and_nan_as_the_largest() {
    // Expected values from PyTorch 2.15: torch.tensor([1, nan, 3, nan]).argmax() is 1, and
    // torch.tensor([[2, 5, 5], [nan, 1, 9]]).argmax(1) is [1, 0].
    let x = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0, f32::NAN], [4], &Device::Cpu).unwrap();
    assert_eq!(x.argmax(0).unwrap().to_vec::<i64>().unwrap(), vec![1]);
    let y = Tensor::from_vec(
        vec![2.0f64, 5.0, 5.0, f64::NAN, 1.0, 9.0],
        [2, 3],
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(y.argmax(1).unwrap().to_vec::<i64>().unwrap(), vec![1, 0]);
}

#[test]
fn integer_arithmetic_wraps_and_divides_toward_zero() {
    // Expected values are Rust's own wrapping_* integer operations.
    let a = [i64::MAX, i64::MIN, -7, 7];
    let b = [1i64, -1, 2, -2];
    let (ta, tb) = (
        Tensor::from_vec(a.to_vec(), [4], &Device::Cpu).unwrap(),
        Tensor::from_vec(b.to_vec(), [4], &Device::Cpu).unwrap(),
    );
    let want = |f: fn(i64, i64) -> i64| (0..4).map(|i| f(a[i], b[i])).collect::<Vec<_>>();
    assert_eq!(
        ta.add(&tb).unwrap().to_vec::<i64>().unwrap(),
        want(i64::wrapping_add)
    );
    assert_eq!(
        ta.mul(&tb).unwrap().to_vec::<i64>().unwrap(),
        want(i64::wrapping_mul)
    );
    assert_eq!(
        ta.div(&tb).unwrap().to_vec::<i64>().unwrap(),
        want(i64::wrapping_div)
    );
}

#[test]
fn casts_round_trip_and_round_to_nearest() {
    let x = Tensor::from_vec(vec![1.0f32, -2.5, 3.75, 65504.0], [4], &Device::Cpu).unwrap();
    for dt in [DType::F16, DType::BF16, DType::F64] {
        let back = x
            .to_dtype(dt)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(
            back[..3],
            [1.0, -2.5, 3.75],
            "{dt:?} round trip of exactly representable values"
        );
    }
    assert_eq!(
        x.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(),
        vec![1, -2, 3, 65504]
    );
    let ids = Tensor::from_vec(vec![7u32, 0], [2], &Device::Cpu).unwrap();
    assert_eq!(
        ids.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(),
        vec![7, 0]
    );
    // 1 + 2^-9 is halfway between two bf16 values and rounds to even (1.0).
    let halfway = Tensor::from_vec(vec![1.0f32 + 2f32.powi(-9)], [1], &Device::Cpu).unwrap();
    assert_eq!(
        halfway.to_dtype(DType::BF16).unwrap().to_f64_vec().unwrap(),
        vec![1.0]
    );
}

#[test]
fn dropout_is_seeded_and_keeps_the_expectation() {
    let x = Tensor::ones([10_000], DType::F32, &Device::Cpu).unwrap();
    let a = x
        .dropout(0.25, &mut Rng::new(3))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let b = x
        .dropout(0.25, &mut Rng::new(3))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(a, b, "same seed, same mask");
    let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / 1e4;
    // Binomial(10000, 0.75): standard deviation 0.0043; 5 sigma.
    assert!((kept - 0.75).abs() < 0.022, "kept fraction {kept}");
    assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
}

#[test]
fn half_precision_binary_ops_read_views() {
    // A narrowed, transposed bf16/f16 view plus a broadcast row: same as the f32 result rounded.
    let base = Tensor::arange(0.0, 24.0, DType::F32, &Device::Cpu)
        .unwrap()
        .reshape([4, 6])
        .unwrap();
    let row = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.25], [4], &Device::Cpu).unwrap();
    let want = base
        .narrow(1, 1, 3)
        .unwrap()
        .t()
        .unwrap()
        .add(&row)
        .unwrap()
        .to_f64_vec()
        .unwrap();
    for dt in [DType::BF16, DType::F16] {
        let got = base
            .to_dtype(dt)
            .unwrap()
            .narrow(1, 1, 3)
            .unwrap()
            .t()
            .unwrap()
            .add(&row.to_dtype(dt).unwrap())
            .unwrap();
        assert_eq!(got.dims(), &[3, 4]);
        // Every value here (quarters up to 23) is exact in both formats.
        assert_eq!(got.to_f64_vec().unwrap(), want, "{dt:?}");
    }
}

/// Attention dropout zeroes weights with the mask its seed draws (one uniform per weight, in
/// row-major order, as `Tensor::dropout`) and scales the kept ones by 1/(1-p).
#[test]
fn attention_dropout_uses_its_seeded_mask() {
    let (b, h, t, d, p, seed) = (1, 2, 3, 4, 0.4, 99);
    let (q, k, v) = (
        randn(&[b, h, t, d], 1),
        randn(&[b, h, t, d], 2),
        randn(&[b, h, t, d], 3),
    );
    let opts = AttentionOptions {
        dropout: Some((p, seed)),
        ..Default::default()
    };
    let got = scaled_dot_product_attention(&q, &k, &v, opts)
        .unwrap()
        .to_f64_vec()
        .unwrap();
    let (qv, kv, vv) = (
        q.to_f64_vec().unwrap(),
        k.to_f64_vec().unwrap(),
        v.to_f64_vec().unwrap(),
    );
    let mut rng = Rng::new(seed);
    let mut want = vec![];
    for hi in 0..h {
        let base = hi * t * d;
        let mut weights = vec![];
        for i in 0..t {
            let s: Vec<f64> = (0..t)
                .map(|j| {
                    (0..d)
                        .map(|c| qv[base + i * d + c] * kv[base + j * d + c])
                        .sum::<f64>()
                        / (d as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            weights.push(s.iter().map(|x| (x - m).exp() / z).collect::<Vec<_>>());
        }
        for row in weights.iter_mut() {
            for w in row.iter_mut() {
                *w = if rng.uniform() < p {
                    0.0
                } else {
                    *w / (1.0 - p)
                };
            }
        }
        for row in &weights {
            for c in 0..d {
                want.push((0..t).map(|j| row[j] * vv[base + j * d + c]).sum::<f64>());
            }
        }
    }
    assert_close(&got, &want, 1e-12, "attention dropout");
}

/// The fused linear cross-entropy equals the composite `matmul` + `cross_entropy` (each checked
/// against loops above), in f64 to 1e-12 and f32 to 1e-5, across several 64-row blocks.
#[test]
fn linear_cross_entropy_equals_matmul_then_cross_entropy() {
    for dtype in [DType::F64, DType::F32] {
        let h = randn(&[150, 9], 31).to_dtype(dtype).unwrap();
        let w = randn(&[23, 9], 32).to_dtype(dtype).unwrap();
        let t: Vec<i64> = (0..150)
            .map(|i| if i % 11 == 0 { -100 } else { i * 5 % 23 })
            .collect();
        let t = Tensor::from_vec(t, [150], &Device::Cpu).unwrap();
        let fused = h.linear_cross_entropy(&w, &t, -100).unwrap();
        let plain = h
            .matmul(&w.t().unwrap())
            .unwrap()
            .cross_entropy(&t, -100)
            .unwrap();
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        assert_close(
            &fused.to_f64_vec().unwrap(),
            &plain.to_f64_vec().unwrap(),
            tol,
            "loss",
        );
    }
}

/// `values` borrows a contiguous tensor of the asked type and copies any other view, with the
/// same elements as `to_vec` either way.
#[test]
fn values_borrow_when_contiguous_and_copy_otherwise() {
    let t = randn(&[3, 4], 40).to_dtype(DType::F32).unwrap();
    let v = t.values::<f32>().unwrap();
    assert!(matches!(v, std::borrow::Cow::Borrowed(_)));
    assert_eq!(v.to_vec(), t.to_vec::<f32>().unwrap());
    let tt = t.t().unwrap();
    let v = tt.values::<f32>().unwrap();
    assert!(matches!(v, std::borrow::Cow::Owned(_)));
    assert_eq!(v.to_vec(), tt.to_vec::<f32>().unwrap());
    let row = t.narrow(0, 1, 1).unwrap();
    assert_eq!(
        row.values::<f32>().unwrap().to_vec(),
        t.to_vec::<f32>().unwrap()[4..8]
    );
    assert!(t.values::<f64>().is_err());
}

/// Without dropout attention runs the fused kernel; with dropout, the composition (matmul,
/// masked softmax, matmul). A dropout rate so small that no weight is dropped (and the 1/(1-p)
/// factor rounds to 1) takes the composition with the same values: outputs and gradients must
/// agree, masks included (a batch entry whose keys are all padded gets uniform weights in both).
#[test]
fn fused_and_composed_attention_agree_on_values_and_gradients() {
    let (b, h, tq, tk, p, d) = (2, 3, 5, 7, 2, 4);
    let q = randn(&[b, h, tq, d], 31).as_var();
    let k = randn(&[b, h, tk, d], 32).as_var();
    let v = randn(&[b, h, tk, d], 33).as_var();
    let (pk, pv) = (
        randn(&[1, h, p, d], 34).as_var(),
        randn(&[1, h, p, d], 35).as_var(),
    );
    let mut pad = vec![1i64; b * tk];
    pad[2] = 0;
    pad[tk..].iter_mut().for_each(|x| *x = 0);
    let mask = Tensor::from_vec(pad, [b, tk], &Device::Cpu).unwrap();
    let weights = randn(&[b, h, tq, d], 36);
    let run = |dropout: Option<(f64, u64)>| {
        let opts = AttentionOptions {
            causal: true,
            key_padding_mask: Some(&mask),
            prefix: Some((&pk, &pv)),
            scale: Some(0.45),
            dropout,
        };
        let out = scaled_dot_product_attention(&q, &k, &v, opts).unwrap();
        let grads = out
            .mul(&weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let mut vals = vec![out.to_f64_vec().unwrap()];
        for t in [&q, &k, &v, &pk, &pv] {
            vals.push(grads.get(t).unwrap().to_f64_vec().unwrap());
        }
        vals
    };
    let fused = run(None);
    let composed = run(Some((1e-300, 7)));
    for (what, (f, c)) in ["out", "dq", "dk", "dv", "d prefix k", "d prefix v"]
        .iter()
        .zip(fused.iter().zip(&composed))
    {
        assert_close(f, c, 1e-12, what);
    }
}

/// The fused attention on bf16 tensors (computed in f32) against the same inputs in f64: values
/// and gradients within 3e-2 of 1 + |reference| — bf16 keeps 8 bits, and outputs and gradients
/// are rounded to it (a loose bound: it checks the bf16 path end to end, not the last bit).
#[test]
fn bf16_attention_values_and_gradients_follow_f64() {
    let (b, h, t, d) = (2, 2, 9, 8);
    let inputs = [
        randn(&[b, h, t, d], 41),
        randn(&[b, h, t, d], 42),
        randn(&[b, h, t, d], 43),
    ];
    let weights = randn(&[b, h, t, d], 44);
    let run = |dtype: DType| {
        // The bf16-rounded inputs in both runs, so only the computation differs.
        let xs: Vec<Tensor> = inputs
            .iter()
            .map(|x| {
                x.to_dtype(DType::BF16)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
                    .as_var()
            })
            .collect();
        let opts = AttentionOptions {
            causal: true,
            ..Default::default()
        };
        let out = scaled_dot_product_attention(&xs[0], &xs[1], &xs[2], opts).unwrap();
        let w = weights.to_dtype(dtype).unwrap();
        let grads = out.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        let mut vals = vec![out.to_f64_vec().unwrap()];
        for x in &xs {
            vals.push(grads.get(x).unwrap().to_f64_vec().unwrap());
        }
        vals
    };
    let (exact, low) = (run(DType::F64), run(DType::BF16));
    for (what, (l, e)) in ["out", "dq", "dk", "dv"].iter().zip(low.iter().zip(&exact)) {
        assert_close(l, e, 3e-2, what);
    }
}

/// Attention over no keys gives zeros (an empty weighted sum) and a zero query gradient, and
/// zero heads give an empty output; neither panics.
#[test]
fn attention_over_no_keys_or_heads_is_empty() {
    let q = randn(&[2, 3, 4, 5], 51).as_var();
    let k = randn(&[2, 3, 0, 5], 52);
    let opts = AttentionOptions {
        causal: true,
        ..Default::default()
    };
    let out = scaled_dot_product_attention(&q, &k, &k, opts).unwrap();
    assert_eq!(out.dims(), &[2, 3, 4, 5]);
    assert!(out.to_f64_vec().unwrap().iter().all(|&x| x == 0.0));
    let grads = out.sum_all().unwrap().backward().unwrap();
    if let Some(g) = grads.get(&q) {
        assert!(g.to_f64_vec().unwrap().iter().all(|&x| x == 0.0));
    }
    let q0 = randn(&[2, 0, 4, 5], 53);
    let k0 = randn(&[2, 0, 6, 5], 54);
    let out = scaled_dot_product_attention(&q0, &k0, &k0, AttentionOptions::default()).unwrap();
    assert_eq!(out.dims(), &[2, 0, 4, 5]);
}

/// bf16 matmul (bf16 products summed in f32, one rounding at the end) on batched, broadcast and
/// transposed views, against an f64 product of the same bf16 values rounded to bf16: within one
/// bf16 unit in the last place (2⁻⁷ relative) plus the f32 summation's error.
#[test]
fn bf16_matmul_sums_in_f32_and_rounds_once() {
    let mut rng = Rng::new(5);
    let a = Tensor::randn(0.0, 1.0, [2, 3, 37, 70], DType::F32, &mut rng, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    // B shared across the batch of 2 and stored transposed.
    let bt = Tensor::randn(0.0, 1.0, [3, 45, 70], DType::F32, &mut rng, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let b = bt.transpose(1, 2).unwrap();
    let got = a.matmul(&b).unwrap();
    assert_eq!(got.dtype(), DType::BF16);
    assert_eq!(got.dims(), &[2, 3, 37, 45]);
    let want = a
        .to_dtype(DType::F64)
        .unwrap()
        .matmul(&b.to_dtype(DType::F64).unwrap())
        .unwrap();
    let mag = a
        .to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .matmul(&b.to_dtype(DType::F64).unwrap().abs().unwrap())
        .unwrap()
        .to_f64_vec()
        .unwrap();
    let (got, want) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    for i in 0..got.len() {
        let tol = want[i].abs() / 128.0 + 70.0 * f32::EPSILON as f64 * mag[i];
        assert!(
            (got[i] - want[i]).abs() <= tol,
            "[{i}] {} vs {} (tol {tol:e})",
            got[i],
            want[i]
        );
    }
}
