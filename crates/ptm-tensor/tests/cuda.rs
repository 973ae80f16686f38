//! The CUDA backend (feature `cuda`) against the CPU path: every op with a CUDA path, forward and
//! backward, on fresh random inputs with odd shapes, views included. Without a GPU the comparisons
//! print why and pass (`PTM_REQUIRE_GPU=1` makes that a failure); the error paths run everywhere.
//!
//! Tolerances: f64 1e-12 and f32 1e-5 relative to 1 + |value| (the GPU sums in another order and
//! uses CUDA's transcendentals, within 2 ulp).

#![cfg(feature = "cuda")]

use ptm_tensor::{
    scaled_dot_product_attention, AttentionOptions, DType, Device, Error, Rng, Tensor,
};

const GPU: Device = Device::Cuda(0);

fn gpu() -> bool {
    match Tensor::zeros([1], DType::F32, &GPU) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("PTM_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("PTM_REQUIRE_GPU=1 but {e}");
            }
            eprintln!("skipped: {e}");
            false
        }
    }
}

fn randn(dims: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::randn(0.0, 1.0, dims, dtype, &mut rng, &Device::Cpu).unwrap()
}

fn close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f64) {
    assert_eq!(gpu.dims(), cpu.dims(), "{what}: shapes differ");
    assert_eq!(gpu.device(), GPU, "{what}: result left the GPU");
    let (g, c) = (gpu.to_f64_vec().unwrap(), cpu.to_f64_vec().unwrap());
    for (i, (x, y)) in g.iter().zip(&c).enumerate() {
        let ok = (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol * (1.0 + y.abs());
        assert!(ok, "{what}: element {i}: gpu {x} vs cpu {y}");
    }
}

fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 1e-5,
        _ => 1e-2,
    }
}

#[test]
fn a_missing_gpu_is_an_error_not_a_panic() {
    if Device::cuda_if_available(0) == GPU {
        return; // a GPU is here: nothing to check
    }
    assert_eq!(Device::cuda_if_available(0), Device::Cpu);
    let e = Tensor::zeros([3], DType::F32, &GPU).unwrap_err();
    assert!(matches!(e, Error::Device { .. }), "{e}");
    assert!(e.to_string().starts_with("cuda:0: CUDA unavailable"), "{e}");
    let e = Tensor::from_vec(vec![1.0f32, 2.0], [2], &GPU).unwrap_err();
    assert!(e.to_string().contains("cuda:0"), "{e}");
    let e = randn(&[2], 1, DType::F32).to_device(&GPU).unwrap_err();
    assert!(e.to_string().contains("cuda:0"), "{e}");
}

#[test]
fn round_trips_keep_values_and_views() {
    if !gpu() {
        return;
    }
    for dt in [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::U32,
        DType::I64,
    ] {
        let x = randn(&[3, 5], 2, DType::F64)
            .affine(10.0, 0.0)
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        let view = x.t().unwrap().narrow(0, 1, 3).unwrap();
        let back = view
            .to_device(&GPU)
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap();
        assert_eq!(
            back.to_f64_vec().unwrap(),
            view.to_f64_vec().unwrap(),
            "{dt:?}"
        );
        // A view taken on the GPU reads back the same as on the CPU.
        let on = x
            .to_device(&GPU)
            .unwrap()
            .t()
            .unwrap()
            .narrow(0, 1, 3)
            .unwrap();
        assert_eq!(
            on.to_f64_vec().unwrap(),
            view.to_f64_vec().unwrap(),
            "{dt:?} device view"
        );
    }
}

#[test]
fn elementwise_binary_matmul_reductions_match_the_cpu() {
    if !gpu() {
        return;
    }
    for dt in [DType::F64, DType::F32, DType::BF16] {
        let x = randn(&[7, 13], 3, dt);
        let pos = x.abs().unwrap().add_scalar(0.1).unwrap();
        let (xg, pg) = (x.to_device(&GPU).unwrap(), pos.to_device(&GPU).unwrap());
        let t = tol(dt);
        type F = fn(&Tensor) -> ptm_tensor::Result<Tensor>;
        let fns: [(&str, F); 12] = [
            ("neg", |a| a.neg()),
            ("exp", |a| a.exp()),
            ("tanh", |a| a.tanh()),
            ("sigmoid", |a| a.sigmoid()),
            ("relu", |a| a.relu()),
            ("gelu", |a| a.gelu()),
            ("gelu_erf", |a| a.gelu_erf()),
            ("silu", |a| a.silu()),
            ("affine", |a| a.affine(1.5, -0.25)),
            ("transposed exp", |a| a.t()?.exp()),
            ("sum rows", |a| a.sum(1)),
            ("max cols", |a| a.max_keepdim(0)),
        ];
        for (name, f) in fns {
            close(
                &format!("{name} {dt:?}"),
                &f(&xg).unwrap(),
                &f(&x).unwrap(),
                t,
            );
        }
        for (name, f) in [
            ("log", (|a: &Tensor| a.log()) as F),
            ("sqrt", |a| a.sqrt()),
            ("powf", |a| a.powf(1.7)),
        ] {
            close(
                &format!("{name} {dt:?}"),
                &f(&pg).unwrap(),
                &f(&pos).unwrap(),
                t,
            );
        }
        // Broadcasting: [7, 13] op [13] and [7, 1].
        let (row, col) = (randn(&[13], 4, dt), randn(&[7, 1], 5, dt));
        let (rg, cg) = (row.to_device(&GPU).unwrap(), col.to_device(&GPU).unwrap());
        close(
            &format!("add {dt:?}"),
            &xg.add(&rg).unwrap(),
            &x.add(&row).unwrap(),
            t,
        );
        close(
            &format!("mul {dt:?}"),
            &xg.mul(&cg).unwrap(),
            &x.mul(&col).unwrap(),
            t,
        );
        close(
            &format!("div {dt:?}"),
            &xg.div(&pg).unwrap(),
            &x.div(&pos).unwrap(),
            t,
        );
        close(
            &format!("maximum {dt:?}"),
            &xg.maximum(&cg).unwrap(),
            &x.maximum(&col).unwrap(),
            t,
        );
        // Matmul: batched with a broadcast operand read transposed.
        let (a, b) = (randn(&[2, 3, 5, 17], 6, dt), randn(&[3, 9, 17], 7, dt));
        let (ag, bg) = (a.to_device(&GPU).unwrap(), b.to_device(&GPU).unwrap());
        let want = a.matmul(&b.transpose(1, 2).unwrap()).unwrap();
        let got = ag.matmul(&bg.transpose(1, 2).unwrap()).unwrap();
        close(&format!("matmul {dt:?}"), &got, &want, t * 10.0);
        // Softmax over a middle dim (transposes around the row kernel).
        let s = randn(&[4, 6, 5], 8, dt);
        let sg = s.to_device(&GPU).unwrap();
        close(
            &format!("softmax {dt:?}"),
            &sg.softmax(1).unwrap(),
            &s.softmax(1).unwrap(),
            t,
        );
        close(
            &format!("log_softmax {dt:?}"),
            &sg.log_softmax(-1).unwrap(),
            &s.log_softmax(-1).unwrap(),
            t,
        );
        close(
            &format!("to f32 {dt:?}"),
            &xg.to_dtype(DType::F32).unwrap(),
            &x.to_dtype(DType::F32).unwrap(),
            0.0,
        );
    }
}

#[test]
fn gradients_through_the_gpu_match_the_cpu() {
    if !gpu() {
        return;
    }
    // A two-layer MLP with a softmax head, in f64: every op on its path runs on the GPU.
    let x = randn(&[8, 5], 10, DType::F64);
    let w1 = randn(&[5, 7], 11, DType::F64);
    let w2 = randn(&[7, 3], 12, DType::F64);
    let run = |dev: &Device| {
        let (x, w1, w2) = (
            x.to_device(dev).unwrap(),
            w1.to_device(dev).unwrap().as_var(),
            w2.to_device(dev).unwrap().as_var(),
        );
        let h = x.matmul(&w1).unwrap().gelu().unwrap();
        let p = h.matmul(&w2).unwrap().log_softmax(-1).unwrap();
        let loss = p.mul(&p).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        (
            loss,
            grads.get(&w1).unwrap().clone(),
            grads.get(&w2).unwrap().clone(),
        )
    };
    let (lc, g1c, g2c) = run(&Device::Cpu);
    let (lg, g1g, g2g) = run(&GPU);
    close("loss", &lg, &lc, 1e-12);
    close("d w1", &g1g, &g1c, 1e-12);
    close("d w2", &g2g, &g2c, 1e-12);
}

#[test]
fn every_elementwise_view_and_reduction_gradient_matches_the_cpu() {
    if !gpu() {
        return;
    }
    type F = fn(&Tensor, &Tensor) -> ptm_tensor::Result<Tensor>;
    // Each f(x, y) with x [5, 6] (positive where the op needs it) and y [6]; the loss weights the
    // result by fixed values so every gradient element matters.
    let cases: [(&str, F); 27] = [
        ("neg", |x, _| x.neg()),
        ("abs", |x, _| x.abs()),
        ("sign", |x, y| x.sign()?.mul(y)),
        ("exp", |x, _| x.exp()),
        ("log", |x, _| x.log()),
        ("sqrt", |x, _| x.sqrt()),
        ("rsqrt", |x, _| x.rsqrt()),
        ("powf", |x, _| x.powf(2.5)),
        ("tanh", |x, _| x.tanh()),
        ("sigmoid", |x, _| x.sigmoid()),
        ("relu", |x, y| x.sub(y)?.relu()),
        ("gelu", |x, _| x.gelu()),
        ("gelu_erf", |x, _| x.gelu_erf()),
        ("silu", |x, _| x.silu()),
        ("affine", |x, _| x.affine(-1.5, 0.25)),
        ("sub broadcast", |x, y| x.sub(y)),
        ("div broadcast", |x, y| y.div(x)),
        ("maximum", |x, y| x.maximum(y)),
        ("minimum", |x, y| x.minimum(y)),
        ("clamp", |x, _| x.clamp(0.5, 1.5)),
        ("masked_fill", |x, y| x.masked_fill(&x.gt(y)?, -2.0)),
        ("max over dim 0", |x, _| x.max_keepdim(0)),
        ("min over dim 1", |x, _| x.min(1)),
        ("mean and var", |x, _| x.mean(0)?.add(&x.var(0, 1)?)),
        ("views: permute, narrow, broadcast, contiguous", |x, _| {
            x.t()?
                .narrow(0, 1, 4)?
                .reshape([4, 1, 5])?
                .broadcast_as([4, 3, 5])?
                .contiguous()
        }),
        ("cat and cast", |x, y| {
            Tensor::cat(&[x.clone(), y.reshape([1, 6])?], 0)?
                .to_dtype(DType::F32)?
                .to_dtype(DType::F64)
        }),
        ("where_cond", |x, y| {
            x.gt(y)?.where_cond(&x.exp()?, &y.broadcast_as([5, 6])?)
        }),
    ];
    let x0 = randn(&[5, 6], 90, DType::F64)
        .abs()
        .unwrap()
        .add_scalar(0.3)
        .unwrap();
    let y0 = randn(&[6], 91, DType::F64)
        .abs()
        .unwrap()
        .add_scalar(0.2)
        .unwrap();
    for (name, f) in cases {
        let run = |dev: &Device| {
            let (x, y) = (
                x0.to_device(dev).unwrap().as_var(),
                y0.to_device(dev).unwrap().as_var(),
            );
            let out = f(&x, &y).unwrap();
            let w = randn(out.dims(), 92, DType::F64).to_device(dev).unwrap();
            let loss = out.mul(&w).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let grad = |t: &Tensor| grads.get(t).cloned();
            (out, grad(&x), grad(&y))
        };
        let (oc, gxc, gyc) = run(&Device::Cpu);
        let (og, gxg, gyg) = run(&GPU);
        close(&format!("{name}: value"), &og, &oc, 1e-12);
        for (which, g, c) in [("x", gxg, gxc), ("y", gyg, gyc)] {
            match (g, c) {
                (Some(g), Some(c)) => close(&format!("{name}: d {which}"), &g, &c, 1e-12),
                (None, None) => {}
                (g, c) => panic!(
                    "{name}: d {which} exists on the GPU: {}, on the CPU: {}",
                    g.is_some(),
                    c.is_some()
                ),
            }
        }
    }
}

#[test]
fn layer_norm_and_cross_entropy_gradients_match_the_cpu() {
    if !gpu() {
        return;
    }
    // Embedding-free classifier: layer norm with weight and bias, a projection, cross-entropy
    // with an ignored row; f64 for the comparison and f32 for the path that trains.
    for (dt, t) in [(DType::F64, 1e-11), (DType::F32, 2e-5)] {
        let x = randn(&[6, 10], 20, dt);
        let (w, b) = (randn(&[10], 21, dt), randn(&[10], 22, dt));
        let proj = randn(&[10, 7], 23, dt);
        let targets = Tensor::from_vec(vec![0i64, 6, -100, 3, 3, 1], [6], &Device::Cpu).unwrap();
        let run = |dev: &Device| {
            let (x, w, b, proj) = (
                x.to_device(dev).unwrap().as_var(),
                w.to_device(dev).unwrap().as_var(),
                b.to_device(dev).unwrap().as_var(),
                proj.to_device(dev).unwrap().as_var(),
            );
            let h = x.layer_norm(Some(&w), Some(&b), 1e-5).unwrap();
            let loss = h
                .matmul(&proj)
                .unwrap()
                .cross_entropy(&targets, -100)
                .unwrap();
            let grads = loss.backward().unwrap();
            let get = |v: &Tensor| grads.get(v).unwrap().clone();
            (loss.clone(), get(&x), get(&w), get(&b), get(&proj))
        };
        let c = run(&Device::Cpu);
        let g = run(&GPU);
        close(&format!("loss {dt:?}"), &g.0, &c.0, t);
        close(&format!("d x {dt:?}"), &g.1, &c.1, t);
        close(&format!("d weight {dt:?}"), &g.2, &c.2, t);
        close(&format!("d bias {dt:?}"), &g.3, &c.3, t);
        close(&format!("d proj {dt:?}"), &g.4, &c.4, t);
    }
}

#[test]
fn fused_attention_values_and_gradients_match_the_cpu() {
    if !gpu() {
        return;
    }
    // Causal with a padding mask (batch 1 keeps only its first 9 keys); f64 runs the CUDA-core
    // kernels, bf16 with head dim 64 the tensor-core flash attention.
    for (dt, d, t) in [
        (DType::F64, 24, 1e-11),
        (DType::F32, 24, 2e-5),
        (DType::BF16, 64, 3e-2),
    ] {
        let (q, k, v) = (
            randn(&[2, 3, 17, d], 30, dt),
            randn(&[2, 3, 17, d], 31, dt),
            randn(&[2, 3, 17, d], 32, dt),
        );
        let pad: Vec<f32> = (0..34)
            .map(|i| if i < 17 || i - 17 < 9 { 1.0 } else { 0.0 })
            .collect();
        let pad = Tensor::from_vec(pad, [2, 17], &Device::Cpu).unwrap();
        let run = |dev: &Device| {
            let (q, k, v) = (
                q.to_device(dev).unwrap().as_var(),
                k.to_device(dev).unwrap().as_var(),
                v.to_device(dev).unwrap().as_var(),
            );
            let opts = AttentionOptions {
                causal: true,
                key_padding_mask: Some(&pad),
                ..Default::default()
            };
            let o = scaled_dot_product_attention(&q, &k, &v, opts).unwrap();
            let loss = o.mul(&o).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let get = |x: &Tensor| grads.get(x).unwrap().clone();
            (o.clone(), get(&q), get(&k), get(&v))
        };
        let c = run(&Device::Cpu);
        let g = run(&GPU);
        close(&format!("attention {dt:?}"), &g.0, &c.0, t);
        close(&format!("attention d q {dt:?}"), &g.1, &c.1, t);
        close(&format!("attention d k {dt:?}"), &g.2, &c.2, t);
        close(&format!("attention d v {dt:?}"), &g.3, &c.3, t);
    }
}

#[test]
fn masks_selection_joins_and_lookups_match_the_cpu() {
    if !gpu() {
        return;
    }
    let x = randn(&[6, 9], 40, DType::F32);
    let xg = x.to_device(&GPU).unwrap();
    // Comparisons give u32 masks; masked_fill and where select through them.
    close(
        "gt_scalar",
        &xg.gt_scalar(0.1).unwrap(),
        &x.gt_scalar(0.1).unwrap(),
        0.0,
    );
    close(
        "le",
        &xg.le(&xg.t().unwrap().t().unwrap()).unwrap(),
        &x.le(&x).unwrap(),
        0.0,
    );
    let m = x.lt_scalar(-0.2).unwrap();
    let mg = m.to_device(&GPU).unwrap();
    close(
        "masked_fill",
        &xg.masked_fill(&mg, -1e9).unwrap(),
        &x.masked_fill(&m, -1e9).unwrap(),
        0.0,
    );
    close(
        "clamp",
        &xg.clamp(-0.5, 0.5).unwrap(),
        &x.clamp(-0.5, 0.5).unwrap(),
        0.0,
    );
    // cat of views along a middle dim, and of integer ids.
    let (a, b) = (
        randn(&[2, 3, 4], 41, DType::F64),
        randn(&[2, 5, 4], 42, DType::F64),
    );
    let (ag, bg) = (a.to_device(&GPU).unwrap(), b.to_device(&GPU).unwrap());
    close(
        "cat",
        &Tensor::cat(&[ag.clone(), bg.narrow(1, 1, 4).unwrap()], 1).unwrap(),
        &Tensor::cat(&[a.clone(), b.narrow(1, 1, 4).unwrap()], 1).unwrap(),
        0.0,
    );
    let ids = Tensor::from_vec(vec![3u32, 0, 3, 7, 1], [5], &Device::Cpu).unwrap();
    let idg = ids.to_device(&GPU).unwrap();
    close(
        "cat ids",
        &Tensor::cat(&[idg.clone(), idg.clone()], 0).unwrap(),
        &Tensor::cat(&[ids.clone(), ids.clone()], 0).unwrap(),
        0.0,
    );
    // Embedding lookups and index_select along dim 1, with their gradients (repeated ids add up).
    let table = randn(&[8, 6], 43, DType::F64);
    let run = |dev: &Device| {
        let t = table.to_device(dev).unwrap().as_var();
        let ids = ids.to_device(dev).unwrap();
        let e = t.embedding(&ids).unwrap();
        let s = t
            .index_select(
                1,
                &Tensor::from_vec(vec![5u32, 5, 2], [3], &Device::Cpu).unwrap(),
            )
            .unwrap();
        let r = x
            .to_dtype(DType::F64)
            .unwrap()
            .to_device(dev)
            .unwrap()
            .relu()
            .unwrap();
        let loss = e
            .mul(&e)
            .unwrap()
            .sum_all()
            .unwrap()
            .add(&s.sum_all().unwrap())
            .unwrap();
        let rv = r.as_var();
        let loss2 = rv.relu().unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let g2 = loss2.backward().unwrap();
        (e, g.get(&t).unwrap().clone(), g2.get(&rv).unwrap().clone())
    };
    let c = run(&Device::Cpu);
    let g = run(&GPU);
    close("embedding", &g.0, &c.0, 0.0);
    close("d table", &g.1, &c.1, 1e-12);
    close("d relu", &g.2, &c.2, 0.0);
}

#[test]
fn the_fused_adamw_update_matches_the_cpu_and_leaves_its_inputs() {
    if !gpu() {
        return;
    }
    let h = ptm_cpu::optim::AdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let (p0, g) = (
        randn(&[33, 65], 50, DType::F32),
        randn(&[33, 65], 51, DType::F32),
    );
    let zeros = Tensor::zeros([33, 65], DType::F32, &Device::Cpu).unwrap();
    let run = |dev: &Device| {
        let (mut p, g) = (p0.to_device(dev).unwrap(), g.to_device(dev).unwrap());
        let (mut m, mut v) = (zeros.to_device(dev).unwrap(), zeros.to_device(dev).unwrap());
        for step in 1..=3 {
            let before = p.to_f64_vec().unwrap();
            let (p2, m2, v2) = p.adamw_update(&g, &m, &v, &h, step).unwrap();
            assert_eq!(
                p.to_f64_vec().unwrap(),
                before,
                "the input parameter changed"
            );
            (p, m, v) = (p2, m2, v2);
        }
        (p, m, v)
    };
    let c = run(&Device::Cpu);
    let g = run(&GPU);
    close("adamw p", &g.0, &c.0, 1e-6);
    close("adamw m", &g.1, &c.1, 1e-6);
    close("adamw v", &g.2, &c.2, 1e-6);
}

#[test]
fn the_fused_sgd_update_matches_the_cpu_and_leaves_its_inputs() {
    if !gpu() {
        return;
    }
    let (p0, g) = (
        randn(&[17, 129], 60, DType::F32),
        randn(&[17, 129], 61, DType::F32),
    );
    for (momentum, weight_decay) in [(0.9, 0.01), (0.0, 0.05)] {
        let h = ptm_cpu::optim::Sgd {
            lr: 0.1,
            momentum,
            weight_decay,
        };
        let run = |dev: &Device| {
            let (mut p, g) = (p0.to_device(dev).unwrap(), g.to_device(dev).unwrap());
            let mut buf =
                (momentum != 0.0).then(|| Tensor::zeros(p.dims(), DType::F32, dev).unwrap());
            for step in 0..3 {
                let before = p.to_f64_vec().unwrap();
                let (p2, b2) = p.sgd_update(&g, buf.as_ref(), &h, step == 0).unwrap();
                assert_eq!(
                    p.to_f64_vec().unwrap(),
                    before,
                    "the input parameter changed"
                );
                (p, buf) = (p2, b2);
            }
            (p, buf)
        };
        let (pc, bc) = run(&Device::Cpu);
        let (pg, bg) = run(&GPU);
        close("sgd p", &pg, &pc, 1e-6);
        if let (Some(bg), Some(bc)) = (bg, bc) {
            close("sgd momentum buffer", &bg, &bc, 1e-6);
        }
    }
}

#[test]
fn integer_casts_reductions_and_argmax_match_the_cpu() {
    if !gpu() {
        return;
    }
    // Casts that involve integers: truncation, saturation, NaN to 0, as on the CPU.
    let special = Tensor::from_vec(
        vec![
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            -1.5,
            2.7,
            3e9,
            5e9,
            -7.9,
            0.0,
        ],
        [3, 3],
        &Device::Cpu,
    )
    .unwrap();
    let big = randn(&[5, 7], 70, DType::F64).affine(1e6, 0.0).unwrap();
    for x in [special.to_dtype(DType::F64).unwrap(), big.clone()] {
        for (from, to) in [
            (DType::F32, DType::U32),
            (DType::F32, DType::I64),
            (DType::F64, DType::I64),
            (DType::BF16, DType::I64),
            (DType::F16, DType::U32),
        ] {
            let src = x.to_dtype(from).unwrap();
            let want = src.t().unwrap().to_dtype(to).unwrap();
            let got = src
                .to_device(&GPU)
                .unwrap()
                .t()
                .unwrap()
                .to_dtype(to)
                .unwrap();
            assert_eq!(got.dtype(), to);
            assert_eq!(
                got.to_f64_vec().unwrap(),
                want.to_f64_vec().unwrap(),
                "{from:?}→{to:?}"
            );
        }
    }
    let ints = big.to_dtype(DType::I64).unwrap();
    let ig = ints.to_device(&GPU).unwrap();
    for to in [DType::F32, DType::F16, DType::U32, DType::F64] {
        assert_eq!(
            ig.to_dtype(to).unwrap().to_f64_vec().unwrap(),
            ints.to_dtype(to).unwrap().to_f64_vec().unwrap(),
            "i64→{to:?}"
        );
    }
    // Integer views, reductions (exact) and argmax.
    assert_eq!(
        ig.t().unwrap().contiguous().unwrap().to_f64_vec().unwrap(),
        ints.t()
            .unwrap()
            .contiguous()
            .unwrap()
            .to_f64_vec()
            .unwrap(),
        "i64 transposed copy"
    );
    for d in [0usize, 1] {
        for (what, g, c) in [
            ("sum", ig.sum(d).unwrap(), ints.sum(d).unwrap()),
            ("max", ig.max(d).unwrap(), ints.max(d).unwrap()),
            ("min", ig.min(d).unwrap(), ints.min(d).unwrap()),
            ("argmax", ig.argmax(d).unwrap(), ints.argmax(d).unwrap()),
        ] {
            assert_eq!(g.device(), GPU, "{what}");
            assert_eq!(
                g.to_f64_vec().unwrap(),
                c.to_f64_vec().unwrap(),
                "i64 {what} over {d}"
            );
        }
    }
    // Integer arithmetic, broadcast, on the device.
    let row = Tensor::from_vec(vec![3i64, -1, 7, 2, -5, 11, 1], [1, 7], &Device::Cpu).unwrap();
    let rg = row.to_device(&GPU).unwrap();
    for (what, g, c) in [
        ("add", ig.add(&rg).unwrap(), ints.add(&row).unwrap()),
        ("sub", ig.sub(&rg).unwrap(), ints.sub(&row).unwrap()),
        ("mul", ig.mul(&rg).unwrap(), ints.mul(&row).unwrap()),
        ("div", ig.div(&rg).unwrap(), ints.div(&row).unwrap()),
        (
            "maximum",
            ig.maximum(&rg).unwrap(),
            ints.maximum(&row).unwrap(),
        ),
    ] {
        assert_eq!(g.device(), GPU, "{what}");
        assert_eq!(
            g.to_f64_vec().unwrap(),
            c.to_f64_vec().unwrap(),
            "i64 {what}"
        );
    }
    let zero = Tensor::from_vec(vec![0i64], [1], &Device::Cpu).unwrap();
    let e = ig.div(&zero.to_device(&GPU).unwrap()).unwrap_err();
    assert!(e.to_string().contains("division by zero"), "{e}");

    // Float argmax with ties and NaN (a NaN is the largest, as in PyTorch).
    let mut v: Vec<f32> = (0..30).map(|i| ((i * 7) % 5) as f32).collect();
    v[4] = f32::NAN;
    v[17] = f32::NAN;
    let x = Tensor::from_vec(v, [5, 6], &Device::Cpu).unwrap();
    let xg = x.to_device(&GPU).unwrap();
    for d in [0usize, 1] {
        let (g, c) = (xg.argmax(d).unwrap(), x.argmax(d).unwrap());
        assert_eq!(g.dtype(), DType::I64);
        assert_eq!(
            g.to_f64_vec().unwrap(),
            c.to_f64_vec().unwrap(),
            "f32 argmax over {d}"
        );
    }
}

#[test]
fn gather_conv_and_their_gradients_match_the_cpu() {
    if !gpu() {
        return;
    }
    let x = randn(&[4, 6], 80, DType::F64);
    let w = randn(&[4, 3], 81, DType::F64);
    let idx = Tensor::from_vec(
        vec![5i64, 0, 5, 1, 1, 1, 2, 3, 4, 0, 0, 5],
        [4, 3],
        &Device::Cpu,
    )
    .unwrap();
    let idx0 = Tensor::from_vec(
        vec![3u32, 0, 1, 2, 3, 3, 0, 0, 1, 1, 2, 2],
        [2, 6],
        &Device::Cpu,
    )
    .unwrap();
    let img = randn(&[2, 3, 9, 7], 82, DType::F64);
    let kern = randn(&[5, 3, 3, 2], 83, DType::F64);
    let bias = randn(&[5], 84, DType::F64);
    let run = |dev: &Device| {
        let to = |t: &Tensor| t.to_device(dev).unwrap();
        let (x, img, kern, bias) = (
            to(&x).as_var(),
            to(&img).as_var(),
            to(&kern).as_var(),
            to(&bias).as_var(),
        );
        let g1 = x.gather(1, &to(&idx)).unwrap();
        let g0 = x.gather(0, &to(&idx0)).unwrap();
        let y = img.conv2d(&kern, Some(&bias), 2, 1).unwrap();
        let loss = g1
            .mul(&to(&w))
            .unwrap()
            .sum_all()
            .unwrap()
            .add(&g0.tanh().unwrap().sum_all().unwrap())
            .unwrap()
            .add(&y.mul(&y).unwrap().sum_all().unwrap())
            .unwrap();
        let grads = loss.backward().unwrap();
        let grad = |t: &Tensor| grads.get(t).unwrap().clone();
        (
            vec![g1, g0, y, loss],
            vec![grad(&x), grad(&img), grad(&kern), grad(&bias)],
        )
    };
    let (vc, gc) = run(&Device::Cpu);
    let (vg, gg) = run(&GPU);
    for (i, (g, c)) in vg.iter().zip(&vc).enumerate() {
        close(&format!("value {i}"), g, c, 1e-12);
    }
    for (name, (g, c)) in ["d x", "d img", "d kernel", "d bias"]
        .iter()
        .zip(gg.iter().zip(&gc))
    {
        close(name, g, c, 1e-12);
    }
    // Integer tables gather and select too.
    let table = Tensor::from_vec(
        (0..24i64).map(|i| i * i - 50).collect(),
        [4, 6],
        &Device::Cpu,
    )
    .unwrap();
    let tg = table.to_device(&GPU).unwrap();
    let ids = Tensor::from_vec(vec![3u32, 3, 0], [3], &Device::Cpu).unwrap();
    assert_eq!(
        tg.gather(1, &idx).unwrap().to_f64_vec().unwrap(),
        table.gather(1, &idx).unwrap().to_f64_vec().unwrap()
    );
    assert_eq!(
        tg.index_select(0, &ids).unwrap().to_f64_vec().unwrap(),
        table.index_select(0, &ids).unwrap().to_f64_vec().unwrap()
    );
}

#[test]
fn mixing_devices_is_an_error() {
    if !gpu() {
        return;
    }
    let x = randn(&[2, 3], 13, DType::F32).to_device(&GPU).unwrap();
    let cpu = randn(&[2, 3], 14, DType::F32);
    let e = x.add(&cpu).unwrap_err();
    assert!(e.to_string().contains("device mismatch"), "{e}");
}
